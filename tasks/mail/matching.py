"""Whose vehicle is a SEP letter about: the asset (ОС) and the employee to tell (DESIGN.md).

The asset is found by the full VIN, else by the visible characters of a masked VIN, else by the
ЭПТС number where an asset has it recorded; the first evidence that names exactly one asset wins.
Its responsible employee gets the letter. Where no single asset fits, or the asset has no
responsible, the SEP-responsible from ``sep_settings`` gets it: the settings of the asset's
organisation, else of the organisation whose technical mailbox the letter was sent to, else the
only settings there are. The reason says which evidence decided and what the others showed.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator, Sequence
from dataclasses import dataclass, field
from typing import Any

from sqlalchemy import or_, select
from sqlalchemy.orm import Session

from integrations.errors import PermanentError
from integrations.mail.sep import SepNotice
from models.master import Asset, Employee, SepSettings

MAX_LISTED = 5


@dataclass
class Match:
    asset: Asset | None
    responsible: Employee
    reason: str
    steps: list[str] = field(default_factory=list)

    def as_dict(self) -> dict[str, Any]:
        return {
            "asset": self.asset.inventory_number if self.asset else None,
            "responsible": self.responsible.id,
            "reason": self.reason,
            "steps": self.steps,
        }


def _listed(assets: Sequence[Asset]) -> str:
    names = ", ".join(a.inventory_number for a in assets[:MAX_LISTED])
    return names + (f" and {len(assets) - MAX_LISTED} more" if len(assets) > MAX_LISTED else "")


def _masked_fits(mask: str, vin: str | None) -> bool:
    """What ``vin LIKE mask`` says, the mask's ``*`` read as LIKE's ``_`` (one character)."""
    return (
        vin is not None
        and len(vin) == len(mask)
        and all(m in ("*", v) for m, v in zip(mask, vin, strict=True))
    )


@dataclass
class AssetIndex:
    """The assets a batch of notices can name, loaded in one query per kind of evidence (full VIN,
    masked VIN, ЭПТС) instead of one per letter; each list in inventory-number order."""

    by_vin: dict[str, list[Asset]] = field(default_factory=dict)
    by_mask: dict[str, list[Asset]] = field(default_factory=dict)
    by_epts: dict[str, list[Asset]] = field(default_factory=dict)
    employees: list[Employee] = field(default_factory=list)

    @classmethod
    def load(cls, session: Session, notices: Iterable[SepNotice]) -> AssetIndex:
        vins: set[str] = set()
        masks: set[str] = set()
        epts: set[str] = set()
        for notice in notices:
            vin = notice.vin.value if notice.vin else None
            if vin:
                (masks if "*" in vin else vins).add(vin)
            if notice.epts:
                epts.add(notice.epts)
        index = cls()
        by_order = select(Asset).order_by(Asset.inventory_number)
        if vins:
            # Asset VINs are upper case since their import (integrations/validation.py).
            for asset in session.scalars(by_order.where(Asset.vin.in_(vins))):
                index.by_vin.setdefault(asset.vin or "", []).append(asset)
        if masks:
            # A VIN never holds "_" or "%", so a mask maps onto LIKE's one-character wildcard.
            fits_any = or_(*(Asset.vin.like(mask.replace("*", "_")) for mask in sorted(masks)))
            for asset in session.scalars(by_order.where(fits_any)):
                for mask in masks:
                    if _masked_fits(mask, asset.vin):
                        index.by_mask.setdefault(mask, []).append(asset)
        if epts:
            for asset in session.scalars(by_order.where(Asset.epts.in_(epts))):
                index.by_epts.setdefault(asset.epts or "", []).append(asset)
        # Their responsible employees, for ``match_letter``'s ``session.get`` to find loaded: held here,
        # as the session's identity map holds nothing it was not given to keep.
        responsible = {a.responsible_id for found in index.found() for a in found if a.responsible_id}
        if responsible:
            index.employees = list(session.scalars(select(Employee).where(Employee.id.in_(responsible))))
        return index

    def found(self) -> Iterator[list[Asset]]:
        yield from self.by_vin.values()
        yield from self.by_mask.values()
        yield from self.by_epts.values()

    def looks(self, notice: SepNotice) -> list[tuple[str, list[Asset]]]:
        """The evidence of ``notice`` in the order it counts, each with the assets it names."""
        looks: list[tuple[str, list[Asset]]] = []
        vin = notice.vin.value if notice.vin else None
        if vin and "*" not in vin:
            looks.append((f"full VIN {vin}", self.by_vin.get(vin, [])))
        elif vin:
            looks.append((f"masked VIN {vin}", self.by_mask.get(vin, [])))
        if notice.epts:
            looks.append((f"ЭПТС {notice.epts}", self.by_epts.get(notice.epts, [])))
        return looks


def _one(found: Sequence[Asset], evidence: str, steps: list[str]) -> Asset | None:
    found = found[: MAX_LISTED + 1]  # enough to say "more than MAX_LISTED"
    if len(found) == 1:
        steps.append(f"{evidence}: asset {found[0].inventory_number}")
        return found[0]
    if not found:
        steps.append(f"{evidence}: no asset")
    else:
        many = len(found) if len(found) <= MAX_LISTED else f"more than {MAX_LISTED}"
        steps.append(f"{evidence}: {many} assets ({_listed(found)})")
    return None


def find_asset(notice: SepNotice, steps: list[str], assets: AssetIndex) -> tuple[Asset | None, str | None]:
    """The asset, and the evidence that found it; every look is appended to ``steps``."""
    looks = assets.looks(notice)
    if not looks:
        steps.append("the letter carries neither a usable VIN nor an ЭПТС number")
    for evidence, found in looks:
        asset = _one(found, evidence, steps)
        if asset is not None:
            return asset, evidence
    return None, None


def _sep_settings(session: Session, asset: Asset | None, recipients: Sequence[str]) -> SepSettings:
    rows = list(session.scalars(select(SepSettings).order_by(SepSettings.organization_inn)))
    if not rows:
        raise PermanentError(
            "no sep_settings: import the SEP settings with their SEP-responsible (obmen import)"
        )
    if asset is not None and asset.organization_inn:
        own = [r for r in rows if r.organization_inn == asset.organization_inn]
        if own:
            return own[0]
    addressed = [r for r in rows if r.technical_email and r.technical_email.lower() in recipients]
    if len(addressed) == 1:
        return addressed[0]
    if len(rows) == 1:
        return rows[0]
    raise PermanentError(
        f"{len(rows)} organisations have SEP settings and the letter names none of their technical mailboxes "
        f"(sent to {', '.join(recipients) or 'nobody'}): cannot tell whose SEP-responsible to tell"
    )


def _with_email(employee: Employee | None, role: str) -> Employee:
    if employee is None:
        raise PermanentError(f"the {role} is not in employees")
    if not employee.email:
        raise PermanentError(
            f"the {role} {employee.id} ({employee.name}) has no e-mail: add it (obmen import)"
        )
    return employee


def match_letter(
    session: Session, notice: SepNotice, recipients: Sequence[str], assets: AssetIndex | None = None
) -> Match:
    """The asset and the person to tell; ``PermanentError`` when master data names nobody to tell.

    ``assets``: the index of a batch of letters this one is in (else the letter's own is loaded)."""
    steps: list[str] = []
    if assets is None:
        assets = AssetIndex.load(session, [notice])
    asset, evidence = find_asset(notice, steps, assets)
    if asset is not None and notice.epts and asset.epts and asset.epts != notice.epts:
        steps.append(f"note: the letter's ЭПТС {notice.epts} differs from the asset's {asset.epts}")
    if asset is not None and asset.responsible_id:
        role = f"responsible of asset {asset.inventory_number}"
        employee = _with_email(session.get(Employee, asset.responsible_id), role)
        return Match(
            asset,
            employee,
            f"{evidence} -> asset {asset.inventory_number}, its responsible {employee.id}",
            steps,
        )
    settings = _sep_settings(session, asset, [r.lower() for r in recipients])
    if not settings.responsible_id:
        raise PermanentError(f"sep_settings of {settings.organization_inn} name no SEP-responsible")
    employee = _with_email(session.get(Employee, settings.responsible_id), "SEP-responsible")
    why = (
        f"asset {asset.inventory_number} has no responsible" if asset is not None else "no single asset fits"
    )
    return Match(asset, employee, f"SEP-responsible {employee.id}: {why} ({'; '.join(steps)})", steps)
