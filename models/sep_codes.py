"""``sep_confirmation_codes`` (регистр «Коды подтверждений СЭП»): codes taken from SEP letters or
entered by hand, one row per application and code. Mail intake writes them; the SEP exchange marks
a code used when a confirmation with it succeeds."""

from __future__ import annotations

from datetime import date, datetime

from sqlalchemy import BigInteger, Date, ForeignKey, String, Text, UniqueConstraint, func
from sqlalchemy.orm import Mapped, mapped_column

from models.base import Base, BigId, UTCDateTime


class SepConfirmationCode(Base):
    __tablename__ = "sep_confirmation_codes"

    id: Mapped[int] = mapped_column(BigId, primary_key=True)
    application_number: Mapped[str] = mapped_column(String(64), nullable=False, index=True)
    code: Mapped[str] = mapped_column(String(32), nullable=False)
    epts: Mapped[str | None] = mapped_column(String(15))
    # As the letter gave it: full, masked (XTA********765432), or absent.
    vin: Mapped[str | None] = mapped_column(String(17))
    valid_until: Mapped[date | None] = mapped_column(Date)
    # The letter it came from; NULL when entered by hand.
    source_message_id: Mapped[int | None] = mapped_column(BigInteger, ForeignKey("mail_messages.id"))
    asset_inventory_number: Mapped[str | None] = mapped_column(ForeignKey("assets.inventory_number"))
    responsible_id: Mapped[str | None] = mapped_column(ForeignKey("employees.id"))
    # How the asset and the responsible were found ("full VIN", "masked VIN", "ЭПТС", "fallback: ...").
    match_reason: Mapped[str | None] = mapped_column(Text)
    entered_by_hand: Mapped[bool] = mapped_column(default=False, nullable=False)
    used_at: Mapped[datetime | None] = mapped_column(UTCDateTime())
    created_at: Mapped[datetime] = mapped_column(UTCDateTime(), server_default=func.now(), nullable=False)

    __table_args__ = (UniqueConstraint("application_number", "code"),)
