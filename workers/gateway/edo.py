"""The EDO API: the personal cabinet submits its customers' signed packages and reads their documents;
the company lists incoming documents and overdue answers and sends signed answers.

* The cabinet (the site) is a trusted caller with its own token scope, ``cabinet``.
* Company-side lists take ``read``; sending an answer takes ``write`` and a sender listed in
  ``edo_senders`` (anyone else: 403).
* Uploads are multipart: the parser spools each file to a temporary file (held in memory up to 1 MB),
  and each is then read in chunks into the register (``edo_files``) one at a time, refused past
  ``OBMEN_SYNERDOCS_MAX_FILE_BYTES`` (413 naming it); the whole request is capped at
  ``OBMEN_EDO_MAX_UPLOAD_BYTES`` as it streams in (``BodyLimit``, per path). Files are named
  by their SHA-256 in the entry's arguments, never carried through the broker.
"""

from __future__ import annotations

import hashlib
from typing import Annotated, Any

from fastapi import APIRouter, Depends, File, Form, HTTPException, Path, Query, UploadFile
from fastapi.encoders import jsonable_encoder
from fastapi.responses import JSONResponse, Response
from pydantic import ValidationError

from config.settings import get_settings
from models.db import session_scope
from models.edo import store_file
from tasks.edo import queries, register
from tasks.edo.register import AnswerIn, CustomerIn, PackageIn
from workers.gateway.auth import require
from workers.gateway.edge import EdgeRoute
from workers.gateway.params import Attachment, Chars, Digits, Id, Limit, Note, Offset, Text
from workers.gateway.problems import invalid

UPLOADS = "/edo/"  # the paths whose requests carry files: capped at OBMEN_EDO_MAX_UPLOAD_BYTES
CHUNK = 65_536
# The most documents a package may have whatever OBMEN_EDO_MAX_DOCUMENTS says (its own upper bound).
MOST = 100

router = APIRouter(prefix="/edo", tags=["edo"], route_class=EdgeRoute)
cabinet = Depends(require("cabinet"))
read = Depends(require("read"))
write = Depends(require("write"))

RowId = Annotated[Id, Path()]
Files = Annotated[list[Attachment], File(max_length=MOST, description="one per document, in order")]
Titles = Annotated[list[Note], Form(max_length=MOST, description="one per document, in order")]
PageSize = Annotated[Limit, Query()]
Skip = Annotated[Offset, Query()]


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


async def _documents(
    files: list[UploadFile], signatures: list[UploadFile], titles: list[str], types: list[str] | None = None
) -> list[dict[str, Any]]:
    """The documents of a form: the n-th ``document``, ``signature``, ``title`` (and ``document_type``)
    make the n-th document. Each file is stored before the next is read."""
    most = get_settings().edo_max_documents
    if len(files) > most:
        raise HTTPException(422, f"document: at most {most} documents in a package")
    if not (len(files) == len(signatures) == len(titles)) or (types and len(types) != len(files)):
        raise HTTPException(
            422, "document, signature, title (and document_type) are repeated once per document, in order"
        )
    documents = []
    for i, (file, signature) in enumerate(zip(files, signatures, strict=True)):
        documents.append(
            {
                "sha256": await _store(file, f"documents[{i}].document"),
                "file_name": file.filename or f"document-{i + 1}",
                "title": titles[i],
                "document_type": types[i] if types else register.ANSWER_TYPE,
                "signature_sha256": await _store(signature, f"documents[{i}].signature"),
            }
        )
    return documents


def _package(package_id: int) -> dict[str, Any]:
    with session_scope() as session:
        return dict(jsonable_encoder(queries.package(session, package_id)))


@router.post("/packages", dependencies=[cabinet], status_code=201)
async def post_package(
    package_key: Annotated[
        Text, Form(description="the cabinet's id: the same key again is the same package")
    ],
    customer_inn: Annotated[str, Chars(12, 10), Form()],
    customer_name: Annotated[Note, Form()],
    document: Files,
    signature: Annotated[list[Attachment], File(max_length=MOST, description="detached CMS (DER)")],
    title: Titles,
    document_type: Annotated[list[Text], Form(max_length=MOST, description="a type with a routing rule")],
    customer_kpp: Annotated[Text | None, Form(description="not for a sole trader or a person")] = None,
    customer_email: Annotated[Text | None, Form()] = None,
) -> JSONResponse:
    """A customer's signed package from the cabinet (multipart): the customer, and per document a
    ``document`` file, its detached ``signature``, a ``title`` and a ``document_type``."""
    try:
        customer = CustomerIn.model_validate(
            {
                "inn": customer_inn,
                "kpp": customer_kpp or None,
                "name": customer_name,
                "email": customer_email or None,
            }
        )
        data = PackageIn.model_validate(
            {
                "package_key": package_key,
                "customer": customer,
                "documents": await _documents(document, signature, title, document_type),
            }
        )
    except ValidationError as exc:
        raise invalid(exc) from exc
    try:
        with session_scope() as session:
            package, created = register.submit_package(session, data)
            package_id = package.id
    except register.Refused as exc:
        raise HTTPException(422, str(exc)) from exc
    return JSONResponse(_package(package_id), status_code=201 if created else 200)


@router.get("/customers/{inn}/packages", dependencies=[cabinet])
def get_customer_packages(
    inn: Annotated[str, Chars(12, 10), Path()],
    kpp: Annotated[Text | None, Query()] = None,
    limit: PageSize = 100,
    offset: Skip = 0,
) -> list[dict[str, Any]]:
    """A customer's packages either way, newest first, with their documents, statuses and versions."""
    with session_scope() as session:
        return list(
            jsonable_encoder(queries.customer_packages(session, inn, kpp, limit=limit, offset=offset))
        )


@router.get("/packages/{package_id}", dependencies=[cabinet])
def get_package(package_id: RowId) -> dict[str, Any]:
    try:
        return _package(package_id)
    except queries.NotFound as exc:
        raise HTTPException(404, str(exc)) from exc


@router.get("/documents/{document_id}/versions/{version}", dependencies=[cabinet])
def get_version(document_id: RowId, version: Annotated[int, Digits(1, 2), Path()]) -> Response:
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


@router.get("/incoming", dependencies=[read])
def get_incoming(
    status: Annotated[Text | None, Query(description="routed, unrouted, answered …")] = None,
    limit: PageSize = 100,
    offset: Skip = 0,
) -> list[dict[str, Any]]:
    """The company's incoming documents, newest first, of one status (``routed``, ``unrouted``,
    ``answered``) or all."""
    with session_scope() as session:
        return list(jsonable_encoder(queries.incoming(session, status, limit=limit, offset=offset)))


@router.get("/overdue", dependencies=[read])
def get_overdue(limit: PageSize = 100, offset: Skip = 0) -> list[dict[str, Any]]:
    """Incoming documents past their answer date, unanswered, the most overdue first."""
    with session_scope() as session:
        return list(jsonable_encoder(queries.overdue(session, limit=limit, offset=offset)))


@router.get("/packages/{package_id}/xml", dependencies=[read])
def get_xml(package_id: RowId) -> list[dict[str, Any]]:
    """The package's «XML» tab: every SOAP request and answer about it, raw (secrets hidden)."""
    try:
        with session_scope() as session:
            return list(jsonable_encoder(queries.xml_log(session, package_id)))
    except queries.NotFound as exc:
        raise HTTPException(404, str(exc)) from exc


@router.post("/answers", dependencies=[write], status_code=201)
async def post_answer(
    package_key: Annotated[Text, Form()],
    answers_document_id: Annotated[Id, Form(description="the incoming document answered")],
    sender_login: Annotated[Text, Form(description="listed in edo_senders")],
    document: Files,
    signature: Annotated[list[Attachment], File(max_length=MOST, description="detached CMS (DER)")],
    title: Titles,
) -> JSONResponse:
    """The company's signed answer to an incoming document (multipart): per document a ``document``
    file, its detached ``signature`` and a ``title``."""
    try:
        data = AnswerIn.model_validate(
            {
                "package_key": package_key,
                "answers_document_id": answers_document_id,
                "sender_login": sender_login,
                "documents": await _documents(document, signature, title),
            }
        )
    except ValidationError as exc:
        raise invalid(exc) from exc
    try:
        with session_scope() as session:
            package, created = register.send_answer(session, data)
            package_id = package.id
    except register.NotAllowed as exc:
        raise HTTPException(403, str(exc)) from exc
    except register.Refused as exc:
        raise HTTPException(422, str(exc)) from exc
    return JSONResponse(_package(package_id), status_code=201 if created else 200)
