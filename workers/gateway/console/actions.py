"""A console action is the same entry or plain function other services use, plus an audit row, in one
transaction: pressing «Подтвердить» writes the outbox row of ``sep.confirm_ownership_change`` and the
audit row together, and the task runs on a worker like any other caller's. An entry whose registers
may refuse at once (``run_entry``) runs in the request instead, as its HTTP route runs it: the person
reads the refusal on the page, and a refused action writes nothing but its audit row."""

from __future__ import annotations

from typing import Any

from fastapi import Request
from pydantic import ValidationError
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

from integrations.errors import PermanentError
from models.db import session_scope
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
    kwargs, _ = _args(person, name, kwargs)
    enqueue(session, name, kwargs, business_key=f"console:{target}")
    record(session, request, person, name, target, kwargs)


def _args(person: Person, name: str, kwargs: dict[str, Any]) -> tuple[dict[str, Any], Any]:
    model = ENTRIES[name].args
    if "source" in model.model_fields:
        kwargs = {"source": f"console:{person.login}", **kwargs}
    try:
        return kwargs, model.model_validate(kwargs)
    except ValidationError as exc:
        raise Refused(refused_fields(exc)) from exc


def run_entry(
    request: Request,
    person: Person,
    name: str,
    kwargs: dict[str, Any],
    target: str,
    refusals: tuple[type[Exception], ...] = (PermanentError,),
) -> Any:
    """Run the entry ``name`` on ``kwargs`` and audit it in one transaction, as its HTTP route does;
    a refusal (bad arguments, or one of ``refusals``: what the registers say no with) rolls it back,
    is audited with its reason and raised as :class:`Refused`."""

    def run(args: Any) -> Any:
        with session_scope() as session:
            result = ENTRIES[name].plain(session, args)
            record(session, request, person, name, target, kwargs)
            return result

    caught: tuple[type[Exception], ...] = (Refused, *refusals)
    try:
        kwargs, args = _args(person, name, kwargs)
        try:
            return run(args)
        except IntegrityError:
            # A concurrent caller opened the request first (one per business key): the second run
            # finds it, as the HTTP route's does.
            return run(args)
    except caught as exc:
        raise refused(request, person, name, target, kwargs, str(exc)) from exc


def refused(
    request: Request, person: Person, action: str, target: str, detail: dict[str, Any], reason: str
) -> Refused:
    """An action not taken (a form's bad field, the registers' no), audited with its reason."""
    with session_scope() as session:
        record(session, request, person, action, target, detail, reason)
    return Refused(reason)
