"""Ops endpoints: parked rows, re-drive, outbox state, dead letters, canary. Bearer tokens with scopes."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from fastapi import APIRouter, Depends, HTTPException
from pydantic import BaseModel, ConfigDict, Field
from sqlalchemy import func, select

from models.db import session_scope
from models.dead_letters import DeadLetter
from models.outbox import Outbox
from models.steps import step_model, step_models
from tasks.machinery.canary import start_canary
from tasks.machinery.sweeper import UnknownRegister, redrive
from workers.gateway.auth import require
from workers.gateway.edge import EdgeRoute
from workers.gateway.params import MAX_LIMIT, Id, Limit, Text

router = APIRouter(prefix="/ops", tags=["ops"], route_class=EdgeRoute)
read = Depends(require("read"))
write = Depends(require("write"))


class ParkedRow(BaseModel):
    model_config = ConfigDict(populate_by_name=True)
    table: str = Field(alias="register")
    id: int
    status: str
    attempts: int
    last_error: str | None
    parked_at: datetime | None


@router.get("/parked", dependencies=[read])
def parked(register: Text | None = None, limit: Limit = 100) -> list[ParkedRow]:
    """Rows whose attempts ran out, with the last error: what needs a person."""
    models = step_models() if register is None else [m for m in [step_model(register)] if m is not None]
    if register is not None and not models:
        raise HTTPException(404, f"no step register called {register!r}")
    found: list[ParkedRow] = []
    with session_scope() as session:
        for model in models:
            rows = session.scalars(
                select(model).where(model.parked_at.is_not(None)).order_by(model.parked_at).limit(limit)
            )
            found.extend(
                ParkedRow(
                    table=model.__tablename__,
                    id=r.id,
                    status=r.status,
                    attempts=r.attempts,
                    last_error=r.last_error,
                    parked_at=r.parked_at,
                )
                for r in rows
            )
    return found


class RedriveRequest(BaseModel):
    table: Text = Field(alias="register")
    ids: list[Id] | None = Field(
        None, max_length=MAX_LIMIT, description="omit to re-drive every parked row of the register"
    )


@router.post("/redrive", dependencies=[write])
def redrive_rows(body: RedriveRequest) -> dict[str, Any]:
    """Un-park rows and run their step again (after fixing the cause)."""
    try:
        result = redrive(body.table, body.ids)
    except UnknownRegister as exc:
        raise HTTPException(404, str(exc)) from exc
    return {"register": result.register, "redriven": result.ids, "skipped": result.skipped}


@router.get("/outbox", dependencies=[read])
def outbox_state(limit: Limit = 20) -> dict[str, Any]:
    with session_scope() as session:
        pending = session.scalar(select(func.count()).where(Outbox.published_at.is_(None))) or 0
        failing = session.scalars(
            select(Outbox).where(Outbox.published_at.is_(None), Outbox.publish_attempts > 0).limit(limit)
        ).all()
        return {
            "pending": pending,
            "failing": [
                {"id": r.id, "task": r.task_name, "attempts": r.publish_attempts, "error": r.last_error}
                for r in failing
            ],
        }


@router.get("/dead-letters", dependencies=[read])
def dead_letters(limit: Limit = 100) -> list[dict[str, Any]]:
    with session_scope() as session:
        rows = session.scalars(select(DeadLetter).order_by(DeadLetter.id.desc()).limit(limit))
        return [
            {
                "id": r.id,
                "created_at": r.created_at,
                "task": r.task_name,
                "payload": r.payload,
                "error": r.error,
            }
            for r in rows
        ]


@router.post("/canary", dependencies=[write], status_code=202)
def canary() -> dict[str, int]:
    """Send a canary through the pipeline now; ``/metrics`` shows when it arrives."""
    with session_scope() as session:
        return {"canary_id": start_canary(session).id}
