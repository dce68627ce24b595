"""The acts flow's steps: send to СБИС, fire a deadline, apply a CRM action, sync a deal, send a form,
sync an act's Bitrix24 item, send an act by e-mail.

Each works on one register row (``tasks.machinery.steps``); the logic they share with the register
lives in ``register.py``, ``crm.py``, ``sbis.py``, ``deadlines.py``, ``deals.py``, ``forms.py`` and
``items.py``.
"""

from __future__ import annotations

from datetime import timedelta

from sqlalchemy import select
from sqlalchemy.orm import Session

from config.settings import get_settings
from integrations.errors import PermanentError
from integrations.sbis.client import DocumentNotFound
from models.acts import (
    CRM_NOTIFY,
    CRM_STAGE,
    DEADLINE_FORM,
    DEADLINE_SIGNATURE,
    EMAILING,
    SENDING,
    SENT,
    Act,
    ActCrmAction,
    ActDeadline,
    ActDeal,
    ActFormRequest,
    ActItem,
)
from models.db import db_now, dialect_insert
from models.mail import OutgoingLetter
from tasks.acts import machine
from tasks.acts.chain import CRM_APPLY, DEADLINE_FIRE, DEAL_SYNC, EMAIL_SEND, FORM_SEND, ITEM_SYNC
from tasks.acts.clients import sbis_client
from tasks.acts.crm import claim_stage_rows, find_task, move_deals, notify, responsible_of
from tasks.acts.deadlines import TASK_TITLE, task_text
from tasks.acts.deals import apply_deal, take_products
from tasks.acts.email import act_letter
from tasks.acts.forms import counterparty, form_key, form_link, letter_text
from tasks.acts.items import sync_item
from tasks.acts.register import STAGE_BATCH, change_status, rearm_deal_stages
from tasks.acts.sbis import ACTION, STAGE, offers_send, sbis_document
from tasks.machinery.bitrix24 import bitrix24_client
from tasks.machinery.outbox import enqueue
from tasks.machinery.steps import step
from tasks.machinery.workdays import MOSCOW, end_of_next_working_day
from tasks.mail.letters import queue_letter

# A row left in a step's status this long lost its message or its retries: the sweeper re-drives it.
STALE_AFTER_S = 300


@step("acts.sbis.send", model=Act, statuses={SENDING})
def send_to_sbis(session: Session, act: Act) -> None:
    """Write the act to СБИС under its GUID, prepare and execute «Отправка», then «Акт направлен заявителю»."""
    if not act.sbis_document_id:
        raise PermanentError(f"act {act.number} has no СБИС document id (a paper act cannot go to СБИС)")
    client = sbis_client()
    key = f"act:{act.id}"
    try:
        document = client.read_document(act.sbis_document_id, business_key=key)
    except DocumentNotFound:
        document = client.write_document(sbis_document(session, act), business_key=key)
    if offers_send(document):
        client.prepare_action(act.sbis_document_id, STAGE, ACTION, business_key=key)
        client.execute_action(act.sbis_document_id, STAGE, ACTION, business_key=key)
    change_status(session, act, SENT, actor=machine.OBMEN, note="sent through СБИС")


@step(DEADLINE_FIRE, model=ActDeadline, statuses={"due"}, stale_after_s=STALE_AFTER_S)
def fire_deadline(session: Session, deadline: ActDeadline) -> None:
    """The task «Указать статус акта» for an act unsigned past its working days; for a form unanswered
    3 days, a notification to the deal's responsible."""
    b24 = bitrix24_client()
    key = deadline.subject_key
    now = db_now(session)
    if deadline.kind == DEADLINE_SIGNATURE:
        act = session.get(Act, deadline.act_id) if deadline.act_id else None
        if act is None or act.status != SENT:
            deadline.result = f"skipped: the act is «{act.status if act else 'gone'}» now"
        else:
            task = find_task(b24, key) or b24.task_add(
                {
                    "TITLE": TASK_TITLE,
                    "DESCRIPTION": task_text(act, now),
                    "RESPONSIBLE_ID": responsible_of(b24, deadline.deal_id, key),
                    "DEADLINE": end_of_next_working_day(now).astimezone(MOSCOW).isoformat(),
                    "UF_CRM_TASK": [f"D_{deadline.deal_id}"],
                    "XML_ID": key,
                },
                key=key,
            )
            deadline.result = f"task {task.get('id') or task.get('ID')}"
    elif deadline.kind == DEADLINE_FORM:
        form = session.get(ActFormRequest, deadline.form_request_id) if deadline.form_request_id else None
        if form is not None and form.status == "answered":
            deadline.result = "skipped: the counterparty answered in the meantime"
        else:
            message = (
                f"Заявитель по сделке {deadline.deal_id} не заполнил форму способа обмена актами за "
                f"{get_settings().acts_form_answer_days} дня: свяжитесь с ним и уточните данные по актам."
            )
            deadline.result = notify(b24, deadline.deal_id, message, key)
    else:
        raise PermanentError(f"unknown deadline kind {deadline.kind!r}")
    deadline.status = "fired"


@step(CRM_APPLY, model=ActCrmAction, statuses={"pending"}, stale_after_s=STALE_AFTER_S)
def apply_crm_action(session: Session, action: ActCrmAction) -> None:
    """Do the row's Bitrix24 side effect (the deal's stage, with other waiting deals; a notification)."""
    b24 = bitrix24_client()
    key = action.business_key
    now = db_now(session)
    if action.kind == CRM_STAGE:
        # The sweeper's or a re-drive's way in: this row, and other waiting ones with it.
        rows = [action, *claim_stage_rows(session, None, action.id, STAGE_BATCH - 1)]
        failed = move_deals(session, b24, rows, now, key)
        if action.id in failed:
            raise failed[action.id]
        return
    if action.kind == CRM_NOTIFY:
        action.result = notify(b24, action.deal_id, action.message or action.title or "", key)
    else:
        raise PermanentError(f"unknown CRM action kind {action.kind!r}")
    action.status = "done"
    action.done_at = now


@step(DEAL_SYNC, model=ActDeal, statuses={"pending"})
def sync_deal(session: Session, row: ActDeal) -> None:
    """Read the deal from Bitrix24 (``crm.deal.get``), react to its stage, take the products marked for acts."""
    b24 = bitrix24_client()
    key = f"deal:{row.deal_id}"
    fields = b24.deal_get(row.deal_id, key=key)
    first = row.synced_at is None
    apply_deal(session, row, fields)
    take_products(session, row, fields, b24, key)
    if first and session.scalar(select(Act.id).where(Act.deal_id == row.deal_id).limit(1)) is not None:
        # Its stage is known now: the drafts' «Подготовка акта» waited for it (``deal_stages``).
        rearm_deal_stages(session, [row.deal_id])


@step(FORM_SEND, model=ActFormRequest, statuses={"to_send"})
def send_form(session: Session, form: ActFormRequest) -> None:
    """Send the counterparty the letter with the form link, and start the 3-day deadline."""
    key = f"act-form:{form.id}"
    deal, company, email = counterparty(bitrix24_client(), form.deal_id, key)
    title = str(deal.get("TITLE") or f"№ {form.deal_id}")
    form.letter_id = queue_letter(
        session,
        business_key=key,
        to_address=email,
        to_name=str(company.get("TITLE") or "") or None,
        subject=f"Способ обмена актами по сделке «{title}»",
        text=letter_text(title, form_link(form.token)),
        source="acts",
    )
    now = db_now(session)
    form.email = email
    form.company_title = str(company.get("TITLE") or "") or None
    form.status = "sent"
    form.sent_at = now
    session.execute(
        dialect_insert(session, ActDeadline)
        .values(
            kind=DEADLINE_FORM,
            subject_key=form_key(form.id),
            deal_id=form.deal_id,
            form_request_id=form.id,
            due_at=now + timedelta(days=get_settings().acts_form_answer_days),
            status="waiting",
        )
        .on_conflict_do_nothing(index_elements=["subject_key"])
    )


@step(ITEM_SYNC, model=ActItem, statuses={"pending"})
def sync_act_item(session: Session, row: ActItem) -> None:
    """Take a manager's move from the act's Bitrix24 item, then put the act's stage, file and note on it."""
    sync_item(session, row, bitrix24_client())


@step(EMAIL_SEND, model=Act, statuses={EMAILING})
def send_by_email(session: Session, act: Act) -> None:
    """Queue the letter with the act attached to the company's e-mail, then look until it has left."""
    key = f"act-email:{act.id}"
    letter = session.scalars(select(OutgoingLetter).where(OutgoingLetter.business_key == key)).one_or_none()
    if letter is None:
        queue_letter(session, business_key=key, source="acts", **act_letter(session, act, key))
    elif letter.status == "sent":
        change_status(
            session,
            act,
            SENT,
            actor=machine.OBMEN,
            now=letter.sent_at,
            note=f"e-mailed to {letter.to_address}",
        )
        return
    elif letter.is_parked:
        # Not parked itself: the operator re-drives the letter, and the act follows it.
        act.record_error(f"the letter to {letter.to_address} is parked: {letter.last_error}")
    enqueue(session, EMAIL_SEND, {"id": act.id}, delay_s=get_settings().acts_email_check_s, business_key=key)
