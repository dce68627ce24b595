"""``obmen demo``: every flow in one process against the sandboxes, with a readable summary.

With no services it runs the embedded default: SQLite register store, in-process broker, worker and
beat, all emulators on loopback, compressed time. Given ``OBMEN_DATABASE_URL`` and
``OBMEN_BROKER_URL`` it uses them instead (then start ``obmen worker`` and ``obmen beat`` beside it).
"""

from __future__ import annotations

import os
import secrets
import shutil
import sys
import time
import traceback
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, TypeVar

T = TypeVar("T")
DEMO_DIR = Path(".obmen-demo")

# Compressed time: the same code paths, seconds instead of minutes.
COMPRESSED = {
    "OBMEN_RETRY_BACKOFF_S": "1",
    "OBMEN_RETRY_BACKOFF_MAX_S": "2",
    "OBMEN_MAX_ATTEMPTS": "3",
    "OBMEN_OUTBOX_RELAY_INTERVAL_S": "1",
    "OBMEN_SWEEP_INTERVAL_S": "3",
    "OBMEN_CANARY_INTERVAL_S": "3600",
    "OBMEN_SEP_MIN_POLL_DELAY_S": "2",
    "OBMEN_SEP_POLL_INTERVAL_S": "1",
    "OBMEN_MAIL_POLL_INTERVAL_S": "1",
    "OBMEN_ACTS_TRACK_INTERVAL_S": "1",
    "OBMEN_ACTS_DEADLINE_SWEEP_INTERVAL_S": "1",
    "OBMEN_ACTS_RECONCILE_INTERVAL_S": "5",
    # Acts are items of the smart process «Акты»; user 7 is the acts group.
    "OBMEN_ACTS_ITEM_ENTITY_TYPE_ID": "1038",
    "OBMEN_ACTS_GROUP_USER_IDS": "7",
    "OBMEN_ACTS_EMAIL_CHECK_S": "1",
    "OBMEN_EDO_FETCH_INTERVAL_S": "1",
    "OBMEN_EDO_TRACK_INTERVAL_S": "1",
    "OBMEN_EDO_DEADLINE_SWEEP_INTERVAL_S": "1",
    "OBMEN_BANK_HMAC_SECRETS": "demo-bank-secret",
    # The site's token for the invoice API.
    "OBMEN_API_TOKENS": "invoices:demo-site-token",
    "OBMEN_INVOICE_POLL_INTERVAL_S": "2",
    # About 3 and 6 seconds instead of 10 and 30 days.
    "OBMEN_BILLING_REMINDER_AFTER_DAYS": "0.000035",
    "OBMEN_BILLING_DISCONNECT_AFTER_DAYS": "0.00007",
    "OBMEN_BILLING_ESCALATE_INTERVAL_S": "1",
    "OBMEN_SMS_STATUS_INTERVAL_S": "1",
    "OBMEN_LOG_LEVEL": "WARNING",
    "OBMEN_LOG_JSON": "false",
}


# The emulators' own timing, compressed like obmen's (SEP's minimum delay is its own setting).
SANDBOX_KNOBS: dict[str, dict[str, Any]] = {
    "sep": {"extra": {"min_delay_s": 2, "processing_s": 0.5}},
    "synerdocs": {"extra": {"delivery_s": 0.5, "answer_after_s": 2}},
}


class ScenarioFailed(Exception):
    pass


@dataclass
class DemoContext:
    sandbox: Any
    embedded: bool
    lines: list[str] = field(default_factory=list)

    def say(self, line: str) -> None:
        self.lines.append(line)
        print(f"  {line}", flush=True)

    def wait_for(self, condition: Callable[[], T | None], what: str, timeout: float = 60.0) -> T:
        """The first truthy value of ``condition()`` (None, False, 0 and empty mean "not yet")."""
        deadline = time.monotonic() + timeout
        while not (value := condition()):
            if time.monotonic() > deadline:
                raise ScenarioFailed(f"timed out after {timeout:.0f} s waiting for {what}")
            time.sleep(0.1)
        return value


Scenario = Callable[[DemoContext], None]


def scenarios() -> list[tuple[str, Scenario]]:
    """Every flow's demo scenario, in the order a reader meets them. Flows add theirs here."""
    from sandbox.demo import acts, billing, edo, invoices, machinery, mail, payments, sep, sep_changes

    return [
        ("machinery: outbox, retry policy, parking, re-drive", machinery.run),
        ("mail intake: SEP letters -> confirmation codes -> personal notifications", mail.run),
        ("SEP: ownership change and lease application, submit → wait ≥ min delay → poll → apply", sep.run),
        (
            "SEP «Развитие»: counterparty registered, перенаём and end of lease with codes, notices",
            sep_changes.run,
        ),
        ("payments and billing (seed 001): bank API, posting, CRM, escalation", payments.run),
        (
            "billing by SMS (seed 001): reminders, the debt gate and its override, «вы подключены», "
            "requests of any kind, planned works",
            billing.run,
        ),
        (
            "acts: Bitrix24 items, СБИС signing tracked, e-mail acts, deal stages follow, working-day deadlines",
            acts.run,
        ),
        (
            "invoices (seed 004): 1C's invoice, its PDF kept, one-time link, correction, paid by the bank",
            invoices.run,
        ),
        ("EDO (seed 002): Synerdocs box registered, package routed, answer stamped as version 2", edo.run),
    ]


def _prepare_environment() -> bool:
    embedded = "OBMEN_DATABASE_URL" not in os.environ and "OBMEN_BROKER_URL" not in os.environ
    if embedded:
        shutil.rmtree(DEMO_DIR, ignore_errors=True)
        DEMO_DIR.mkdir(parents=True)
        os.environ["OBMEN_DATABASE_URL"] = f"sqlite:///{(DEMO_DIR / 'obmen.db').resolve()}"
        os.environ["OBMEN_BROKER_URL"] = "memory://localhost/"
    for key, value in COMPRESSED.items():
        os.environ.setdefault(key, value)
    return embedded


@contextmanager
def _embedded_runtime(app: Any) -> Iterator[None]:
    from celery.beat import EmbeddedService
    from celery.contrib.testing.worker import start_worker

    beat: Any = EmbeddedService(
        app, thread=True, schedule_filename=str((DEMO_DIR / "beat-schedule").resolve())
    )
    with start_worker(
        app, pool="solo", concurrency=1, perform_ping_check=False, loglevel="WARNING", shutdown_timeout=10
    ):
        beat.start()
        try:
            yield
        finally:
            beat.stop()


def run_demo(console_port: int | None = None) -> int:
    """Every scenario; with ``console_port``, then the console on that port until Ctrl-C."""
    embedded = _prepare_environment()
    if console_port is not None:
        os.environ.setdefault("OBMEN_CONSOLE_SECRET", secrets.token_urlsafe(32))
    from config.settings import get_settings

    get_settings.cache_clear()
    from sandbox.server import Sandbox

    box = Sandbox(scale=1.0).start()
    for emulator in box.emulators:
        emulator.knobs.update(SANDBOX_KNOBS.get(emulator.system, {}))
    for key, value in box.client_settings().items():
        os.environ.setdefault(key, value)
    get_settings.cache_clear()
    settings = get_settings()

    from config.logging import configure_logging
    from models.migrate import upgrade

    configure_logging(settings)
    upgrade()
    from workers.app import app

    where = (
        f"embedded: SQLite at {DEMO_DIR}/obmen.db, in-process broker, worker and beat"
        if embedded
        else "your services: OBMEN_DATABASE_URL and OBMEN_BROKER_URL (run obmen worker and obmen beat beside)"
    )
    print(f"obmen demo — {where}; sandboxes on {box.url}\n", flush=True)
    results: list[tuple[str, str | None]] = []
    runtime = _embedded_runtime(app) if embedded else _nothing()
    try:
        with runtime:
            for title, scenario in scenarios():
                print(f"== {title} ==", flush=True)
                ctx = DemoContext(sandbox=box, embedded=embedded)
                try:
                    scenario(ctx)
                    results.append((title, None))
                except Exception as exc:
                    detail = "".join(traceback.format_exception_only(type(exc), exc)).strip()
                    print(f"  FAILED: {detail}", flush=True)
                    if not isinstance(exc, ScenarioFailed):
                        traceback.print_exc(file=sys.stderr)
                    results.append((title, detail))
                print(flush=True)
            _summary(results)
            if console_port is not None:
                _serve_console(console_port)
            else:
                print("\nTo click through the results in the web console: obmen demo --console")
    finally:
        box.stop()
    return 1 if any(error for _, error in results) else 0


def _summary(results: list[tuple[str, str | None]]) -> None:
    failed = [title for title, error in results if error]
    print(f"== summary: {len(results) - len(failed)} of {len(results)} flows worked ==", flush=True)
    for title in failed:
        print(f"  failed: {title}")


def _serve_console(port: int) -> None:
    """The gateway with the console, over the demo's registers, with the worker still running."""
    import uvicorn

    from models.db import session_scope
    from workers.gateway.app import create_app
    from workers.gateway.console.accounts import add_user

    password = secrets.token_urlsafe(9)
    with session_scope() as session:
        add_user(session, "demo", password, "admin")
    server = uvicorn.Server(uvicorn.Config(create_app(), host="127.0.0.1", port=port, log_level="warning"))
    print(
        f"\n== console: http://127.0.0.1:{port}/console/ — login «demo», password «{password}» (admin); "
        "Ctrl-C stops ==",
        flush=True,
    )
    server.run()


@contextmanager
def _nothing() -> Iterator[None]:
    yield
