"""The acts API: acts drafted and listed, paper acts' steps, the counterparty's form, Bitrix24 events.

* Managers' tools and Bitrix24 robots use bearer tokens (``read`` to list, ``write`` to change).
* The counterparty's form (``/acts/forms/{token}``) takes no account: the link's unguessable token
  (256 bits, sent only to the counterparty) is its key; an unknown token is a 404 before anything
  is read (``FormLink``).
* Bitrix24's outbound events (``POST /bitrix24/events``: deals, and the acts' smart-process items) are verified by ``auth[application_token]``
  before anything is stored; only authentic events reach the exchange log.
"""

from __future__ import annotations

import json
import secrets
from html import escape
from typing import Annotated, Any

import structlog
from fastapi import APIRouter, Depends, File, Form, HTTPException, Query, Request, UploadFile
from fastapi.responses import HTMLResponse, JSONResponse, Response
from pydantic import TypeAdapter, ValidationError
from sqlalchemy import select
from starlette.concurrency import run_in_threadpool

from config.settings import get_settings
from integrations import strictjson
from integrations.exchange import Exchange
from integrations.storable import escaped_text, refuse_unstorable
from models.acts import ACT_STATUSES, ACT_TYPES, EXCHANGE_METHODS, ActFormRequest
from models.db import session_scope
from tasks.acts import machine
from tasks.acts.deals import DEAL_EVENTS, deal_changed
from tasks.acts.forms import FormAlreadyAnswered, FormAnswer, FormNotFound, answer_form, request_form
from tasks.acts.items import ITEM_EVENTS, item_changed
from tasks.acts.queries import ActFilter, act_detail, act_file, deals_without_acts, list_acts
from tasks.acts.register import ActConflict, ActIn, ActNotFound, Upload, change_status, create_act, lock_act
from tasks.machinery.exchange import record_exchange
from workers.gateway import problems
from workers.gateway.access import (
    BITRIX24_TOKEN_FIELD,
    FORM_MEDIA_TYPE,
    Access,
    Bitrix24Token,
    Refused,
    media_type,
)
from workers.gateway.auth import require
from workers.gateway.edge import EdgeRoute
from workers.gateway.params import Attachment, Id, Limit, Note, Offset, Text
from workers.gateway.problems import invalid, unprocessable

log = structlog.get_logger(__name__)

router = APIRouter(tags=["acts"], route_class=EdgeRoute)
read = Depends(require("read"))
write = Depends(require("write"))
DEAL_ID = TypeAdapter(Id)


def _form_exists(token: str) -> bool:
    with session_scope() as session:
        return session.scalar(select(ActFormRequest.id).where(ActFormRequest.token == token)) is not None


class FormLink(Access):
    """The form link's token, as the key of one form: unknown tokens are a 404 before the body is read."""

    kind = "form_link"
    refusals = (404,)

    async def check(self, request: Request) -> None:
        token = str(request.path_params.get("token", ""))
        if not (0 < len(token) <= 100 and token.isascii() and token.isprintable()):
            raise Refused(404, "malformed form token", "no such form")
        if not await run_in_threadpool(_form_exists, token):
            raise Refused(404, "unknown form token", "no such form")


FORM = Depends(FormLink("the counterparty holding the link a letter sent them"))
BITRIX24 = Depends(Bitrix24Token("the Bitrix24 portal, by its application token"))


async def _upload(file: UploadFile | None) -> Upload | None:
    if file is None:
        return None
    return Upload(file.filename or "", file.content_type or "application/octet-stream", await file.read())


def _detail(act_id: int) -> dict[str, Any]:
    with session_scope() as session:
        return act_detail(session, act_id)


@router.post("/acts", dependencies=[write], status_code=201)
async def post_act(
    file: Annotated[Attachment, File(description="the act (PDF, as it goes to the counterparty)")],
    number: Annotated[Text, Form()],
    deal_id: Annotated[Id, Form()],
    act_type: Annotated[Text, Form(description=", ".join(ACT_TYPES))],
    act_date: Annotated[Text | None, Form(description="YYYY-MM-DD; today in Moscow if omitted")] = None,
    company_id: Annotated[Id | None, Form()] = None,
    counterparty_inn: Annotated[Text | None, Form()] = None,
    counterparty_kpp: Annotated[Text | None, Form()] = None,
    counterparty_name: Annotated[Note | None, Form()] = None,
    exchange_method: Annotated[Text | None, Form(description=", ".join(EXCHANGE_METHODS))] = None,
    edo_operator: Annotated[Text | None, Form()] = None,
    edo_id: Annotated[Text | None, Form()] = None,
    products: Annotated[
        list[Text] | None, Form(max_length=200, description="repeat the field, one product each")
    ] = None,
    amount: Annotated[Text | None, Form()] = None,
    send: Annotated[bool, Form(description="send at once (electronic acts go to СБИС)")] = False,
) -> JSONResponse:
    """Draft an act for a deal with its file (a repeat with the same number returns the same act)."""
    fields = {
        "number": number,
        "deal_id": deal_id,
        "act_type": act_type,
        "act_date": act_date or None,
        "company_id": company_id,
        "counterparty_inn": counterparty_inn or None,
        "counterparty_kpp": counterparty_kpp or None,
        "counterparty_name": counterparty_name or None,
        "exchange_method": exchange_method or None,
        "edo_operator": edo_operator or None,
        "edo_id": edo_id or None,
        "products": products or [],
        "amount": amount or None,
        "send": send,
    }
    try:
        data = ActIn.model_validate(fields)
    except ValidationError as exc:
        raise invalid(exc) from exc
    upload = await _upload(file)
    assert upload is not None
    try:
        with session_scope() as session:
            act, created = create_act(session, data, upload)
            act_id = act.id
    except ActConflict as exc:
        raise HTTPException(409, str(exc)) from exc
    except machine.IllegalTransition as exc:
        raise HTTPException(409, str(exc)) from exc
    except ValueError as exc:
        raise HTTPException(422, str(exc)) from exc
    return JSONResponse(_detail(act_id), status_code=201 if created else 200)


@router.get("/acts", dependencies=[read])
def get_acts(
    status: Annotated[Text | None, Query(description=" | ".join(ACT_STATUSES))] = None,
    deal_id: Id | None = None,
    company_id: Id | None = None,
    act_type: Text | None = None,
    overdue: bool = False,
    limit: Limit = 100,
    offset: Offset = 0,
) -> dict[str, Any]:
    """Acts with their statuses, newest first; filter by status, deal, company, type, overdue."""
    if status is not None and status not in ACT_STATUSES:
        raise unprocessable("status", f"unknown status {status!r}; statuses: {', '.join(ACT_STATUSES)}")
    with session_scope() as session:
        return list_acts(session, ActFilter(status, deal_id, company_id, act_type, overdue, limit, offset))


@router.get("/acts/{act_id}", dependencies=[read])
def get_act(act_id: Id) -> dict[str, Any]:
    """One act with its files, history and deadline."""
    try:
        return _detail(act_id)
    except ActNotFound as exc:
        raise HTTPException(404, str(exc)) from exc


@router.get("/acts/{act_id}/files/{file_id}", dependencies=[read])
def get_act_file(act_id: Id, file_id: Id) -> Response:
    try:
        with session_scope() as session:
            found = act_file(session, act_id, file_id)
            content, content_type, name = found.content, found.content_type, found.name
    except ActNotFound as exc:
        raise HTTPException(404, str(exc)) from exc
    quoted = name.encode("ascii", "replace").decode().replace('"', "")
    return Response(
        content, media_type=content_type, headers={"Content-Disposition": f'attachment; filename="{quoted}"'}
    )


@router.post("/acts/{act_id}/status", dependencies=[write])
async def post_act_status(
    act_id: Id,
    status: Annotated[Text, Form(description=" | ".join(ACT_STATUSES))],
    note: Annotated[Note | None, Form()] = None,
    file: Annotated[Attachment | None, File(description="the scan, where the step needs one")] = None,
) -> dict[str, Any]:
    """A manager's step: «Подписан с нашей стороны» (with the scan), «Акт направлен заявителю»,
    «Акт получен и подписан» (with the signed scan), «Акт принят, но не подписан заявителем»,
    «Отказ от подписания». An electronic act asked to be sent goes to СБИС."""
    if status not in ACT_STATUSES:
        raise unprocessable("status", f"unknown status {status!r}; statuses: {', '.join(ACT_STATUSES)}")
    upload = await _upload(file)
    try:
        with session_scope() as session:
            change_status(
                session, lock_act(session, act_id), status, actor=machine.MANAGER, note=note, upload=upload
            )
    except ActNotFound as exc:
        raise HTTPException(404, str(exc)) from exc
    except machine.IllegalTransition as exc:
        raise HTTPException(409, str(exc)) from exc
    except ValueError as exc:
        raise HTTPException(422, str(exc)) from exc
    return _detail(act_id)


@router.get("/companies/{company_id}/acts", dependencies=[read])
def get_company_acts(
    company_id: Id,
    limit: Limit = 100,
    offset: Offset = 0,
) -> dict[str, Any]:
    """Every act of a company (the company card)."""
    with session_scope() as session:
        return list_acts(session, ActFilter(company_id=company_id, limit=limit, offset=offset))


@router.get("/deals/without-acts", dependencies=[read])
def get_deals_without_acts(
    stage: Text | None = None,
    limit: Limit = 100,
    offset: Offset = 0,
) -> dict[str, Any]:
    """Deals obmen knows from Bitrix24 that have no act yet."""
    with session_scope() as session:
        return deals_without_acts(session, stage, limit, offset)


@router.post("/deals/{deal_id}/form-letter", dependencies=[write], status_code=202)
def post_form_letter(deal_id: Id) -> dict[str, Any]:
    """Send the counterparty the letter with the form link again, by hand (from the deal card)."""
    with session_scope() as session:
        form_id = request_form(
            session, deal_id, requested_by="manager", business_key=f"manual:{deal_id}:{secrets.token_hex(6)}"
        )
    return {"deal_id": deal_id, "form_request_id": form_id}


# --- the counterparty's form (the link's token is the key) ------------------------------------------
_FORM_PAGE = """<!doctype html>
<html lang="ru"><head><meta charset="utf-8"><title>Способ обмена актами</title></head>
<body><h1>Способ обмена актами</h1>
<form method="post">
<p><label><input type="radio" name="exchange_method" value="email" required> По e-mail</label><br>
<label><input type="radio" name="exchange_method" value="paper"> В бумажном виде</label><br>
<label><input type="radio" name="exchange_method" value="edo"> Через ЭДО</label></p>
<p><label>Оператор ЭДО <input name="edo_operator"></label></p>
<p><label>Идентификатор участника ЭДО <input name="edo_id"></label></p>
<p><button type="submit">Отправить</button></p>
</form></body></html>"""


FORM_ANSWER = {"schema": FormAnswer.model_json_schema()}


@router.get("/acts/forms/{token}", response_class=HTMLResponse, dependencies=[FORM])
def get_form(token: Text) -> HTMLResponse:
    """The form page (HTML, Russian)."""
    return HTMLResponse(_FORM_PAGE)


@router.post(
    "/acts/forms/{token}",
    dependencies=[FORM],
    openapi_extra={
        "requestBody": {
            "required": True,
            "content": {FORM_MEDIA_TYPE: FORM_ANSWER, "application/json": FORM_ANSWER},
        }
    },
)
async def post_form(token: Text, request: Request) -> Response:
    """The counterparty's answer: ``exchange_method`` (email, paper, edo), ``edo_operator``, ``edo_id``.

    Form-encoded (the page) or JSON. The deal and its draft acts take it; the manager is notified.
    """
    kind = media_type(request)
    if kind not in (FORM_MEDIA_TYPE, "application/json"):
        raise HTTPException(415, f"send {FORM_MEDIA_TYPE} or application/json")
    as_json = kind == "application/json"
    try:
        raw: Any = strictjson.loads(await request.body()) if as_json else dict(await request.form())
        if not isinstance(raw, dict):
            raise ValueError("send an object")
        refuse_unstorable(raw, "answer")
        answer = FormAnswer.model_validate({k: (v or None) for k, v in raw.items()})
    except ValidationError as exc:
        raise invalid(exc) from exc
    except ValueError as exc:  # json.JSONDecodeError too
        raise unprocessable("body", f"not a form answer: {exc}") from exc
    try:
        with session_scope() as session:
            form = answer_form(session, token, answer)
            deal_id = form.deal_id
    except FormNotFound as exc:
        raise HTTPException(404, str(exc)) from exc
    except FormAlreadyAnswered as exc:
        raise HTTPException(409, str(exc)) from exc
    if as_json:
        return JSONResponse({"deal_id": deal_id, "answer": answer.model_dump()})
    chosen = escape(EXCHANGE_METHODS[answer.exchange_method])
    return HTMLResponse(
        f"<!doctype html><html lang='ru'><meta charset='utf-8'><p>Спасибо! Способ обмена актами: {chosen}.</p></html>"
    )


# --- Bitrix24 outbound events -------------------------------------------------------------------------
BITRIX24_EVENT = {
    "schema": {
        "type": "object",
        "required": ["event", BITRIX24_TOKEN_FIELD],
        "properties": {
            "event": {"type": "string", "examples": ["ONCRMDEALUPDATE"]},
            "data[FIELDS][ID]": {"type": "string", "pattern": "^[0-9]{1,19}$"},
            "data[FIELDS][ENTITY_TYPE_ID]": {"type": "string", "pattern": "^[0-9]{1,10}$"},
            BITRIX24_TOKEN_FIELD: {"type": "string"},
        },
    }
}


@router.post(
    "/bitrix24/events",
    dependencies=[BITRIX24],
    openapi_extra={"requestBody": {"required": True, "content": {FORM_MEDIA_TYPE: BITRIX24_EVENT}}},
)
async def bitrix24_event(request: Request) -> JSONResponse:
    """``ONCRMDEALUPDATE`` / ``ONCRMDEALADD`` (the deal id only), ``ONCRMDYNAMICITEMUPDATE`` (an act's
    item: ``data[FIELDS][ID]`` and ``data[FIELDS][ENTITY_TYPE_ID]``) from the portal, form-encoded."""
    body = (await request.body()).decode("utf-8", "replace")
    form = {k: str(v) for k, v in (await request.form()).items()}
    event = form.get("event", "").upper()
    raw_id = form.get("data[FIELDS][ID]", "")
    status, answer = _take_event(event, raw_id, form.get("data[FIELDS][ENTITY_TYPE_ID]", ""))
    subject = "item" if event in ITEM_EVENTS else "deal"
    token = form.get(BITRIX24_TOKEN_FIELD, "")
    record_exchange(
        Exchange(
            system="bitrix24",
            operation=escaped_text(event or "event", 100),
            direction="in",
            url=str(request.url.path),
            request_body=escaped_text(body.replace(token, "***") if token else body),
            response_status=status,
            response_body=json.dumps(answer, ensure_ascii=False),
            business_key=f"{subject}:{escaped_text(raw_id, 100)}",
        )
    )
    return JSONResponse(answer, status, media_type=problems.MEDIA_TYPE if status >= 400 else None)


def _take_event(event: str, raw_id: str, raw_type: str) -> tuple[int, dict[str, Any]]:
    """Mark what the event names to be read again: (HTTP status, answer)."""
    if event not in DEAL_EVENTS | ITEM_EVENTS:
        return 200, {"ignored": escaped_text(event, 100)}
    try:
        object_id = DEAL_ID.validate_python(raw_id)
    except ValidationError:
        errors = [{"field": "data[FIELDS][ID]", "message": "must be the deal's or the item's id"}]
        return 422, problems.document(422, "invalid event", errors=errors)
    if event in DEAL_EVENTS:
        with session_scope() as session:
            deal_changed(session, object_id)
        return 200, {"accepted": event, "deal_id": object_id}
    ours = get_settings().acts_item_entity_type_id
    if ours is None or raw_type != str(ours):
        return 200, {"ignored": f"{escaped_text(event, 100)}: not the acts' smart process"}
    with session_scope() as session:
        if item_changed(session, object_id) is None:
            return 200, {"ignored": f"item {object_id} is no act's"}
    return 200, {"accepted": event, "item_id": object_id}
