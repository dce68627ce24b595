"""Master data from 1C: organisations, employees, counterparties, fixed assets, SEP settings,
lease contracts, tariffs and subscribers. Loaded by ``obmen import`` (an idempotent upsert)."""

from __future__ import annotations

import datetime as dt
from decimal import Decimal
from typing import Any

from sqlalchemy import Date, ForeignKey, Numeric, String, UniqueConstraint, func
from sqlalchemy.orm import Mapped, mapped_column

from models.base import Base, BigId, UTCDateTime


class MasterData:
    updated_at: Mapped[dt.datetime] = mapped_column(
        UTCDateTime(), server_default=func.now(), onupdate=func.now(), nullable=False
    )


class Organization(MasterData, Base):
    """Our own legal entities (the lessor, the operator)."""

    __tablename__ = "organizations"
    inn: Mapped[str] = mapped_column(String(12), primary_key=True)
    kpp: Mapped[str | None] = mapped_column(String(9))
    name: Mapped[str] = mapped_column(String(500), nullable=False)


class Employee(MasterData, Base):
    __tablename__ = "employees"
    id: Mapped[str] = mapped_column(String(64), primary_key=True)  # the 1C code
    name: Mapped[str] = mapped_column(String(300), nullable=False)
    email: Mapped[str | None] = mapped_column(String(320))
    bitrix24_user_id: Mapped[int | None] = mapped_column()


class Counterparty(MasterData, Base):
    __tablename__ = "counterparties"
    id: Mapped[int] = mapped_column(BigId, primary_key=True)
    inn: Mapped[str] = mapped_column(String(12), nullable=False)
    # Empty for sole traders (ИП) and persons, who have no КПП.
    kpp: Mapped[str] = mapped_column(String(9), nullable=False, default="")
    name: Mapped[str] = mapped_column(String(500), nullable=False)
    email: Mapped[str | None] = mapped_column(String(320))
    # ОГРН (ОГРНИП) and legal address: what registering the counterparty in SEP needs besides.
    ogrn: Mapped[str | None] = mapped_column(String(15))
    address: Mapped[str | None] = mapped_column(String(1000))
    __table_args__ = (UniqueConstraint("inn", "kpp"),)


class Asset(MasterData, Base):
    """A fixed asset (ОС): here, a vehicle."""

    __tablename__ = "assets"
    inventory_number: Mapped[str] = mapped_column(String(64), primary_key=True)
    name: Mapped[str] = mapped_column(String(500), nullable=False)
    vin: Mapped[str | None] = mapped_column(String(17), index=True)
    epts: Mapped[str | None] = mapped_column(String(15), index=True)
    responsible_id: Mapped[str | None] = mapped_column(ForeignKey("employees.id"))
    organization_inn: Mapped[str | None] = mapped_column(ForeignKey("organizations.inn"))


class SepSettings(MasterData, Base):
    """Settings of the SEP integration per organisation: technical mailbox and SEP-responsible."""

    __tablename__ = "sep_settings"
    organization_inn: Mapped[str] = mapped_column(ForeignKey("organizations.inn"), primary_key=True)
    technical_email: Mapped[str | None] = mapped_column(String(320))
    responsible_id: Mapped[str | None] = mapped_column(ForeignKey("employees.id"))


class LeaseContract(MasterData, Base):
    """An appendix to a lease contract (приложение к договору лизинга) and the vehicles it covers."""

    __tablename__ = "lease_contracts"
    number: Mapped[str] = mapped_column(String(100), primary_key=True)
    date: Mapped[dt.date] = mapped_column(Date, nullable=False)
    document_name: Mapped[str] = mapped_column(String(500), nullable=False)
    lessee_inn: Mapped[str] = mapped_column(String(12), nullable=False)
    # The last date of the payment schedule (график платежей) when the file gives one.
    lease_term_end: Mapped[dt.date] = mapped_column(Date, nullable=False)
    epts: Mapped[list[Any]] = mapped_column(nullable=False)
    # [{"date": "YYYY-MM-DD", "amount": "123.45"}, ...] as 1C exported it.
    payment_schedule: Mapped[list[Any] | None] = mapped_column()
    organization_inn: Mapped[str | None] = mapped_column(ForeignKey("organizations.inn"))


class Tariff(MasterData, Base):
    __tablename__ = "tariffs"
    code: Mapped[str] = mapped_column(String(64), primary_key=True)
    name: Mapped[str] = mapped_column(String(300), nullable=False)
    monthly_fee: Mapped[Decimal] = mapped_column(Numeric(14, 2), nullable=False)


class Subscriber(MasterData, Base):
    """A subscriber (абонент) of the telecom operator, identified by ИНН towards the bank."""

    __tablename__ = "subscribers"
    inn: Mapped[str] = mapped_column(String(12), primary_key=True)
    name: Mapped[str] = mapped_column(String(500), nullable=False)
    phone: Mapped[str | None] = mapped_column(String(32))
    tariff: Mapped[str | None] = mapped_column(ForeignKey("tariffs.code"))
    contract: Mapped[str | None] = mapped_column(String(100))
    bitrix24_deal_id: Mapped[int | None] = mapped_column()
    responsible_id: Mapped[str | None] = mapped_column(ForeignKey("employees.id"))
    # Where the line reaches the subscriber, for the planned works that concern them.
    address: Mapped[str | None] = mapped_column(String(500))
    line: Mapped[str | None] = mapped_column(String(64), index=True)
