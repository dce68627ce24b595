"""The SEP workstation's work lists as JSON (read scope): ``/sep`` gives the count of each."""

from __future__ import annotations

from datetime import date
from typing import Any

from fastapi import APIRouter, Depends, Query

from models.db import session_scope
from tasks.sep import queries
from workers.gateway.auth import require

router = APIRouter(prefix="/sep", tags=["sep"], dependencies=[Depends(require("read"))])
Limit = Query(queries.DEFAULT_LIMIT, ge=0, le=1000)


@router.get("")
def summary() -> dict[str, int]:
    """How many items each list holds (the numbers in brackets on the seed's tabs)."""
    with session_scope() as session:
        return queries.summary(session)


@router.get("/letters")
def letters(limit: int = Limit) -> dict[str, Any]:
    with session_scope() as session:
        return queries.letters(session, limit).as_dict()


@router.get("/ownership-changes")
def ownership_changes(
    responsible: str | None = None,
    asset: str | None = None,
    vin: str | None = None,
    epts: str | None = None,
    limit: int = Limit,
) -> dict[str, Any]:
    """Ownership changes to us not yet «Исполнен»; filter by responsible (employee id), asset, VIN, ЭПТС."""
    with session_scope() as session:
        return queries.ownership_changes(
            session, responsible=responsible, asset=asset, vin=vin, epts=epts, limit=limit
        ).as_dict()


@router.get("/lease-applications")
def lease_applications(status: str | None = None, limit: int = Limit) -> dict[str, Any]:
    with session_scope() as session:
        return queries.lease_applications(session, status=status, limit=limit).as_dict()


@router.get("/lease-candidates")
def lease_candidates(
    organization: str | None = None, period_from: date | None = None, period_to: date | None = None
) -> dict[str, Any]:
    with session_scope() as session:
        return queries.lease_candidates_list(
            session, organization=organization, period_from=period_from, period_to=period_to
        ).as_dict()


@router.get("/queue")
def queue(limit: int = Limit) -> dict[str, Any]:
    with session_scope() as session:
        return queries.queue(session, limit).as_dict()


@router.get("/errors")
def errors(limit: int = Limit) -> dict[str, Any]:
    with session_scope() as session:
        return queries.errors(session, limit).as_dict()
