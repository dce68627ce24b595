"""Answers the SEP steps look up in the registers: our organisations, assets, codes, statuses."""

from __future__ import annotations

from collections.abc import Iterable
from datetime import date
from zoneinfo import ZoneInfo

from sqlalchemy import or_, select
from sqlalchemy.orm import Session

from integrations.errors import PermanentError
from models.db import db_now, insert_ignoring_conflicts
from models.master import Asset, Organization, SepSettings
from models.sep import SepAssetStatus
from models.sep_codes import SepConfirmationCode

MOSCOW = ZoneInfo("Europe/Moscow")


def today(session: Session) -> date:
    """SEP's dates (confirm-by, periods) are Moscow dates."""
    return db_now(session).astimezone(MOSCOW).date()


def our_inns(session: Session) -> set[str]:
    return set(session.scalars(select(Organization.inn)))


def sep_organization(session: Session, given: str | None = None) -> str:
    """The organisation a request is made for: the one given, else the only one with SEP settings."""
    if given:
        if session.get(Organization, given) is None:
            raise PermanentError(f"ИНН {given} is not one of our organisations (master data: organizations)")
        return given
    inns = list(session.scalars(select(SepSettings.organization_inn)))
    if len(inns) != 1:
        raise PermanentError(
            f"say which organisation asks (organization_inn): {len(inns)} have SEP settings"
            if inns
            else "no organisation has SEP settings (master data: sep_settings)"
        )
    return inns[0]


def assets_of(session: Session, vehicles: Iterable[tuple[str | None, str | None]]) -> list[Asset]:
    """The fixed assets that may be those of ``vehicles`` (ЭПТС, VIN), in one query: for :func:`pick_asset`."""
    known = list(vehicles)
    vins = {vin for _, vin in known if vin}
    eptss = {epts for epts, _ in known if epts}
    if not vins and not eptss:
        return []
    return list(session.scalars(select(Asset).where(or_(Asset.vin.in_(vins), Asset.epts.in_(eptss)))))


def pick_asset(assets: Iterable[Asset], epts: str | None, vin: str | None) -> Asset | None:
    """The fixed asset of a vehicle among ``assets``: by its full VIN, else by its ЭПТС number where
    the asset has it."""
    candidates = list(assets)
    for key, value in (("vin", vin), ("epts", epts)):
        found = [asset for asset in candidates if value and getattr(asset, key) == value]
        if len(found) == 1:
            return found[0]
    return None


def sep_responsible(session: Session, organization_inn: str | None) -> str | None:
    """The SEP-responsible from the settings: who gets what no asset's responsible can take."""
    if organization_inn is None:
        return None
    settings = session.get(SepSettings, organization_inn)
    return settings.responsible_id if settings else None


def usable_code(session: Session, application_number: str) -> SepConfirmationCode | None:
    """The newest code of an application neither used nor refused by SEP (expiry is SEP's to judge)."""
    return session.scalars(
        select(SepConfirmationCode)
        .where(SepConfirmationCode.application_number == application_number)
        .where(SepConfirmationCode.used_at.is_(None))
        .where(SepConfirmationCode.refused_at.is_(None))
        .order_by(SepConfirmationCode.created_at.desc(), SepConfirmationCode.id.desc())
        .limit(1)
    ).first()


def code_for(
    session: Session, application_number: str, given: str | None, *, asset: Asset | None = None
) -> SepConfirmationCode | None:
    """The code to confirm with: one entered by hand (kept in the register as such), else the register's."""
    if given is None:
        return usable_code(session, application_number)
    # The letter with this code may be filed by the mail flow at this very moment: insert or find,
    # never a second row (one per application and code).
    session.execute(
        insert_ignoring_conflicts(session, SepConfirmationCode).values(
            application_number=application_number,
            code=given,
            entered_by_hand=True,
            asset_inventory_number=asset.inventory_number if asset else None,
            responsible_id=asset.responsible_id if asset else None,
            match_reason="entered by hand",
        )
    )
    return session.scalars(
        select(SepConfirmationCode)
        .where(SepConfirmationCode.application_number == application_number)
        .where(SepConfirmationCode.code == given)
    ).one()


def asset_status(session: Session, epts: str) -> str | None:
    """An asset's latest SEP status (by its ЭПТС number), as of the latest period."""
    return session.scalars(
        select(SepAssetStatus.status)
        .where(SepAssetStatus.epts == epts)
        .order_by(SepAssetStatus.period.desc(), SepAssetStatus.id.desc())
        .limit(1)
    ).first()
