"""Acts as items of a Bitrix24 smart process, so managers see and move them in the portal only.

Each act is one item (``crm.item.*`` with ``OBMEN_ACTS_ITEM_ENTITY_TYPE_ID``) bound to its deal
(``parentId2``) and company (``companyId``): the deal's and the company's cards list its acts with
their stages and files. The item's stage is the act's status (``STAGE_CODES``).

Both directions go through one step, ``acts.item.sync``, on the act's ``act_items`` row, made
``pending`` by any change of the act, by Bitrix24's ``ONCRMDYNAMICITEMUPDATE`` event, and by
``acts.items.reconcile`` (Bitrix24 never retries an event). The step reads the item first: a stage
other than the one obmen last wrote is a manager's move, taken through the act's state machine
(only by a user of the acts group, ``OBMEN_ACTS_GROUP_USER_IDS``); a move taken ends the run (the
act's change re-arms the row, and its next run writes the item). Otherwise it writes the act's
stage, its newest file and, for a refused move, the reason naming what is allowed, back on the item,
only what differs: its own update's event then finds nothing to write.
The item is added once: its ``xmlId`` is the act's key, looked up before adding, so a worker killed
between Bitrix24's answer and our commit finds the item instead of adding a second.
"""

from __future__ import annotations

import base64
from dataclasses import dataclass
from typing import Any

import structlog
from sqlalchemy import select, update
from sqlalchemy.orm import Session

from config.settings import get_settings
from integrations.bitrix24 import Bitrix24Client
from integrations.errors import PermanentError
from models.acts import (
    ACCEPTED_UNSIGNED,
    ACT_TYPES,
    CREATED,
    EMAILING,
    REFUSED,
    SENDING,
    SENT,
    SIGNED,
    SIGNED_BY_US,
    Act,
    ActFile,
    ActItem,
)
from models.db import db_now, session_scope
from tasks.acts import machine
from tasks.acts.chain import ITEM_SYNC
from tasks.acts.deals import batched, claim_window, parse_bitrix_time
from tasks.acts.register import ActNotFound, Upload, change_status
from tasks.machinery.bitrix24 import bitrix24_client
from tasks.machinery.outbox import enqueue

log = structlog.get_logger(__name__)

ITEM_EVENTS = frozenset({"ONCRMDYNAMICITEMUPDATE"})
CURSOR = "bitrix24_act_items"
# The smart process's stages, by the code after ``DT<type>_<category>:`` (create them so in the portal).
STAGE_CODES = {
    CREATED: "NEW",
    SIGNED_BY_US: "SIGNED_BY_US",
    SENDING: "SENDING",
    EMAILING: "EMAILING",
    SENT: "SENT",
    SIGNED: "SUCCESS",
    ACCEPTED_UNSIGNED: "ACCEPTED",
    REFUSED: "FAIL",
}


def entity_type_id() -> int:
    found = get_settings().acts_item_entity_type_id
    if found is None:
        raise PermanentError("OBMEN_ACTS_ITEM_ENTITY_TYPE_ID is not set: acts are not Bitrix24 items")
    return found


def stage_of(status: str) -> str:
    s = get_settings()
    return f"DT{entity_type_id()}_{s.acts_item_category_id}:{STAGE_CODES[status]}"


def status_of(stage: str) -> str | None:
    return next((status for status in STAGE_CODES if stage_of(status) == stage), None)


def xml_id(act: Act) -> str:
    return f"obmen-act-{act.id}"


def item_changed(session: Session, item_id: int) -> int | None:
    """Mark the act of Bitrix24 item ``item_id`` to be synced; None when no act has that item."""
    row_id = session.scalar(
        update(ActItem)
        .where(ActItem.item_id == item_id)
        .values(status="pending", attempts=0, parked_at=None)
        .returning(ActItem.id)
    )
    if row_id is not None:
        enqueue(session, ITEM_SYNC, {"id": row_id}, business_key=f"act-item-event:{item_id}")
    return row_id


def newest_file(session: Session, act_id: int) -> ActFile | None:
    """The act's latest file: the signed scan once there is one, else the one signed by us, else the act."""
    return session.scalars(
        select(ActFile).where(ActFile.act_id == act_id).order_by(ActFile.id.desc()).limit(1)
    ).one_or_none()


def _int(value: Any) -> int | None:
    try:
        return int(value) or None
    except (TypeError, ValueError):
        return None


def portal_file_id(item: dict[str, Any] | None) -> int | None:
    """The portal's id of the file in the item's file field (``{"id", "url", "urlMachine"}``)."""
    value = (item or {}).get(get_settings().acts_item_file_field)
    return _int(value.get("id")) if isinstance(value, dict) else None


@dataclass
class Taken:
    """What taking a manager's move left: the refusal to put on the item (empty: the act moved), and
    the portal's file the act took as its scan."""

    note: str = ""
    scan: int | None = None


def take_move(
    session: Session, b24: Bitrix24Client, row: ActItem, act: Act, item: dict[str, Any], stage: str
) -> Taken:
    """A manager moved the item to ``stage``: move the act, or say why not (the item is put back).

    A move that needs a scan takes the file the manager put in the item's file field, when it is not
    the one obmen put there.
    """
    user = _int(item.get("movedBy")) or _int(item.get("updatedBy"))
    target = status_of(stage)
    stays = f"the act stays «{act.status}»"
    if target is None:
        return Taken(f"act {act.number}: «{stage}» is not a stage of the acts; {stays}")
    group = get_settings().acts_group
    if group and user not in group:
        return Taken(
            f"act {act.number}: Bitrix24 user {user} is not in the acts group, only its members move acts; {stays}"
        )
    scan = portal_file_id(item)
    upload = None
    try:
        move = machine.check(
            act.number, act.act_type, act.status, target, machine.MANAGER, act.exchange_method
        )
        if move.needs_file and scan is not None and scan != row.portal_file_id:
            field = item[get_settings().acts_item_file_field]
            content = b24.download(str(field.get("urlMachine") or field.get("url")), key=f"act-item:{act.id}")
            # The field names no file name; scans are PDF as a rule.
            pdf = content.startswith(b"%PDF")
            name = f"{act.number}-{move.needs_file}-{scan}" + (".pdf" if pdf else "")
            upload = Upload(name, "application/pdf" if pdf else "application/octet-stream", content)
        change_status(
            session, act, target, actor=machine.MANAGER, note=f"in Bitrix24 by user {user}", upload=upload
        )
    except ValueError as exc:  # machine.IllegalTransition too: nothing was written
        return Taken(str(exc))
    return Taken(scan=scan if upload is not None else None)


def sync_item(session: Session, row: ActItem, b24: Bitrix24Client) -> None:
    """Take a manager's move from the item, then write the act's stage, file and note to it."""
    type_id = entity_type_id()
    act = session.get(Act, row.act_id)
    if act is None:
        raise ActNotFound(f"no act with id {row.act_id}")
    key = f"act-item:{act.id}"
    item = _current(b24, type_id, row, act, key)
    # A refusal stays on the item until the act moves on.
    taken = Taken((row.note or "") if row.stage_id == stage_of(act.status) else "")
    if item is not None:
        seen = str(item.get("stageId") or "")
        # Unknown what obmen wrote (a crash after adding): the item shows our own earlier stage.
        if row.stage_id is not None and seen not in (row.stage_id, stage_of(act.status)):
            # Act rows are locked before item rows everywhere else: never wait here, retry instead.
            locked = session.get(Act, act.id, with_for_update={"nowait": True}, populate_existing=True)
            assert locked is not None
            act = locked
            taken = take_move(session, b24, row, act, item, seen)
            if not taken.note:
                # The act moved, and its change re-armed this row: the next run writes the item, so
                # this transaction holds no lock of the act over another Bitrix24 call.
                file = newest_file(session, act.id) if taken.scan else None
                row.item_id = int(item["id"])
                row.stage_id = seen
                row.file_id = file.id if file is not None else row.file_id
                row.portal_file_id = taken.scan or portal_file_id(item)
                row.note = None
                return
    file = newest_file(session, act.id)
    settings = get_settings()
    wanted: dict[str, Any] = {"stageId": stage_of(act.status), settings.acts_item_note_field: taken.note}
    if file is not None and (item is None or file.id != row.file_id):
        content = base64.b64encode(file.content).decode("ascii")
        wanted[settings.acts_item_file_field] = [file.name, content]
    if item is None:
        fields = {
            "title": f"Акт {act.number} ({ACT_TYPES.get(act.act_type, act.act_type)})",
            "xmlId": xml_id(act),
            "parentId2": act.deal_id,
            "companyId": act.company_id or 0,
            "opportunity": str(act.amount) if act.amount is not None else None,
            **wanted,
        }
        if settings.acts_item_category_id:
            fields["categoryId"] = settings.acts_item_category_id
        item = b24.item_add(type_id, {k: v for k, v in fields.items() if v is not None}, key=key)
    else:
        changes = {name: value for name, value in wanted.items() if _differs(item, name, value)}
        if changes:
            item = b24.item_update(type_id, int(item["id"]), changes, key=key)
    row.item_id = int(item["id"])
    row.stage_id = stage_of(act.status)
    row.file_id = file.id if file is not None else None
    row.portal_file_id = portal_file_id(item)
    row.note = taken.note or None
    row.status = "synced"
    row.synced_at = db_now(session)


def _current(b24: Bitrix24Client, type_id: int, row: ActItem, act: Act, key: str) -> dict[str, Any] | None:
    """The act's item as Bitrix24 shows it now, found by id or by ``xmlId``; None before it is added."""
    if row.item_id is not None:
        return b24.item_get(type_id, row.item_id, key=key)
    found = b24.item_list(type_id, filter={"=xmlId": xml_id(act)}, select=["*", "uf_*"], key=key).items
    return found[0] if found else None


def _differs(item: dict[str, Any], name: str, value: Any) -> bool:
    if isinstance(value, list):  # a file to upload: decided by the caller
        return True
    return str(item.get(name) or "") != str(value or "")


def reconcile_items() -> dict[str, int]:
    """Mark the acts whose items changed in Bitrix24 since the last run and show another stage."""
    settings = get_settings()
    if settings.acts_item_entity_type_id is None:
        return {"off": 1}
    type_id = settings.acts_item_entity_type_id
    with session_scope() as session:
        found = claim_window(session, CURSOR)
        if found is None:
            return {"skipped": 1}
        cursor, since = found
        listed = list(
            bitrix24_client().iter_items(
                type_id,
                filter={">=updatedTime": since.isoformat(timespec="seconds")},
                select=["id", "stageId", "updatedTime"],
                order={"updatedTime": "ASC", "id": "ASC"},
            )
        )
        marked = 0
        latest = cursor.position_at
        for page in batched(listed, 500):
            by_id = {item_id: item for item in page if (item_id := _int(item.get("id")))}
            rows = session.scalars(select(ActItem).where(ActItem.item_id.in_(list(by_id))))
            for row in rows:
                item = by_id[row.item_id or 0]
                if row.status == "synced" and str(item.get("stageId") or "") != row.stage_id:
                    item_changed(session, row.item_id or 0)
                    marked += 1
            for item in page:
                modified = parse_bitrix_time(item.get("updatedTime"))
                if modified is not None:
                    latest = max(latest, modified) if latest else modified
        cursor.position_at = latest
        cursor.position = latest.isoformat() if latest else None
    if marked:
        log.info("acts.items.reconcile.marked", seen=len(listed), marked=marked)
    return {"seen": len(listed), "marked": marked}
