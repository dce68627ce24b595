"""A console action is the same entry or plain function other services use, plus an audit row, in one
transaction: pressing «Подтвердить» writes the outbox row of ``sep.confirm_ownership_change`` and the
audit row together, and the task runs on a worker like any other caller's."""

from __future__ import annotations

from typing import Any

from fastapi import Request
from pydantic import ValidationError
from sqlalchemy.orm import Session

from tasks.machinery.outbox import enqueue
from tasks.machinery.steps import ENTRIES
from workers.gateway.console.accounts import audit
from workers.gateway.console.web import Person, address_of


class Refused(ValueError):
    """The action was not taken; the message says why, for the person."""


def refused_fields(exc: ValidationError) -> str:
    parts = [f"{'.'.join(str(p) for p in e['loc']) or 'форма'}: {e['msg']}" for e in exc.errors()]
    return "Проверьте поля — " + "; ".join(parts)


def record(
    session: Session,
    request: Request,
    person: Person,
    action: str,
    target: str | None,
    detail: dict[str, Any] | None = None,
    outcome: str = "ok",
) -> None:
    audit(session, person.login, action, target, detail, outcome, address_of(request))


def enqueue_entry(
    session: Session, request: Request, person: Person, name: str, kwargs: dict[str, Any], target: str
) -> None:
    """Validate ``kwargs`` as the worker will, then enqueue the entry ``name`` and audit it."""
    kwargs = {"source": f"console:{person.login}", **kwargs}
    try:
        ENTRIES[name].args.model_validate(kwargs)
    except ValidationError as exc:
        raise Refused(refused_fields(exc)) from exc
    enqueue(session, name, kwargs, business_key=f"console:{target}")
    record(session, request, person, name, target, kwargs)
