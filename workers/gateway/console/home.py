"""The start page (the seed's widget): each flow's counts linking to their lists, refreshed every 60 s
without reloading the page, and a line of what changed since the person last looked."""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter, Request
from fastapi.responses import Response

from models.console import ConsoleUser
from models.db import db_now, session_scope
from workers.gateway.console.charts import flow_charts
from workers.gateway.console.pages import Flow, Page, widgets
from workers.gateway.console.web import ConsoleRoute, Person, cached, render, viewer

router = APIRouter(route_class=ConsoleRoute)
REFRESH_S = 60


def counts() -> dict[str, int]:
    def compute() -> dict[str, int]:
        with session_scope() as session:
            return {w.key: w.count(session) for w in widgets()}

    found: dict[str, int] = cached("home.widgets", compute)
    return found


def _changes(now: dict[str, int], seen: dict[str, Any] | None) -> list[tuple[str, int]]:
    if not seen:
        return []
    titles = {w.key: w.title for w in widgets()}
    return [
        (titles[key], value - int(seen.get(key, 0)))
        for key, value in now.items()
        if key in titles and value != int(seen.get(key, 0))
    ]


def _context(person: Person, remember: bool) -> dict[str, Any]:
    now = counts()
    with session_scope() as session:
        user = session.get(ConsoleUser, person.id)
        assert user is not None
        seen, seen_at = user.seen_counts, user.seen_at
        if remember:
            user.seen_counts, user.seen_at = now, db_now(session)
    return {
        "widgets": [(w, now[w.key]) for w in widgets()],
        "changes": _changes(now, seen),
        "seen_at": seen_at,
        "refresh_s": REFRESH_S,
    }


@router.get("/")
def home(request: Request, person: Person = viewer) -> Response:
    return render(request, "home.html", person, charts=flow_charts(), **_context(person, remember=True))


@router.get("/widgets")
def widget_fragment(request: Request, person: Person = viewer) -> Response:
    """The counts block alone, for the page's 60-second refresh."""
    return render(request, "widgets.html", person, fragment=True, **_context(person, remember=False))


FLOW = Flow(router, pages=(Page("/console/", "Главная"),))
