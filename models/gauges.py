"""Figures read from the registers for ``/metrics``.

A queue holding countdown tasks reads as empty in Redis, so the truth about backlog lives here.
Each register module adds its own gauges with :func:`register_gauge`.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from dataclasses import dataclass

from sqlalchemy import func, select
from sqlalchemy.orm import Session

from models.base import utcnow
from models.dead_letters import DeadLetter
from models.outbox import Outbox
from models.steps import step_models

Sample = tuple[dict[str, str], float]


@dataclass(frozen=True)
class RegisterGauge:
    name: str
    help: str
    labels: tuple[str, ...]
    collect: Callable[[Session], Iterable[Sample]]


GAUGES: list[RegisterGauge] = []


def register_gauge(
    name: str, help: str, labels: tuple[str, ...] = ()
) -> Callable[[Callable[[Session], Iterable[Sample]]], Callable[[Session], Iterable[Sample]]]:
    def wrap(fn: Callable[[Session], Iterable[Sample]]) -> Callable[[Session], Iterable[Sample]]:
        GAUGES.append(RegisterGauge(name, help, labels, fn))
        return fn

    return wrap


@register_gauge("obmen_outbox_pending", "Outbox rows not yet published")
def _outbox_pending(session: Session) -> Iterable[Sample]:
    yield {}, session.scalar(select(func.count()).where(Outbox.published_at.is_(None))) or 0


@register_gauge("obmen_outbox_oldest_pending_seconds", "Age of the oldest unpublished outbox row")
def _outbox_oldest(session: Session) -> Iterable[Sample]:
    oldest = session.scalar(select(func.min(Outbox.created_at)).where(Outbox.published_at.is_(None)))
    yield {}, (utcnow() - oldest).total_seconds() if oldest else 0.0


@register_gauge("obmen_parked_rows", "Rows parked after their attempts ran out, per register", ("register",))
def _parked(session: Session) -> Iterable[Sample]:
    for model in step_models():
        count = session.scalar(select(func.count()).where(model.parked_at.is_not(None))) or 0
        yield {"register": model.__tablename__}, count


@register_gauge("obmen_dead_letters", "Messages no task could run, recorded in dead_letters")
def _dead_letters(session: Session) -> Iterable[Sample]:
    yield {}, session.scalar(select(func.count()).select_from(DeadLetter)) or 0
