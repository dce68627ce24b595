"""Pictures drawn on the server as SVG (no script, nothing fetched): per flow, the exchanges done and
failed per hour over the last days, and the outbox backlog over time."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from markupsafe import Markup, escape
from sqlalchemy import case, func, select
from sqlalchemy.orm import Session

from models.db import db_now, session_scope
from models.exchange_log import ExchangeLog
from models.outbox import Outbox
from workers.gateway.console.pages import Flow, flows
from workers.gateway.console.web import MOSCOW, cached

HOURS = 72
# Bars per hour need no fresher numbers than this (whatever the count cache is set to).
CHART_TTL_S = 60.0
WIDTH, HEIGHT, PAD = 720, 150, 24


def _hour(session: Session, column: Any) -> Any:
    if session.get_bind().dialect.name == "sqlite":
        return func.strftime("%Y-%m-%d %H:00:00", column)
    return func.to_char(func.date_trunc("hour", func.timezone("UTC", column)), "YYYY-MM-DD HH24:00:00")


def _hours(now: datetime) -> list[datetime]:
    top = now.replace(minute=0, second=0, microsecond=0)
    return [top - timedelta(hours=HOURS - 1 - i) for i in range(HOURS)]


def _key(moment: datetime) -> str:
    return moment.strftime("%Y-%m-%d %H:00:00")


@dataclass(frozen=True)
class Chart:
    title: str
    svg: Markup


def bars(title: str, hours: Sequence[datetime], series: Sequence[tuple[str, str, Sequence[int]]]) -> Markup:
    """Stacked bars per hour; ``series`` is (label, css class, values). Day boundaries are marked."""
    top = max([sum(v[i] for _, _, v in series) for i in range(len(hours))] + [1])
    step = (WIDTH - 2 * PAD) / max(len(hours), 1)
    parts = [
        f'<svg class="chart" viewBox="0 0 {WIDTH} {HEIGHT + 2 * PAD}" role="img" aria-label="{escape(title)}">',
        f'<text x="{PAD}" y="14" class="chart-title">{escape(title)} (макс. {top} в час)</text>',
    ]
    for i, moment in enumerate(hours):
        x = PAD + i * step
        base: float = HEIGHT + PAD
        for label, css, values in series:
            h = values[i] / top * HEIGHT
            if h > 0:
                parts.append(
                    f'<rect x="{x:.1f}" y="{base - h:.1f}" width="{max(step - 1, 1):.1f}" height="{h:.1f}" '
                    f'class="{css}"><title>{moment.astimezone(MOSCOW):%d.%m %H}:00 — {escape(label)}: {values[i]}</title></rect>'
                )
                base -= h
        local = moment.astimezone(MOSCOW)
        if local.hour == 0:
            parts.append(
                f'<line x1="{x:.1f}" y1="{PAD}" x2="{x:.1f}" y2="{HEIGHT + PAD}" class="chart-day"/>'
                f'<text x="{x + 2:.1f}" y="{HEIGHT + PAD + 14}" class="chart-axis">{local:%d.%m}</text>'
            )
    legend_x = WIDTH - PAD - 150 * len(series)
    for n, (label, css, values) in enumerate(series):
        x = legend_x + n * 150
        parts.append(
            f'<rect x="{x}" y="4" width="10" height="10" class="{css}"/>'
            f'<text x="{x + 14}" y="13" class="chart-axis">{escape(label)}: {sum(values)}</text>'
        )
    parts.append("</svg>")
    return Markup("".join(parts))


def _exchange_chart(session: Session, title: str, systems: Sequence[str], hours: list[datetime]) -> Chart:
    hour = _hour(session, ExchangeLog.created_at)
    failed = (ExchangeLog.error.is_not(None)) | (ExchangeLog.response_status >= 400)
    rows = session.execute(
        select(hour, func.count(), func.sum(case((failed, 1), else_=0)))
        .where(ExchangeLog.system.in_(systems), ExchangeLog.created_at >= hours[0])
        .group_by(hour)
    ).all()
    by_hour = {str(h): (int(total), int(bad or 0)) for h, total, bad in rows}
    done = [by_hour.get(_key(h), (0, 0))[0] - by_hour.get(_key(h), (0, 0))[1] for h in hours]
    bad = [by_hour.get(_key(h), (0, 0))[1] for h in hours]
    return Chart(title, bars(title, hours, [("выполнено", "ok", done), ("ошибки", "fail", bad)]))


def _backlog_chart(session: Session, hours: list[datetime]) -> Chart:
    start = hours[0]
    created_hour, published_hour = _hour(session, Outbox.created_at), _hour(session, Outbox.published_at)
    created: dict[str, int] = dict(
        session.execute(
            select(created_hour, func.count()).where(Outbox.created_at >= start).group_by(created_hour)
        ).all()
    )
    published: dict[str, int] = dict(
        session.execute(
            select(published_hour, func.count()).where(Outbox.published_at >= start).group_by(published_hour)
        ).all()
    )
    backlog = (
        session.scalar(
            select(func.count())
            .select_from(Outbox)
            .where(
                Outbox.created_at < start, (Outbox.published_at.is_(None)) | (Outbox.published_at >= start)
            )
        )
        or 0
    )
    values = []
    for moment in hours:
        backlog += int(created.get(_key(moment), 0)) - int(published.get(_key(moment), 0))
        values.append(max(backlog, 0))
    title = "Очередь исходящих задач (outbox) на конец часа"
    return Chart(title, bars(title, hours, [("ждут публикации", "wait", values)]))


def _charted() -> list[Flow]:
    return [f for f in flows() if f.systems and f.pages]


def flow_charts() -> list[Chart]:
    """Every flow's chart and the backlog, computed at most once a minute per process."""

    def compute() -> list[Chart]:
        with session_scope() as session:
            hours = _hours(db_now(session))
            charts = [
                _exchange_chart(session, f"{f.pages[0].title}: обмены за {HOURS // 24} дня", f.systems, hours)
                for f in _charted()
            ]
            charts.append(_backlog_chart(session, hours))
            return charts

    found: list[Chart] = cached("charts", compute, CHART_TTL_S)
    return found


def chart_for(path: str) -> Chart | None:
    """The chart of the flow whose pages ``path`` is among (shown under each of its pages)."""
    for flow, chart in zip(_charted(), flow_charts(), strict=False):
        section = f"/console{flow.router.prefix}/" if flow.router.prefix else None
        if (section and path.startswith(section)) or any(path.startswith(p.path) for p in flow.pages):
            return chart
    return None
