"""The SEP workstation's work lists as JSON (read scope): ``/sep`` gives the count of each."""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter, Depends

from models.db import session_scope
from tasks.sep import queries
from workers.gateway.auth import require
from workers.gateway.edge import EdgeRoute
from workers.gateway.params import Day, Limit, Text

router = APIRouter(
    prefix="/sep", tags=["sep"], dependencies=[Depends(require("read"))], route_class=EdgeRoute
)


@router.get("")
def summary() -> dict[str, int]:
    """How many items each list holds (the numbers in brackets on the seed's tabs)."""
    with session_scope() as session:
        return queries.summary(session)


@router.get("/letters")
def letters(limit: Limit = queries.DEFAULT_LIMIT) -> dict[str, Any]:
    with session_scope() as session:
        return queries.letters(session, limit).as_dict()


@router.get("/ownership-changes")
def ownership_changes(
    responsible: Text | None = None,
    asset: Text | None = None,
    vin: Text | None = None,
    epts: Text | None = None,
    limit: Limit = queries.DEFAULT_LIMIT,
) -> dict[str, Any]:
    """Ownership changes to us not yet «Исполнен»; filter by responsible (employee id), asset, VIN, ЭПТС."""
    with session_scope() as session:
        return queries.ownership_changes(
            session, responsible=responsible, asset=asset, vin=vin, epts=epts, limit=limit
        ).as_dict()


@router.get("/lease-applications")
def lease_applications(status: Text | None = None, limit: Limit = queries.DEFAULT_LIMIT) -> dict[str, Any]:
    with session_scope() as session:
        return queries.lease_applications(session, status=status, limit=limit).as_dict()


@router.get("/lease-candidates")
def lease_candidates(
    organization: Text | None = None, period_from: Day | None = None, period_to: Day | None = None
) -> dict[str, Any]:
    with session_scope() as session:
        return queries.lease_candidates_list(
            session, organization=organization, period_from=period_from, period_to=period_to
        ).as_dict()


@router.get("/queue")
def queue(limit: Limit = queries.DEFAULT_LIMIT) -> dict[str, Any]:
    with session_scope() as session:
        return queries.queue(session, limit).as_dict()


@router.get("/errors")
def errors(limit: Limit = queries.DEFAULT_LIMIT) -> dict[str, Any]:
    with session_scope() as session:
        return queries.errors(session, limit).as_dict()
