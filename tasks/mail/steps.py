"""The mail flow's steps: process a stored letter, send an outgoing one.

``mail.process`` parses the letter, recognises the SEP notice, finds the asset and the responsible,
files the code in ``sep_confirmation_codes``, queues the personal notification (``mail.send``) and
the next step (``sep.request_application_data``), all in the one transaction that marks the row
``processed``. A letter obmen cannot use ends ``ignored`` or ``error`` with its reason; missing
master data (nobody to tell) parks the row instead, to be re-driven once fixed.

``mail.send`` sends a ``pending`` letter once. The one window SMTP leaves — the server accepted the
letter, then the worker died before the commit — is closed by the exchange log: every SMTP exchange
is committed on its own with the letter's Message-ID, and a retry that finds an accepted exchange
for it marks the row sent instead of sending again.
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Any

from sqlalchemy import func, select
from sqlalchemy.orm import Session

from config.settings import Settings, get_settings
from integrations.errors import PermanentError
from integrations.mail.parse import Letter, parse_letter
from integrations.mail.sep import Kind, SepNotice, Verdict, recognise
from integrations.mail.smtp import Attachment, SmtpSender, build_message
from models.db import db_now, insert_ignoring_conflicts
from models.exchange_log import ExchangeLog
from models.mail import MailMessage, OutgoingLetter
from models.sep_codes import SepConfirmationCode
from tasks.machinery.exchange import exchange_recorder
from tasks.machinery.outbox import enqueue_many
from tasks.machinery.steps import step
from tasks.mail.chain import NEXT_STEP_KINDS, PROCESS, REQUEST_APPLICATION_DATA, SEND
from tasks.mail.letters import NewLetter, queue_letters
from tasks.mail.matching import AssetIndex, Match, match_letter
from tasks.mail.notice import compose


def _finish(
    session: Session,
    message: MailMessage,
    status: str,
    reason: str | None,
    result: dict[str, Any],
    **fields: Any,
) -> None:
    """Set the outcome in one go: every attribute set earlier would be flushed by the next query. Values,
    not SQL expressions (the transaction's now() is ``db_now``), so a batch's rows go in one UPDATE."""
    for name, value in {"status": status, "reason": reason, "result": result, **fields}.items():
        setattr(message, name, value)
    message.processed_at = db_now(session)


@dataclass(frozen=True)
class _Acted:
    """A letter acted on: its notice, whom it is about and to tell, and its result so far."""

    message: MailMessage
    notice: SepNotice
    match: Match
    result: dict[str, Any]
    about: dict[str, Any]


def _file_codes(session: Session, acted: Sequence[_Acted]) -> dict[int, bool]:
    """The code rows of the letters that carry a code, once per application and code, in one INSERT:
    by letter, whether it filed its code (False when an earlier letter did)."""
    keyed = [(a, (a.notice.application_number, a.notice.code)) for a in acted if a.notice.code]
    firsts: dict[tuple[str | None, str | None], _Acted] = {}
    for a, key in keyed:
        firsts.setdefault(key, a)
    if not firsts:
        return {}
    rows = [
        {
            "application_number": a.notice.application_number,
            "code": a.notice.code,
            "epts": a.notice.epts,
            "vin": a.notice.vin.value if a.notice.vin else None,
            "valid_until": a.notice.confirm_by,
            "source_message_id": a.message.id,
            "asset_inventory_number": a.match.asset.inventory_number if a.match.asset else None,
            "responsible_id": a.match.responsible.id,
            "match_reason": a.match.reason,
        }
        for a in firsts.values()
    ]
    statement = insert_ignoring_conflicts(session, SepConfirmationCode).returning(
        SepConfirmationCode.application_number, SepConfirmationCode.code
    )
    filed = {(number, code) for number, code in session.connection().execute(statement, rows)}
    return {a.message.id: key in filed and firsts[key] is a for a, key in keyed}


@dataclass(frozen=True)
class Reading:
    """A stored letter as read: its size, the parsed letter (None over the size cap) and the SEP verdict
    (None when the letter is unreadable)."""

    size: int
    letter: Letter | None
    verdict: Verdict | None


def read_message(raw: bytes, settings: Settings) -> Reading:
    if len(raw) > settings.mail_max_message_bytes:
        return Reading(len(raw), None, None)
    letter = parse_letter(raw)
    return Reading(len(raw), letter, recognise(letter, settings.sep_senders) if letter.readable else None)


@dataclass(frozen=True)
class Readings:
    """What the letters of one work transaction share: each read once, and the assets they name."""

    by_id: dict[int, Reading]
    assets: AssetIndex


@contextmanager
def read_letters(session: Session, messages: Sequence[MailMessage]) -> Iterator[Readings]:
    """``mail.process``'s prefetch: the letters' bytes in one query (``raw`` is deferred, a query a
    letter otherwise), each read, and the assets their notices name in one query per kind of evidence."""
    settings = get_settings()
    raws = select(MailMessage.id, MailMessage.raw).where(MailMessage.id.in_([m.id for m in messages]))
    by_id: dict[int, Reading] = {}
    for row_id, raw in session.execute(raws):
        # Reading never raises by design; if it does, the letter is read again in its own savepoint,
        # where the error fails that letter only.
        with contextlib.suppress(Exception):
            by_id[row_id] = read_message(raw or b"", settings)
    notices = [r.verdict.notice for r in by_id.values() if r.verdict is not None and r.verdict.notice]
    yield Readings(by_id, AssetIndex.load(session, notices))


@step(
    PROCESS,
    model=MailMessage,
    statuses={"new"},
    stale_after_s=300,
    batch=True,
    prefetch=read_letters,
    rerun=True,
    set_wise=True,
)
def process_messages(session: Session, messages: list[MailMessage], *, prefetched: Readings) -> None:
    """Parse, recognise, match, file the codes, queue the notifications and the next steps: the
    letters' code rows, notifications and next steps each in one INSERT."""
    acted = [a for message in messages if (a := _act_on(session, message, prefetched)) is not None]
    filed = _file_codes(session, acted)
    composed = [compose(a.notice, a.match, a.message.id) for a in acted]
    queue_letters(
        session,
        [
            NewLetter(
                business_key=c.business_key,
                to_address=a.match.responsible.email or "",
                to_name=a.match.responsible.name,
                subject=c.subject,
                text=c.text,
                html=c.html,
                source=f"mail:{a.message.id}",
            )
            for a, c in zip(acted, composed, strict=True)
        ],
    )
    next_steps = [a for a in acted if a.notice.kind in NEXT_STEP_KINDS]
    enqueue_many(
        session,
        REQUEST_APPLICATION_DATA,
        [
            {"application_number": a.notice.application_number, "source": f"mail:{a.message.id}"}
            for a in next_steps
        ],
        business_keys=[f"sep-application:{a.notice.application_number}" for a in next_steps],
    )
    for a, c in zip(acted, composed, strict=True):
        if a.message.id in filed:
            a.result["code_filed"] = filed[a.message.id]
        a.result["notification"] = c.business_key
        _finish(
            session,
            a.message,
            "processed",
            None,
            a.result,
            **a.about,
            asset_inventory_number=a.match.asset.inventory_number if a.match.asset else None,
            responsible_id=a.match.responsible.id,
            match_reason=a.match.reason,
        )


def _act_on(session: Session, message: MailMessage, prefetched: Readings) -> _Acted | None:
    """The letter to act on with whom it is about; None when it ends here (``ignored`` or ``error``)."""
    reading = prefetched.by_id.get(message.id) or read_message(message.raw or b"", get_settings())
    letter, verdict = reading.letter, reading.verdict
    if letter is None:
        _finish(session, message, "error", f"over the size cap: {reading.size} bytes", {})
        return None
    result: dict[str, Any] = {"letter": letter.summary()}
    if verdict is None:
        _finish(
            session, message, "error", f"unparseable: {'; '.join(letter.defects) or 'no headers'}", result
        )
        return None
    notice = verdict.notice
    if notice is None:
        _finish(session, message, "ignored", verdict.reason, result)
        return None
    result["sep"] = notice.as_dict()
    about = {"kind": notice.kind.value, "application_number": notice.application_number}
    if not notice.application_number:
        reason = f"SEP letter ({verdict.reason}) without an application number"
        _finish(session, message, "error", reason, result, **about)
        return None
    if notice.kind in (Kind.OWNERSHIP_CHANGE, Kind.LEASE_APPLICATION) and not notice.code:
        reason = f"SEP {notice.kind.value} letter without a confirmation code"
        _finish(session, message, "error", reason, result, **about)
        return None
    if notice.kind is Kind.OTHER and not notice.code:
        _finish(
            session,
            message,
            "ignored",
            f"SEP letter with nothing to act on: {letter.subject!r}",
            result,
            **about,
        )
        return None
    match = match_letter(session, notice, letter.to, prefetched.assets)
    result["match"] = match.as_dict()
    return _Acted(message, notice, match, result, about)


def _accepted_before(session: Session, message_id: str) -> ExchangeLog | None:
    return session.scalars(
        select(ExchangeLog)
        .where(ExchangeLog.correlation_id == message_id)
        .where(ExchangeLog.system == "smtp")
        .where(ExchangeLog.response_status == 250)
        .limit(1)
    ).first()


@contextmanager
def smtp_connection(session: Session, letters: Sequence[OutgoingLetter]) -> Iterator[SmtpSender | None]:
    """``mail.send``'s prefetch: one SMTP connection for the letters of a work transaction (opened by the
    first sent), and one database connection recording each exchange in a commit of its own; None when
    OBMEN_SMTP_URL is not set."""
    settings = get_settings()
    if settings.smtp_url is None or not settings.smtp_url.get_secret_value():
        yield None
        return
    with exchange_recorder() as recorder:
        sender = SmtpSender(
            settings.smtp_url.get_secret_value(),
            timeout=settings.mail_timeout_s,
            recorder=recorder,
            ca_file=settings.mail_ca_file,
        )
        with sender.connection():
            yield sender


@step(
    SEND,
    model=OutgoingLetter,
    statuses={"pending"},
    stale_after_s=600,
    batch=True,
    prefetch=smtp_connection,
)
def send_letter(session: Session, letter: OutgoingLetter, *, prefetched: SmtpSender | None) -> None:
    """Send one ``outgoing_letters`` row by SMTP (``OBMEN_SMTP_URL``) and mark it sent."""
    settings = get_settings()
    # Only an earlier attempt (one that failed or died) can have had the letter accepted.
    earlier = (
        _accepted_before(session, letter.message_id) if letter.attempts > 1 or letter.last_error else None
    )
    if earlier is not None:
        letter.status, letter.sent_at = "sent", earlier.created_at
        letter.smtp_response = (
            f"{earlier.response_status} {earlier.response_body} (exchange_log {earlier.id})"
        )
        return
    if prefetched is None:
        raise PermanentError("OBMEN_SMTP_URL is not set: set it and re-drive outgoing_letters")
    message = build_message(
        sender=settings.mail_from,
        to_address=letter.to_address,
        to_name=letter.to_name,
        subject=letter.subject,
        text=letter.text_body,
        html=letter.html_body,
        message_id=letter.message_id,
        attachments=[Attachment.from_json(item) for item in letter.attachments],
    )
    reply = prefetched.send(message, business_key=letter.business_key)
    letter.status, letter.smtp_response = "sent", reply
    letter.sent_at = func.now()
