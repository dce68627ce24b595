"""Mail registers: letters read from the mailbox (``mail_messages``) and letters to send
(``outgoing_letters``)."""

from __future__ import annotations

from collections.abc import Iterable
from datetime import datetime
from typing import Any, ClassVar

from sqlalchemy import (
    BigInteger,
    ForeignKey,
    Index,
    Integer,
    LargeBinary,
    String,
    Text,
    UniqueConstraint,
    func,
    select,
)
from sqlalchemy.orm import Mapped, Session, deferred, mapped_column

from models.base import Base, BigId, UTCDateTime
from models.gauges import Sample, register_gauge
from models.steps import StepMixin


class MailMessage(StepMixin, Base):
    """One message of the mailbox, stored once under its IMAP identity (mailbox, UIDVALIDITY, UID).

    ``new`` → ``processed`` (a SEP letter filed and acted on), ``ignored`` (not from SEP, a kind
    obmen does not act on, or the same letter as an earlier row) or ``error`` (over size,
    unreadable, or a SEP letter whose fields could not be read); ``reason`` says which.
    """

    __tablename__ = "mail_messages"
    STATUSES: ClassVar[tuple[str, ...]] = ("new", "processed", "ignored", "error")
    TERMINAL: ClassVar[frozenset[str]] = frozenset({"processed", "ignored", "error"})

    id: Mapped[int] = mapped_column(BigId, primary_key=True)
    # The mailbox URL without its password (``imaps://sep@mail.example.ru:993/INBOX``).
    mailbox: Mapped[str] = mapped_column(String(500), nullable=False)
    uidvalidity: Mapped[int] = mapped_column(BigInteger, nullable=False)
    uid: Mapped[int] = mapped_column(BigInteger, nullable=False)
    status: Mapped[str] = mapped_column(String(16), default="new", server_default="new", nullable=False)
    reason: Mapped[str | None] = mapped_column(Text)
    # The fallback identity across a UIDVALIDITY change: Message-ID plus a hash of the content.
    message_id: Mapped[str | None] = mapped_column(String(998))
    content_hash: Mapped[str] = mapped_column(String(64), nullable=False)
    duplicate_of_id: Mapped[int | None] = mapped_column(ForeignKey("mail_messages.id"))
    size: Mapped[int] = mapped_column(Integer, nullable=False)
    sender: Mapped[str | None] = mapped_column(String(320))
    subject: Mapped[str | None] = mapped_column(Text)
    received_at: Mapped[datetime | None] = mapped_column(UTCDateTime())
    fetched_at: Mapped[datetime] = mapped_column(UTCDateTime(), server_default=func.now(), nullable=False)
    # The message as the server gave it; NULL for a duplicate (the first row has it) and for an
    # over-size message (only its header block is kept, in ``headers``).
    raw: Mapped[bytes | None] = deferred(mapped_column(LargeBinary))
    headers: Mapped[str | None] = mapped_column(Text)
    # What parsing and extraction found: the letter's kind, fields, VIN look-alikes mapped, MIME
    # defects, which part gave the text, the match; see docs/registers.md.
    result: Mapped[dict[str, Any] | None] = mapped_column()
    kind: Mapped[str | None] = mapped_column(String(32))
    application_number: Mapped[str | None] = mapped_column(String(64), index=True)
    asset_inventory_number: Mapped[str | None] = mapped_column(ForeignKey("assets.inventory_number"))
    responsible_id: Mapped[str | None] = mapped_column(ForeignKey("employees.id"))
    match_reason: Mapped[str | None] = mapped_column(Text)
    processed_at: Mapped[datetime | None] = mapped_column(UTCDateTime())

    __table_args__ = (
        UniqueConstraint("mailbox", "uidvalidity", "uid"),
        Index("ix_mail_messages_identity", "content_hash", "message_id"),
        Index("ix_mail_messages_status", "status"),
    )


class OutgoingLetter(StepMixin, Base):
    """A letter to send by SMTP, once per business key: ``pending`` → ``sent`` (``mail.send``).

    A letter that cannot be sent (the server refuses the recipient) is parked with the reason.
    """

    __tablename__ = "outgoing_letters"
    TERMINAL: ClassVar[frozenset[str]] = frozenset({"sent"})

    id: Mapped[int] = mapped_column(BigId, primary_key=True)
    business_key: Mapped[str] = mapped_column(String(300), nullable=False, unique=True)
    status: Mapped[str] = mapped_column(
        String(16), default="pending", server_default="pending", nullable=False
    )
    # Who asked for it: "mail:<mail_messages.id>", "act:<id>" ...
    source: Mapped[str | None] = mapped_column(String(200))
    to_address: Mapped[str] = mapped_column(String(320), nullable=False)
    to_name: Mapped[str | None] = mapped_column(String(300))
    subject: Mapped[str] = mapped_column(Text, nullable=False)
    text_body: Mapped[str] = mapped_column(Text, nullable=False)
    html_body: Mapped[str | None] = mapped_column(Text)
    # [{"filename", "content_type", "data_b64"}]
    attachments: Mapped[list[Any]] = mapped_column(default=list, nullable=False)
    # Our Message-ID, fixed when the row is written: a resend after a lost commit carries the same
    # one, and the exchange log is searched by it before sending again.
    message_id: Mapped[str] = mapped_column(String(300), nullable=False, unique=True)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime(), server_default=func.now(), nullable=False)
    sent_at: Mapped[datetime | None] = mapped_column(UTCDateTime())
    smtp_response: Mapped[str | None] = mapped_column(Text)


@register_gauge("obmen_mail_messages", "Letters in the mail_messages register, per status", ("status",))
def _mail_by_status(session: Session) -> Iterable[Sample]:
    counts = dict(
        session.execute(select(MailMessage.status, func.count()).group_by(MailMessage.status)).all()
    )
    for status in MailMessage.STATUSES:
        yield {"status": status}, counts.get(status, 0)


@register_gauge("obmen_outgoing_letters_pending", "Outgoing letters not yet sent (parked ones included)")
def _letters_pending(session: Session) -> Iterable[Sample]:
    yield {}, session.scalar(select(func.count()).where(OutgoingLetter.status == "pending")) or 0
