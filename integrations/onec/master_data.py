"""The master-data file from 1C: one JSON object whose keys are optional lists (DESIGN.md, Contracts).

Each row is validated on its own, so one bad row is reported by its place and field
(``assets[3].vin: VIN may not contain O``) while the good rows still load. Fields beyond these are
ignored, so newer exports load into older obmen.
"""

from __future__ import annotations

import datetime as dt
import warnings
from typing import Any

from pydantic import BaseModel, ConfigDict, EmailStr, Field, ValidationError, field_validator, model_validator

from integrations.validation import Epts, Inn, Kpp, Money, Ogrn, Vin, vin_check_digit_ok


class Row(BaseModel):
    model_config = ConfigDict(extra="ignore", str_strip_whitespace=True)


class OrganizationRow(Row):
    inn: Inn
    kpp: Kpp | None = None
    name: str = Field(min_length=1)


class EmployeeRow(Row):
    id: str = Field(min_length=1, max_length=64)
    name: str = Field(min_length=1)
    email: EmailStr | None = None
    bitrix24_user_id: int | None = None


class CounterpartyRow(Row):
    inn: Inn
    kpp: Kpp | None = None
    name: str = Field(min_length=1)
    email: EmailStr | None = None
    # What registering the counterparty in SEP needs besides (the seed's counterparty form).
    ogrn: Ogrn | None = None
    address: str | None = Field(None, min_length=1, max_length=1000)


class AssetRow(Row):
    inventory_number: str = Field(min_length=1, max_length=64)
    name: str = Field(min_length=1)
    vin: Vin | None = None
    epts: Epts | None = None
    responsible: str | None = None
    organization_inn: Inn | None = None

    @field_validator("vin")
    @classmethod
    def _check_digit(cls, vin: str | None) -> str | None:
        if vin and not vin_check_digit_ok(vin):
            # Most Russian and European makers do not use the check digit: keep the VIN.
            warnings.warn(
                f"VIN {vin}: check digit does not match (kept: not all makers use it)", stacklevel=2
            )
        return vin


class SepSettingsRow(Row):
    organization_inn: Inn
    technical_email: EmailStr | None = None
    responsible: str | None = None


class PaymentRow(Row):
    date: dt.date
    amount: Money


class LeaseContractRow(Row):
    """An appendix to a lease contract; the lease term ends with its payment schedule."""

    number: str = Field(min_length=1, max_length=100)
    date: dt.date
    document_name: str = Field(min_length=1)
    lessee_inn: Inn
    lease_term_end: dt.date | None = None
    payment_schedule: list[PaymentRow] | None = None
    epts: list[Epts] = Field(min_length=1)
    organization_inn: Inn | None = None

    @model_validator(mode="after")
    def _term_from_schedule(self) -> LeaseContractRow:
        if self.payment_schedule:
            last = max(p.date for p in self.payment_schedule)
            if self.lease_term_end is not None and self.lease_term_end != last:
                raise ValueError(
                    f"lease_term_end {self.lease_term_end} differs from the last payment date {last}"
                )
            self.lease_term_end = last
        if self.lease_term_end is None:
            raise ValueError("give lease_term_end or a payment_schedule to take it from")
        return self


class TariffRow(Row):
    code: str = Field(min_length=1, max_length=64)
    name: str = Field(min_length=1)
    monthly_fee: Money


class SubscriberRow(Row):
    inn: Inn
    name: str = Field(min_length=1)
    phone: str | None = None
    tariff: str | None = None
    contract: str | None = None
    bitrix24_deal_id: int | None = None
    responsible: str | None = None
    address: str | None = Field(None, max_length=500)
    line: str | None = Field(None, max_length=64)


# Loaded in this order, so that references (responsible, tariff, organisation) exist first.
SECTIONS: dict[str, type[Row]] = {
    "organizations": OrganizationRow,
    "employees": EmployeeRow,
    "counterparties": CounterpartyRow,
    "tariffs": TariffRow,
    "assets": AssetRow,
    "lease_contracts": LeaseContractRow,
    "subscribers": SubscriberRow,
}
SINGLE_SECTIONS: dict[str, type[Row]] = {"sep_settings": SepSettingsRow}


class ParsedFile(BaseModel):
    rows: dict[str, list[tuple[int, Row]]]
    errors: list[str]
    warnings: list[str]


def parse(document: Any) -> ParsedFile:
    """Validate every row; never raises for a bad row, only for a document that is not an object."""
    if not isinstance(document, dict):
        raise ValueError("the master-data file is one JSON object with lists under known keys")
    rows: dict[str, list[tuple[int, Row]]] = {}
    errors: list[str] = []
    found_warnings: list[str] = []
    for key in document:
        if key not in SECTIONS and key not in SINGLE_SECTIONS:
            found_warnings.append(f"{key}: unknown section, ignored")
    for key, model in {**SECTIONS, **SINGLE_SECTIONS}.items():
        raw = document.get(key)
        if raw is None:
            continue
        if key in SINGLE_SECTIONS:
            raw = raw if isinstance(raw, list) else [raw]
        if not isinstance(raw, list):
            errors.append(f"{key}: must be a list")
            continue
        for index, item in enumerate(raw):
            where = f"{key}[{index}]"
            with warnings.catch_warnings(record=True) as caught:
                warnings.simplefilter("always")
                try:
                    row = model.model_validate(item)
                except ValidationError as exc:
                    for err in exc.errors():
                        field = ".".join(str(p) for p in err["loc"]) or "row"
                        errors.append(f"{where}.{field}: {err['msg']}")
                    continue
            found_warnings += [f"{where}: {w.message}" for w in caught]
            rows.setdefault(key, []).append((index, row))
    return ParsedFile(rows=rows, errors=errors, warnings=found_warnings)
