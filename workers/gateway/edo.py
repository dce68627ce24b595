"""The EDO API: the personal cabinet submits its customers' signed packages and reads their documents;
the company lists incoming documents and overdue answers and sends signed answers.

* The cabinet (the site) is a trusted caller with its own token scope, ``cabinet``.
* Company-side lists take ``read``; sending an answer takes ``write`` and a sender listed in
  ``edo_senders`` (anyone else: 403).
* Uploads are multipart, streamed: each file is read in chunks into the register (``edo_files``) one
  at a time, refused past ``OBMEN_SYNERDOCS_MAX_FILE_BYTES`` (413 naming it); the whole request is
  capped at ``OBMEN_EDO_MAX_UPLOAD_BYTES`` before anything reads it (``BodyLimit``). Files are named
  by their SHA-256 in the entry's arguments, never carried through the broker.
"""

from __future__ import annotations

import hashlib
from typing import Annotated, Any

from fastapi import APIRouter, Depends, HTTPException, Path, Query, Request
from fastapi.encoders import jsonable_encoder
from fastapi.responses import JSONResponse, Response
from pydantic import ValidationError
from starlette.datastructures import FormData, UploadFile

from config.settings import get_settings
from models.db import session_scope
from models.edo import store_file
from tasks.edo import queries, register
from tasks.edo.register import AnswerIn, CustomerIn, PackageIn
from workers.gateway.auth import require

UPLOADS = "/edo/"  # the paths whose requests carry files: capped at OBMEN_EDO_MAX_UPLOAD_BYTES
CHUNK = 65_536

router = APIRouter(tags=["edo"])
cabinet = Depends(require("cabinet"))
read = Depends(require("read"))
write = Depends(require("write"))


def _errors(exc: ValidationError) -> list[str]:
    return [f"{'.'.join(str(p) for p in e['loc']) or 'package'}: {e['msg']}" for e in exc.errors()]


async def _form(request: Request) -> FormData:
    most = get_settings().edo_max_documents
    try:
        return await request.form(max_files=2 * most, max_fields=2 * most + 10)
    except Exception as exc:  # starlette's MultiPartException: too many parts, a malformed body
        raise HTTPException(422, f"not a multipart form obmen takes: {exc}") from exc


def _text(form: FormData, name: str) -> str | None:
    value = form.get(name)
    if value is not None and not isinstance(value, str):
        raise HTTPException(422, f"{name}: a text field, not a file")
    return value or None


async def _store(upload: UploadFile, where: str) -> str:
    """Read ``upload`` in chunks, refuse it past the file cap, keep it in ``edo_files``: its SHA-256."""
    cap = get_settings().synerdocs_max_file_bytes
    digest, parts, size = hashlib.sha256(), [], 0
    while chunk := await upload.read(CHUNK):
        size += len(chunk)
        if size > cap:
            raise HTTPException(413, f"{where}: over the cap of {cap} bytes per file")
        digest.update(chunk)
        parts.append(chunk)
    if size == 0:
        raise HTTPException(422, f"{where}: the file is empty")
    with session_scope() as session:
        stored = store_file(session, b"".join(parts))
    assert stored == digest.hexdigest()
    return stored


async def _documents(form: FormData, default_type: str | None = None) -> list[dict[str, Any]]:
    """The documents of a form: repeated ``document`` and ``signature`` files, ``title`` and
    ``document_type`` fields, the n-th of each making the n-th document."""
    files, signatures = form.getlist("document"), form.getlist("signature")
    titles, types = form.getlist("title"), form.getlist("document_type")
    if not files:
        raise HTTPException(422, "document: at least one file")
    if not (len(files) == len(signatures) == len(titles)) or (types and len(types) != len(files)):
        raise HTTPException(
            422, "document, signature, title (and document_type) are repeated once per document, in order"
        )
    documents = []
    for i, (file, signature) in enumerate(zip(files, signatures, strict=True)):
        if not isinstance(file, UploadFile) or not isinstance(signature, UploadFile):
            raise HTTPException(422, f"documents[{i}]: document and signature are files")
        documents.append(
            {
                "sha256": await _store(file, f"documents[{i}].document"),
                "file_name": file.filename or f"document-{i + 1}",
                "title": titles[i],
                "document_type": types[i] if types else default_type,
                "signature_sha256": await _store(signature, f"documents[{i}].signature"),
            }
        )
    return documents


def _package(package_id: int) -> dict[str, Any]:
    with session_scope() as session:
        return dict(jsonable_encoder(queries.package(session, package_id)))


@router.post("/edo/packages", dependencies=[cabinet], status_code=201)
async def post_package(request: Request) -> JSONResponse:
    """A customer's signed package from the cabinet (multipart): ``package_key`` (the cabinet's id:
    the same key again returns the same package), ``customer_inn``, ``customer_kpp`` (not for ИП),
    ``customer_name``, ``customer_email``, and per document a ``document`` file, its detached
    ``signature`` (CMS, DER), a ``title`` and a ``document_type`` (a type with a routing rule)."""
    form = await _form(request)
    try:
        customer = CustomerIn.model_validate(
            {
                "inn": _text(form, "customer_inn") or "",
                "kpp": _text(form, "customer_kpp"),
                "name": _text(form, "customer_name") or "",
                "email": _text(form, "customer_email"),
            }
        )
        key = _text(form, "package_key") or ""
        data = PackageIn.model_validate(
            {"package_key": key, "customer": customer, "documents": await _documents(form)}
        )
    except ValidationError as exc:
        raise HTTPException(422, _errors(exc)) from exc
    try:
        with session_scope() as session:
            package, created = register.submit_package(session, data)
            package_id = package.id
    except register.Refused as exc:
        raise HTTPException(422, str(exc)) from exc
    return JSONResponse(_package(package_id), status_code=201 if created else 200)


@router.get("/edo/customers/{inn}/packages", dependencies=[cabinet])
def get_customer_packages(
    inn: str,
    kpp: str | None = None,
    limit: Annotated[int, Query(ge=1, le=1000)] = 100,
    offset: Annotated[int, Query(ge=0)] = 0,
) -> list[dict[str, Any]]:
    """A customer's packages either way, newest first, with their documents, statuses and versions."""
    with session_scope() as session:
        return list(
            jsonable_encoder(queries.customer_packages(session, inn, kpp, limit=limit, offset=offset))
        )


@router.get("/edo/packages/{package_id}", dependencies=[cabinet])
def get_package(package_id: int) -> dict[str, Any]:
    try:
        return _package(package_id)
    except queries.NotFound as exc:
        raise HTTPException(404, str(exc)) from exc


@router.get("/edo/documents/{document_id}/versions/{version}", dependencies=[cabinet])
def get_version(document_id: int, version: Annotated[int, Path(ge=1, le=2)]) -> Response:
    """A document's version: 1 the original as signed, 2 the operator's print form with the stamp."""
    try:
        with session_scope() as session:
            found = queries.version_file(session, document_id, version)
    except queries.NotFound as exc:
        raise HTTPException(404, str(exc)) from exc
    quoted = found.file_name.encode("ascii", "replace").decode().replace('"', "")
    return Response(
        found.content,
        media_type=found.content_type,
        headers={"Content-Disposition": f'attachment; filename="{quoted}"'},
    )


@router.get("/edo/incoming", dependencies=[read])
def get_incoming(
    status: str | None = None,
    limit: Annotated[int, Query(ge=1, le=1000)] = 100,
    offset: Annotated[int, Query(ge=0)] = 0,
) -> list[dict[str, Any]]:
    """The company's incoming documents, newest first, of one status (``routed``, ``unrouted``,
    ``answered``) or all."""
    with session_scope() as session:
        return list(jsonable_encoder(queries.incoming(session, status, limit=limit, offset=offset)))


@router.get("/edo/overdue", dependencies=[read])
def get_overdue(limit: Annotated[int, Query(ge=1, le=1000)] = 100) -> list[dict[str, Any]]:
    """Incoming documents past their answer date, unanswered, the most overdue first."""
    with session_scope() as session:
        return list(jsonable_encoder(queries.overdue(session, limit=limit)))


@router.get("/edo/packages/{package_id}/xml", dependencies=[read])
def get_xml(package_id: int) -> list[dict[str, Any]]:
    """The package's «XML» tab: every SOAP request and answer about it, raw (secrets hidden)."""
    try:
        with session_scope() as session:
            return list(jsonable_encoder(queries.xml_log(session, package_id)))
    except queries.NotFound as exc:
        raise HTTPException(404, str(exc)) from exc


@router.post("/edo/answers", dependencies=[write], status_code=201)
async def post_answer(request: Request) -> JSONResponse:
    """The company's signed answer to an incoming document (multipart): ``package_key``,
    ``answers_document_id``, ``sender_login`` (listed in ``edo_senders``), and per document a
    ``document`` file, its detached ``signature`` and a ``title``."""
    form = await _form(request)
    try:
        data = AnswerIn.model_validate(
            {
                "package_key": _text(form, "package_key") or "",
                "answers_document_id": _text(form, "answers_document_id") or "0",
                "sender_login": _text(form, "sender_login") or "",
                "documents": await _documents(form, register.ANSWER_TYPE),
            }
        )
    except ValidationError as exc:
        raise HTTPException(422, _errors(exc)) from exc
    try:
        with session_scope() as session:
            package, created = register.send_answer(session, data)
            package_id = package.id
    except register.NotAllowed as exc:
        raise HTTPException(403, str(exc)) from exc
    except register.Refused as exc:
        raise HTTPException(422, str(exc)) from exc
    return JSONResponse(_package(package_id), status_code=201 if created else 200)
