"""SMS to subscribers (seed 001: reminders, warnings, «вы подключены», planned works): one row per
message, keyed by what it is about, so that a message is sent once however often it is asked for."""

from __future__ import annotations

from collections.abc import Iterable
from datetime import datetime
from typing import ClassVar

from sqlalchemy import Index, String, Text, func, select
from sqlalchemy.orm import Mapped, Session, mapped_column

from models.base import Base, BigId
from models.gauges import Sample, register_gauge
from models.steps import StepMixin

# new -> sent (the provider took it) -> delivered | failed; failed also straight from new (a number
# that is no mobile number, a text the provider refuses).
NEW = "new"
SENT = "sent"
DELIVERED = "delivered"
FAILED = "failed"


class SmsMessage(StepMixin, Base):
    """One SMS to one phone. Its id is also the id the provider files it under, so that a send
    repeated after a crash can first ask the provider whether it already has it."""

    __tablename__ = "sms_messages"
    TERMINAL: ClassVar[frozenset[str]] = frozenset({DELIVERED, FAILED})

    id: Mapped[int] = mapped_column(BigId, primary_key=True)
    # What the message is about: reminder:<inn>:<YYYY-MM>:<n>, disconnect_warning:<inn>:<YYYY-MM>,
    # connected:<request number>, works:<works id>:<inn>, works_reminder:<works id>:<inn>.
    business_key: Mapped[str] = mapped_column(String(160), nullable=False, unique=True)
    kind: Mapped[str] = mapped_column(String(32), nullable=False)
    # The messages of one mailing (planned works: "works:<id>"), for its report.
    campaign: Mapped[str | None] = mapped_column(String(64))
    subscriber_inn: Mapped[str | None] = mapped_column(String(12), index=True)
    # As the provider wants it: 11 digits, 7 first (the raw one when it is no mobile number).
    phone: Mapped[str] = mapped_column(String(32), nullable=False)
    text: Mapped[str] = mapped_column(Text, nullable=False)
    status: Mapped[str] = mapped_column(String(16), nullable=False, default=NEW)
    created_at: Mapped[datetime] = mapped_column(server_default=func.now(), nullable=False)
    sent_at: Mapped[datetime | None] = mapped_column()
    # The provider's last delivery status (SMSC: -1 waiting, 0 with the operator, 1 delivered, 20+ failed).
    provider_status: Mapped[int | None] = mapped_column()
    status_checks: Mapped[int] = mapped_column(default=0, server_default="0", nullable=False)
    finished_at: Mapped[datetime | None] = mapped_column()
    # Why it failed (the provider's code and words), for the report.
    failure: Mapped[str | None] = mapped_column(Text)

    __table_args__ = (Index("ix_sms_messages_campaign_status", "campaign", "status"),)


@register_gauge("obmen_sms_messages", "SMS per status", ("status",))
def _sms(session: Session) -> Iterable[Sample]:
    for status, count in session.execute(select(SmsMessage.status, func.count()).group_by(SmsMessage.status)):
        yield {"status": status}, count
