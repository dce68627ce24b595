"""Demo of the SEP exchange: an ownership change and a lease application through every status.

SEP is the sandbox's emulator (its own minimum delay 2 s, obmen's OBMEN_SEP_MIN_POLL_DELAY_S 2 s in
compressed time). Its letters go through the sandbox mailbox to mail intake, which files the codes
and asks for the applications' data: the real path, letter → code → data → confirmation.
"""

from __future__ import annotations

from collections.abc import Callable
from datetime import date
from typing import Any

import httpx
from sqlalchemy import func, select

from models.db import session_scope
from models.mail import MailMessage
from models.sep import (
    APPLIED,
    OPEN_STATUSES,
    SepApplication,
    SepAssetStatus,
    SepExchangeError,
    SepExchangeHistory,
    SepLeaseApplication,
    SepRequest,
)
from models.sep_codes import SepConfirmationCode
from sandbox.demo import DemoContext, ScenarioFailed
from tasks.machinery.master_data import import_master_data
from tasks.sep import actions, queries

ORG = "7707083893"
DEALER = "7728168971"
LESSEE = "7710140679"
EPTS = "164301000099001"
VIN = "YS2R4X20005399401"
TECHNICAL = "sep@lizing-demo.example.ru"

MASTER: dict[str, Any] = {
    "organizations": [{"inn": ORG, "kpp": "773601001", "name": "ООО «Лизинг-Демо»"}],
    "employees": [
        {"id": "SEP-1", "name": "Кузнецова Мария", "email": "maria@lizing-demo.example.ru"},
        {
            "id": "SEP-2",
            "name": "Соколов Игорь (ответственный за СЭП)",
            "email": "igor@lizing-demo.example.ru",
        },
    ],
    "counterparties": [
        {"inn": LESSEE, "kpp": "771001001", "name": "ПАО «Перевозчик»", "email": "edo@carrier.example.ru"}
    ],
    "assets": [
        {
            "inventory_number": "OS-77",
            "name": "Volvo FH 460",
            "vin": VIN,
            "epts": EPTS,
            "responsible": "SEP-1",
            "organization_inn": ORG,
        }
    ],
    "sep_settings": {"organization_inn": ORG, "technical_email": TECHNICAL, "responsible": "SEP-2"},
    "lease_contracts": [
        {
            "number": "ДЛ-7/1",
            "date": date.today().isoformat(),
            "document_name": "Приложение № 1 к договору лизинга ДЛ-7",
            "lessee_inn": LESSEE,
            "payment_schedule": [
                {"date": f"{date.today().year + 1}-06-30", "amount": "450000.00"},
                {"date": f"{date.today().year + 2}-06-30", "amount": "450000.00"},
            ],
            "epts": [EPTS],
            "organization_inn": ORG,
        }
    ],
}


def _one(query: Any) -> Any:
    with session_scope() as session:
        found = session.scalars(query).first()
        if found is not None:
            session.expunge(found)
        return found


def _follow(ctx: DemoContext, what: str, read: Callable[[], str | None], done: Callable[[str], bool]) -> str:
    """Say every value ``read()`` takes until ``done`` holds: the statuses a row goes through."""
    seen: list[str] = []

    def step() -> str | None:
        value = read()
        if value is not None and (not seen or seen[-1] != value):
            seen.append(value)
        return value if value is not None and done(value) else None

    final = ctx.wait_for(step, what, timeout=90)
    ctx.say(f"{what}: {' → '.join(seen)}")
    return str(final)


def _request_statuses(ctx: DemoContext, operation: str, after_id: int) -> SepRequest:
    """Follow a request through its statuses; then what SEP's own log says of its polls."""

    def read() -> str | None:
        row = _one(select(SepRequest).where(SepRequest.operation == operation, SepRequest.id > after_id))
        if row is None:
            return None
        return f"{row.status}" + (f" «{row.request_status}»" if row.request_status else "")

    _follow(ctx, f"  {operation}", read, lambda v: v.startswith(APPLIED))
    row = _one(
        select(SepRequest)
        .where(SepRequest.operation == operation, SepRequest.id > after_id)
        .order_by(SepRequest.id)
    )
    assert row is not None and row.queue_number is not None
    item = ctx.sandbox.emulator("sep").world.queue[row.queue_number]
    polls = ", ".join(f"+{(at - item.accepted_at).total_seconds():.1f} s {state}" for at, state in item.polls)
    ctx.say(f"    queue number {row.queue_number}, SEP's poll log: {polls}")
    return row


def _last_request_id() -> int:
    with session_scope() as session:
        return session.scalar(select(func.max(SepRequest.id))) or 0


def _mail_intake(ctx: DemoContext, number: str, kind: str) -> None:
    """Mail intake reads SEP's letter (beat's mail.fetch): the code is filed, the responsible told,
    and the application's data asked for."""
    message = ctx.wait_for(
        lambda: _one(
            select(MailMessage).where(
                MailMessage.application_number == number,
                MailMessage.kind == kind,
                MailMessage.status != "new",
            )
        ),
        f"mail intake to read the letter about № {number}",
    )
    code = _one(select(SepConfirmationCode).where(SepConfirmationCode.source_message_id == message.id))
    ctx.say(
        f"mail intake: mail_messages {message.id} «{message.subject}» {message.status} → code "
        f"{code.code if code else '—'} filed, {message.responsible_id} told [{message.match_reason}]"
    )


def run(ctx: DemoContext) -> None:
    sep = ctx.sandbox.emulator("sep")
    with session_scope() as session:
        report = import_master_data(session, MASTER)
    if report.errors:
        raise ScenarioFailed(f"master data refused: {report.errors}")
    ctx.say(
        f"master data: ООО «Лизинг-Демо», asset OS-77 (Volvo FH 460, SEP-1), appendix ДЛ-7/1, mailbox {TECHNICAL}"
    )

    # --- ownership change ------------------------------------------------------------------------------
    base = ctx.sandbox.url + "/_sandbox/sep"
    httpx.post(
        base + "/vehicles", json={"epts": EPTS, "vin": VIN, "owner_inn": DEALER, "owner_name": "ООО «Дилер»"}
    )
    started = httpx.post(
        base + "/ownership-changes",
        json={
            "epts": EPTS,
            "new_owner_inn": ORG,
            "new_owner_name": "ООО «Лизинг-Демо»",
            "notify_email": TECHNICAL,
        },
    ).json()
    number = started["application_number"]
    ctx.say(f"== ownership change № {number}: the dealer starts it in SEP")
    first = _last_request_id()
    _mail_intake(ctx, number, "ownership_change")
    _request_statuses(ctx, "RequestApplicationData", first)
    application = _one(select(SepApplication).where(SepApplication.application_number == number))
    ctx.say(
        f"sep_applications: «{application.status}», we are {application.our_role} ({application.our_status}), "
        f"asset {application.asset_inventory_number}, responsible {application.responsible_id}"
    )
    with session_scope() as session:
        waiting = queries.ownership_changes(session)
    ctx.say(f"work list «Смена собственника» ({waiting.count}): waits for a person (auto-confirm is off)")

    first = _last_request_id()
    wrong = "000000" if started["code"] != "000000" else "111111"
    with session_scope() as session:
        actions.confirm_ownership(session, number, code=wrong, source="demo")
    _request_statuses(ctx, "ConfirmOwnershipChange", first)
    error = _one(select(SepExchangeError).order_by(SepExchangeError.id.desc()))
    ctx.say(f"a code typed wrong by hand → sep_exchange_errors: {error.code} for {error.correlation_id}")

    first = _last_request_id()
    with session_scope() as session:
        actions.confirm_ownership(session, number, source="demo")
    ctx.say("the person confirms with the code from the register")
    _request_statuses(ctx, "ConfirmOwnershipChange", first)
    application = _one(select(SepApplication).where(SepApplication.application_number == number))
    status = _one(select(SepAssetStatus).where(SepAssetStatus.application_number == number))
    ctx.say(f"sep_applications: «{application.status}», our status {application.our_status}")
    ctx.say(f"sep_asset_statuses: OS-77 «{status.status}» as of {status.period:%Y-%m-%d %H:%M:%S}")

    # --- lease application ---------------------------------------------------------------------------------
    # SEP sends the lessee's letter as it registers the application: the request of its data may
    # start before the demo sees «Зарегистрировано», so count requests from before the submission.
    first = _last_request_id()
    with session_scope() as session:
        [candidate] = actions.lease_candidates(session, ORG)
        ctx.say(
            f"== lease: appendix {candidate.contract.number} (term to {candidate.contract.lease_term_end}, "
            f"from its payment schedule), vehicles {candidate.statuses}: ready={candidate.ready}"
        )
        actions.submit_lease(session, candidate.contract.number, source="demo")

    def lease_status() -> str | None:
        row = _one(select(SepLeaseApplication))
        return (
            f"«{row.status}»" + (f" № {row.application_number}" if row.application_number else "")
            if row
            else None
        )

    _follow(ctx, "sep_lease_applications", lease_status, lambda v: "Зарегистрировано" in v)
    lease = _one(select(SepLeaseApplication))
    _mail_intake(ctx, lease.application_number, "lease_application")
    _request_statuses(ctx, "RequestApplicationData", first)
    with session_scope() as session:
        actions.confirm_lease(session, lease.application_number, source="demo")
    ctx.say("the person confirms for the lessee with the code from the technical mailbox")
    _follow(ctx, "sep_lease_applications", lease_status, lambda v: "Исполнен" in v)
    leased = _one(select(SepAssetStatus).order_by(SepAssetStatus.id.desc()))
    ctx.say(f"sep_asset_statuses: OS-77 «{leased.status}» as of {leased.period:%Y-%m-%d %H:%M:%S}")
    _mail_intake(ctx, lease.application_number, "lease_entered")

    # --- the registers ---------------------------------------------------------------------------------------
    first = _last_request_id()
    with session_scope() as session:
        actions.ask_applications(session, source="demo")
    _request_statuses(ctx, "RequestApplications", first)

    def settled() -> bool:
        with session_scope() as session:
            return not session.scalar(select(func.count()).where(SepRequest.status.in_(OPEN_STATUSES)))

    ctx.wait_for(settled, "every request to be applied")
    with session_scope() as session:
        rows = session.scalars(select(SepRequest).order_by(SepRequest.id)).all()
        ctx.say("sep_exchange_queue:")
        for r in rows:
            ctx.say(
                f"  {r.id}  {r.operation:<24} {r.queue_number}  «{r.request_status}»  polls {r.polls}  {r.status}"
            )
        history = session.execute(
            select(SepExchangeHistory.request_status, func.count()).group_by(
                SepExchangeHistory.request_status
            )
        ).all()
        ctx.say("sep_exchange_history: " + ", ".join(f"«{s}» {n}" for s, n in history))
        ctx.say(f"work lists: {queries.summary(session)}")
    report = sep.poll_report()
    ctx.say(
        f"SEP's own poll log: {report['polls']} polls of {report['queue_numbers']} queue numbers, "
        f"{report['polls_before_min_delay']} before its minimum delay; first polls "
        f"{report['first_poll_delay_s']['min']:.1f}–{report['first_poll_delay_s']['max']:.1f} s after acceptance"
    )
    if report["polls_before_min_delay"]:
        raise ScenarioFailed("SEP was polled before its minimum delay")
