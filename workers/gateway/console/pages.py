"""The console's page registry: a flow adds its pages, its start-page counts and its chart with one
``Flow`` in ``FLOWS`` (``workers/gateway/console/app.py``)."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field

from fastapi import APIRouter
from sqlalchemy.orm import Session

from models.console import VIEWER
from workers.gateway.console.web import Person


@dataclass(frozen=True)
class Page:
    path: str
    title: str
    role: str = VIEWER


@dataclass(frozen=True)
class Widget:
    """A count on the start page that links to its list (the seed's widget)."""

    key: str
    title: str
    link: str
    count: Callable[[Session], int]


@dataclass(frozen=True)
class Flow:
    router: APIRouter
    pages: tuple[Page, ...] = ()
    widgets: tuple[Widget, ...] = ()
    # Names of the exchange_log systems whose work the flow's chart shows.
    systems: tuple[str, ...] = field(default_factory=tuple)


_flows: list[Flow] = []


def install(flows: list[Flow]) -> None:
    _flows[:] = flows


def flows() -> list[Flow]:
    return list(_flows)


def widgets() -> list[Widget]:
    return [w for f in _flows for w in f.widgets]


def navigation(person: Person) -> list[Page]:
    return [p for f in _flows for p in f.pages if person.may(p.role)]
