"""The counterparty's form: how they want to exchange acts (e-mail, paper, ЭДО with operator and id).

A deal entering «Одобрено комиссией» gets one form request (``approved:<deal>``); a manager may send
more from the deal. The ``acts.form.send`` step reads the deal's company from Bitrix24 for the
address, sends the letter with the form link and starts the 3-day deadline. The answer
(``POST /acts/forms/{token}``) fills the deal and its draft acts, cancels the deadline and notifies
the responsible manager; no answer in 3 days notifies them too (the deadline sweep).
"""

from __future__ import annotations

import secrets
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, model_validator
from sqlalchemy import select, update
from sqlalchemy.orm import Session

from config.settings import get_settings
from integrations.bitrix24 import Bitrix24Client
from integrations.errors import PermanentError
from models.acts import (
    CREATED,
    CRM_NOTIFY,
    EXCHANGE_METHODS,
    Act,
    ActCrmAction,
    ActDeal,
    ActFormRequest,
)
from models.db import db_now, dialect_insert
from tasks.acts.chain import CRM_APPLY, FORM_SEND
from tasks.acts.register import cancel_deadline, ensure_deal
from tasks.machinery.outbox import enqueue


class FormNotFound(LookupError):
    pass


class FormAlreadyAnswered(ValueError):
    pass


class FormAnswer(BaseModel):
    """What the counterparty fills in (the CRM form)."""

    model_config = ConfigDict(extra="forbid", str_strip_whitespace=True)

    exchange_method: Literal["email", "paper", "edo"]
    edo_operator: str | None = Field(None, max_length=200)
    edo_id: str | None = Field(None, max_length=100)

    @model_validator(mode="after")
    def _edo_needs_details(self) -> FormAnswer:
        if self.exchange_method == "edo" and not (self.edo_operator and self.edo_id):
            raise ValueError("for ЭДО give the operator (edo_operator) and your participant id (edo_id)")
        if self.exchange_method != "edo":
            self.edo_operator = self.edo_id = None
        return self


def form_key(form_id: int) -> str:
    return f"form:{form_id}"


def request_form(session: Session, deal_id: int, *, requested_by: str, business_key: str) -> int | None:
    """Record a form request and its ``acts.form.send``; None when ``business_key`` was requested before."""
    ensure_deal(session, deal_id)
    form_id = session.execute(
        dialect_insert(session, ActFormRequest)
        .values(
            business_key=business_key,
            deal_id=deal_id,
            token=secrets.token_urlsafe(32),
            status="to_send",
            requested_by=requested_by,
            attempts=0,
        )
        .on_conflict_do_nothing(index_elements=["business_key"])
        .returning(ActFormRequest.id)
    ).scalar_one_or_none()
    if form_id is not None:
        enqueue(session, FORM_SEND, {"id": form_id}, business_key=business_key)
    return form_id


def email_of(company: dict[str, Any]) -> str | None:
    emails = [e for e in company.get("EMAIL") or [] if isinstance(e, dict) and e.get("VALUE")]
    work = [e for e in emails if e.get("VALUE_TYPE") == "WORK"]
    return str((work or emails)[0]["VALUE"]) if emails else None


def company_of(b24: Bitrix24Client, deal: dict[str, Any], key: str) -> dict[str, Any]:
    company_id = deal.get("COMPANY_ID")
    if not company_id or str(company_id) == "0":
        raise PermanentError(f"deal {deal.get('ID')} has no company in Bitrix24: link one and re-drive")
    return dict(b24.call("crm.company.get", {"id": int(company_id)}, key=key))


def counterparty(b24: Bitrix24Client, deal_id: int, key: str) -> tuple[dict[str, Any], dict[str, Any], str]:
    """The deal, its company and the company's e-mail, as Bitrix24 shows them now."""
    deal = b24.deal_get(deal_id, key=key)
    company = company_of(b24, deal, key)
    email = email_of(company)
    if email is None:
        raise PermanentError(
            f"company {company.get('ID')} of deal {deal_id} has no e-mail in Bitrix24: add one and re-drive"
        )
    return deal, company, email


def form_link(token: str) -> str:
    return f"{get_settings().acts_public_url.rstrip('/')}/acts/forms/{token}"


def letter_text(title: str, link: str) -> str:
    return (
        "Здравствуйте!\n\n"
        f"Чтобы подписать акты выполненных работ по сделке «{title}», выберите, пожалуйста, удобный "
        "способ обмена актами: e-mail, в бумажном виде или через ЭДО. Если выберете ЭДО, укажите "
        "оператора и свой идентификатор участника ЭДО.\n\n"
        f"Форма: {link}\n\n"
        "Ответ займёт минуту; без него мы не сможем направить вам акт.\n"
    )


def answer_form(session: Session, token: str, answer: FormAnswer) -> ActFormRequest:
    """Record the counterparty's answer: the deal and its draft acts take it; the manager is told."""
    form = session.scalars(
        select(ActFormRequest).where(ActFormRequest.token == token).with_for_update()
    ).one_or_none()
    if form is None:
        raise FormNotFound("no such form: the link is wrong or outdated")
    if form.status == "answered":
        raise FormAlreadyAnswered("this form was answered already; ask your manager to change the answer")
    now = db_now(session)
    chosen = answer.model_dump()
    form.answer = chosen
    form.status = "answered"
    form.answered_at = now
    cancel_deadline(session, form_key(form.id))
    session.execute(update(ActDeal).where(ActDeal.deal_id == form.deal_id).values(**chosen))
    drafts = session.scalars(
        select(Act)
        .where(Act.deal_id == form.deal_id, Act.status == CREATED)
        .order_by(Act.id)
        .with_for_update()
    ).all()
    for act in drafts:
        act.exchange_method = answer.exchange_method
        act.edo_operator = answer.edo_operator
        act.edo_id = answer.edo_id
    details = f"; оператор ЭДО {answer.edo_operator}, идентификатор {answer.edo_id}" if answer.edo_id else ""
    notice_key = f"form-answer:{form.id}"
    notice_id = session.execute(
        dialect_insert(session, ActCrmAction)
        .values(
            kind=CRM_NOTIFY,
            business_key=notice_key,
            deal_id=form.deal_id,
            form_request_id=form.id,
            status="pending",
            attempts=0,
            title="Ответ заявителя по актам",
            message=(
                f"Заявитель по сделке {form.deal_id} ответил: способ обмена актами — "
                f"{EXCHANGE_METHODS[answer.exchange_method]}{details}."
            ),
        )
        .on_conflict_do_nothing(index_elements=["business_key"])
        .returning(ActCrmAction.id)
    ).scalar_one_or_none()
    if notice_id is not None:
        enqueue(session, CRM_APPLY, {"id": notice_id}, business_key=notice_key)
    return form
