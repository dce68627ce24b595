"""``obmen import``: upsert the master-data file from 1C. The same file twice changes nothing."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from sqlalchemy import select
from sqlalchemy.orm import Session

from integrations.onec.master_data import Row, parse
from models.master import (
    Asset,
    Counterparty,
    Employee,
    LeaseContract,
    Organization,
    SepSettings,
    Subscriber,
    Tariff,
)


@dataclass(frozen=True)
class Target:
    model: type[Any]
    key: tuple[str, ...]
    # Column -> (referenced model, its key column): checked before writing, reported per row.
    refs: dict[str, tuple[type[Any], str]] = field(default_factory=dict)
    rename: dict[str, str] = field(default_factory=dict)


TARGETS: dict[str, Target] = {
    "organizations": Target(Organization, ("inn",)),
    "employees": Target(Employee, ("id",)),
    "counterparties": Target(Counterparty, ("inn", "kpp")),
    "tariffs": Target(Tariff, ("code",)),
    "assets": Target(
        Asset,
        ("inventory_number",),
        refs={"responsible_id": (Employee, "id"), "organization_inn": (Organization, "inn")},
        rename={"responsible": "responsible_id"},
    ),
    "lease_contracts": Target(LeaseContract, ("number",), refs={"organization_inn": (Organization, "inn")}),
    "subscribers": Target(
        Subscriber,
        ("inn",),
        refs={"tariff": (Tariff, "code"), "responsible_id": (Employee, "id")},
        rename={"responsible": "responsible_id"},
    ),
    "sep_settings": Target(
        SepSettings,
        ("organization_inn",),
        refs={"organization_inn": (Organization, "inn"), "responsible_id": (Employee, "id")},
        rename={"responsible": "responsible_id"},
    ),
}


@dataclass
class ImportReport:
    inserted: dict[str, int] = field(default_factory=dict)
    updated: dict[str, int] = field(default_factory=dict)
    unchanged: dict[str, int] = field(default_factory=dict)
    errors: list[str] = field(default_factory=list)
    warnings: list[str] = field(default_factory=list)

    def as_dict(self) -> dict[str, Any]:
        return self.__dict__


def _values(section: str, row: Row) -> dict[str, Any]:
    target = TARGETS[section]
    values = {target.rename.get(k, k): v for k, v in row.model_dump(mode="python").items()}
    if section == "counterparties":
        values["kpp"] = values.get("kpp") or ""
    if section == "lease_contracts":
        values["epts"] = list(values["epts"])
        if values.get("payment_schedule") is not None:
            values["payment_schedule"] = [
                {"date": p["date"].isoformat(), "amount": str(p["amount"])}
                for p in values["payment_schedule"]
            ]
    return values


def import_master_data(
    session: Session, document: Any, on_row: Callable[[int, int], None] | None = None
) -> ImportReport:
    """Upsert every section of ``document``; ``on_row(done, total)`` follows the rows (progress)."""
    parsed = parse(document)
    report = ImportReport(errors=list(parsed.errors), warnings=list(parsed.warnings))
    total = sum(len(rows) for rows in parsed.rows.values())
    done = 0
    for section, target in TARGETS.items():
        for index, row in parsed.rows.get(section, []):
            done += 1
            if on_row is not None:
                on_row(done, total)
            values = _values(section, row)
            missing = [
                f"{section}[{index}].{column}: no {ref_model.__tablename__} row with {ref_key} {values[column]!r}"
                for column, (ref_model, ref_key) in target.refs.items()
                if values.get(column) is not None
                and session.scalar(select(ref_model).where(getattr(ref_model, ref_key) == values[column]))
                is None
            ]
            if missing:
                report.errors += missing
                continue
            key = {k: values[k] for k in target.key}
            existing = session.scalars(select(target.model).filter_by(**key)).one_or_none()
            if existing is None:
                session.add(target.model(**values))
                session.flush()
                report.inserted[section] = report.inserted.get(section, 0) + 1
                continue
            changed = {k: v for k, v in values.items() if getattr(existing, k) != v}
            if changed:
                for k, v in changed.items():
                    setattr(existing, k, v)
                session.flush()
                report.updated[section] = report.updated.get(section, 0) + 1
            else:
                report.unchanged[section] = report.unchanged.get(section, 0) + 1
    return report
