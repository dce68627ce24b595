"""Ops: parked rows and dead letters with «Повторить» for an admin (after a confirmation), the outbox
backlog, and the canary. The re-drive is ``tasks.machinery.sweeper.redrive``, as ``obmen redrive``
and ``POST /ops/redrive``."""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter, HTTPException, Request
from fastapi.responses import Response
from sqlalchemy import func, select, union_all
from sqlalchemy.orm import Session

from models.db import session_scope
from models.dead_letters import DeadLetter
from models.outbox import Outbox
from models.steps import step_model, step_models
from tasks.machinery.canary import start_canary
from tasks.machinery.outbox import enqueue
from tasks.machinery.steps import ENTRIES, STEPS
from tasks.machinery.sweeper import UnknownRegister, redrive
from workers.gateway.console.actions import record
from workers.gateway.console.pages import Flow, Page, Widget
from workers.gateway.console.web import (
    ConsoleRoute,
    Person,
    Posted,
    admin,
    back,
    flash,
    operator,
    posted,
    render,
    viewer,
)
from workers.gateway.params import Id

router = APIRouter(prefix="/ops", route_class=ConsoleRoute)
PARKED_ROWS = 200


def parked_rows(session: Session, register: str | None = None) -> list[dict[str, Any]]:
    models = step_models() if register is None else [m for m in [step_model(register)] if m is not None]
    found: list[dict[str, Any]] = []
    for model in models:
        rows = session.scalars(
            select(model).where(model.parked_at.is_not(None)).order_by(model.parked_at).limit(PARKED_ROWS)
        )
        found.extend(
            {
                "register": model.__tablename__,
                "id": r.id,
                "status": r.status,
                "attempts": r.attempts,
                "last_error": r.last_error,
                "parked_at": r.parked_at,
            }
            for r in rows
        )
    return found


def _parked_count(session: Session) -> int:
    """Parked rows of every step register, in one query (each count reads its partial index)."""
    counts = union_all(
        *(
            select(func.count().label("n")).select_from(m).where(m.parked_at.is_not(None))
            for m in step_models()
        )
    ).subquery()
    return int(session.scalar(select(func.coalesce(func.sum(counts.c.n), 0))) or 0)


def _redrivable(letter: DeadLetter) -> bool:
    """A message a task refused after it was decoded: its task is known and it carried keywords only."""
    payload = letter.payload
    return (
        (letter.task_name in ENTRIES or letter.task_name in STEPS)
        and isinstance(payload.get("kwargs"), dict)
        and not payload.get("args")
    )


@router.get("")
def ops(request: Request, person: Person = viewer) -> Response:
    with session_scope() as session:
        parked = parked_rows(session)
        letters = session.scalars(select(DeadLetter).order_by(DeadLetter.id.desc()).limit(100)).all()
        pending = session.scalar(
            select(func.count()).select_from(Outbox).where(Outbox.published_at.is_(None))
        )
        oldest = session.scalar(select(func.min(Outbox.created_at)).where(Outbox.published_at.is_(None)))
        failing = session.scalars(
            select(Outbox)
            .where(Outbox.published_at.is_(None), Outbox.publish_attempts > 0)
            .order_by(Outbox.id)
            .limit(20)
        ).all()
        return render(
            request,
            "ops.html",
            person,
            parked=parked,
            letters=[(letter, _redrivable(letter)) for letter in letters],
            pending=pending or 0,
            oldest=oldest,
            failing=failing,
        )


@router.post("/redrive")
def redrive_rows(request: Request, person: Person = admin, form: Posted = posted) -> Response:
    """«Повторить» parked rows: the first post asks for a confirmation, the second re-drives."""
    selected = form.all("row")  # "<register>:<id>"
    by_register: dict[str, list[int]] = {}
    for item in selected:
        register, _, ident = item.rpartition(":")
        if register and ident.isdigit():
            by_register.setdefault(register, []).append(int(ident))
    if not by_register:
        flash(request, "Отметьте строки", "bad")
        return back(request, "/console/ops")
    if form.get("confirmed") != "1":
        return render(request, "confirm_redrive.html", person, selected=selected, by_register=by_register)
    for register, ids in by_register.items():
        try:
            result = redrive(register, ids)
        except UnknownRegister as exc:
            raise HTTPException(404, str(exc)) from exc
        with session_scope() as session:
            record(
                session,
                request,
                person,
                "ops.redrive",
                f"{register}:{','.join(map(str, ids))}",
                {"redriven": result.ids, "skipped": [list(s) for s in result.skipped]},
            )
        if result.ids:
            flash(request, f"{register}: повторено {', '.join(map(str, result.ids))}")
        for skipped, why in result.skipped:
            flash(request, f"{register}:{skipped} не повторено: {why}", "bad")
    return back(request, "/console/ops")


@router.post("/dead-letters/{letter_id}/redrive")
def redrive_dead_letter(
    request: Request, letter_id: Id, person: Person = admin, form: Posted = posted
) -> Response:
    """Send a refused message's task again with its keywords (after its cause was fixed)."""
    with session_scope() as session:
        letter = session.get(DeadLetter, letter_id)
        if letter is None:
            raise HTTPException(404, "no such dead letter")
        if not _redrivable(letter):
            flash(
                request,
                f"Сообщение {letter_id} нельзя повторить: задача неизвестна или без аргументов",
                "bad",
            )
            return back(request, "/console/ops")
        if form.get("confirmed") != "1":
            return render(request, "confirm_dead_letter.html", person, letter=letter)
        kwargs = letter.payload["kwargs"]
        enqueue(session, letter.task_name, kwargs, business_key=f"dead_letters:{letter_id}")
        record(session, request, person, "ops.redrive_dead_letter", f"dead_letters:{letter_id}", kwargs)
    flash(request, f"Сообщение {letter_id} отправлено снова")
    return back(request, "/console/ops")


@router.post("/canary")
def canary(request: Request, person: Person = operator, form: Posted = posted) -> Response:
    with session_scope() as session:
        sent = start_canary(session)
        session.flush()
        record(session, request, person, "ops.canary", f"canaries:{sent.id}")
        flash(request, f"Канарейка {sent.id} отправлена")
    return back(request, "/console/ops")


FLOW = Flow(
    router,
    pages=(Page("/console/ops", "Сопровождение"),),
    widgets=(Widget("parked", "Остановленные строки", "/console/ops", _parked_count),),
)
