"""What every ``obmen`` command shares: tables and JSON, paging, progress, sessions, and one line
instead of a traceback when a store or a setting is wrong."""

from __future__ import annotations

import json
import sys
from collections.abc import Callable, Iterator, Mapping, Sequence
from contextlib import contextmanager
from typing import Any, TypeVar
from urllib.parse import urlsplit, urlunsplit

import click
from sqlalchemy.orm import Session

from config.logging import configure_logging
from config.settings import get_settings

F = TypeVar("F", bound=Callable[..., Any])

DEFAULT_LIMIT = 100


def table(rows: Sequence[dict[str, Any]], columns: Sequence[str]) -> str:
    """``rows`` as a plain text table of ``columns``, long cells cut at 60 characters."""

    def cell(value: Any) -> str:
        text = "" if value is None else str(value)
        return text if len(text) <= 60 else text[:59] + "…"

    cells = [[cell(row.get(c)) for c in columns] for row in rows]
    widths = [max([len(c), *(len(r[i]) for r in cells)]) for i, c in enumerate(columns)]
    lines = ["  ".join(c.ljust(w) for c, w in zip(columns, widths, strict=True))]
    lines.append("  ".join("-" * w for w in widths))
    lines += ["  ".join(v.ljust(w) for v, w in zip(r, widths, strict=True)) for r in cells]
    return "\n".join(lines)


def echo_json(data: Any) -> None:
    click.echo(json.dumps(data, ensure_ascii=False, indent=2, default=str))


# Every list and report takes --json; every list takes the same --limit and --offset.
json_option = click.option("--json", "as_json", is_flag=True, help="print JSON instead of a table")


def paging(fn: F) -> F:
    fn = click.option(
        "--offset", default=0, show_default=True, type=click.IntRange(min=0), help="rows to skip"
    )(fn)
    return click.option(
        "--limit",
        default=DEFAULT_LIMIT,
        show_default=True,
        type=click.IntRange(1, 10_000),
        help="rows to show",
    )(fn)


class CodeOrLabel(click.ParamType):
    """An option value given as its English code or as the Russian label people see in 1C and
    Bitrix24; the command gets the value the register stores (the code, or the label)."""

    name = "value"

    def __init__(self, labels: Mapping[str, str], stores: str) -> None:
        assert stores in ("code", "label")
        self.labels = dict(labels)
        self.stores = stores

    def get_metavar(self, param: click.Parameter, ctx: click.Context) -> str:
        return "[" + "|".join(self.labels) + "]"

    def help(self) -> str:
        return "; ".join(f"{code} ({label})" for code, label in self.labels.items())

    def convert(self, value: Any, param: click.Parameter | None, ctx: click.Context | None) -> str:
        text = str(value).strip()
        for code, label in self.labels.items():
            if text.casefold() in (code.casefold(), label.casefold()):
                return code if self.stores == "code" else label
        self.fail(f"{value!r} is none of: {self.help()}", param, ctx)


class Progress:
    """Progress of a long command on stderr: a bar on a terminal; otherwise (logs, pipes) a plain
    line at every tenth of the way and at the end."""

    def __init__(self, label: str, total: int) -> None:
        self.label = label
        self.total = total
        self.done = 0
        self._step = max(1, total // 10)
        self._bar: Any = None
        if sys.stderr.isatty():
            self._bar = click.progressbar(length=total, label=label, file=sys.stderr)
            self._bar.__enter__()

    def advance(self, steps: int = 1) -> None:
        before, self.done = self.done, self.done + steps
        if self._bar is not None:
            self._bar.update(steps)
        elif self.done >= self.total or self.done // self._step > before // self._step:
            click.echo(f"{self.label}: {self.done}/{self.total}", err=True)

    def close(self) -> None:
        if self._bar is not None:
            self._bar.__exit__(None, None, None)


@contextmanager
def progress(label: str, total: int) -> Iterator[Progress]:
    shown = Progress(label, total)
    try:
        yield shown
    finally:
        shown.close()


@contextmanager
def following(label: str) -> Iterator[Callable[[int, int], None]]:
    """A ``(done, total)`` callback for a plain function that learns its total as it goes."""
    shown: list[Progress] = []

    def follow(done: int, total: int) -> None:
        if not shown:
            shown.append(Progress(label, total))
        shown[0].advance(done - shown[0].done)

    try:
        yield follow
    finally:
        for bar in shown:
            bar.close()


def publishing() -> None:
    """Commands that enqueue publish after their commit: the configured Celery app must be loaded."""
    from workers.app import app  # noqa: F401

    configure_logging(get_settings())


@contextmanager
def register_session() -> Iterator[Session]:
    """A transaction on the registers, for a command whose actions publish through the outbox."""
    from models.db import session_scope

    publishing()
    with session_scope() as session:
        yield session


def _masked(url: str) -> str:
    parts = urlsplit(url)
    if parts.password is None:
        return url
    netloc = parts.netloc.replace(f":{parts.password}@", ":***@", 1)
    return urlunsplit(parts._replace(netloc=netloc))


def _first_line(exc: BaseException) -> str:
    text = str(exc).strip().splitlines()
    return text[0] if text else type(exc).__name__


def friendly(exc: Exception) -> str | None:
    """One line naming the setting behind a failure of the stores or the settings; None if unknown."""
    import kombu.exceptions
    import pydantic
    import redis
    import sqlalchemy.exc

    from config.settings import MissingSetting

    if isinstance(exc, MissingSetting):
        return str(exc)
    if isinstance(exc, pydantic.ValidationError) and exc.title == "Settings":
        return "; ".join(
            f"OBMEN_{str(error['loc'][0]).upper()}: {error['msg']}" for error in exc.errors() if error["loc"]
        )
    if isinstance(exc, sqlalchemy.exc.OperationalError | sqlalchemy.exc.InterfaceError):
        url = _masked(get_settings().database_url)
        return (
            f"the register store does not answer (OBMEN_DATABASE_URL={url}): {_first_line(exc.orig or exc)}"
        )
    if isinstance(exc, redis.ConnectionError | redis.TimeoutError | kombu.exceptions.OperationalError):
        url = _masked(get_settings().broker_url)
        return f"the broker does not answer (OBMEN_BROKER_URL={url}): {_first_line(exc)}"
    return None
