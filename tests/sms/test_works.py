"""Planned repair works (seed 001): announced over HTTP and the CLI, the affected subscribers found,
one SMS each at the account's pace, a reminder the day before, a report; bad input refused; a
worker killed mid-step or mid-mailing loses and doubles nothing."""

from __future__ import annotations

import json
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from typing import Any

import httpx
import pytest
from click.testing import CliRunner
from sqlalchemy import insert, select, update

from models.db import session_scope
from models.master import Subscriber
from models.sms import SmsMessage
from models.works import PlannedWorks, WorksDeadline
from tasks.machinery.outbox import set_dispatch_mode
from tasks.machinery.steps import STEPS, Outcome, run_step
from tasks.payments import works as works_logic
from tasks.payments.billing import escalate
from tests.harness.gateway import GatewayThread
from tests.harness.outbox import run_pending
from workers.cli import cli

WRITE = {"Authorization": "Bearer test-write-token"}
READ = {"Authorization": "Bearer test-read-token"}
STARTS = datetime.now(UTC) + timedelta(days=3)
WINDOW = {"starts_at": STARTS.isoformat(), "ends_at": (STARTS + timedelta(hours=4)).isoformat()}
PEOPLE = [
    # inn, phone, line, address
    ("7700000001", "+79160000001", "Л-7", "г. Казань, ул. Ленина, д. 1"),
    ("7700000002", "89160000002", None, "Г. КАЗАНЬ, ул. Ленина, д. 9"),
    ("7700000003", "8 (843) 231-00-00", "Л-7", None),  # a landline: fails, counted
    ("7700000004", None, "Л-7", None),  # no phone: nothing to send
    ("7700000005", "+79160000005", "Л-8", "г. Казань, ул. Баумана, д. 2"),  # not concerned
]


@pytest.fixture
def people(smsc: str) -> Iterator[None]:
    with session_scope() as s:
        s.execute(
            insert(Subscriber),
            [
                {"inn": i, "name": f"Абонент {i}", "phone": p, "line": ln, "address": a}
                for i, p, ln, a in PEOPLE
            ],
        )
    yield


def announce(gw: str, **body: Any) -> httpx.Response:
    payload = {"number": "РР-1", "line": "Л-7", "text": "Связи не будет.", **WINDOW, **body}
    # None: the field left out.
    return httpx.post(
        f"{gw}/billing/works", json={k: v for k, v in payload.items() if v is not None}, headers=WRITE
    )


def sms_rows() -> list[tuple[str, str]]:
    with session_scope() as s:
        return [(m.business_key, m.status) for m in s.scalars(select(SmsMessage).order_by(SmsMessage.id))]


def test_works_notify_each_affected_subscriber_once_remind_and_report(
    people: None, smsc: str, obmen_app: Any
) -> None:
    with GatewayThread() as gw:
        set_dispatch_mode("off")  # the gateway publishes in the background; here the test runs the rows
        first = announce(gw.url, addresses=["г. Казань, ул. Ленина"])
        again = announce(gw.url, addresses=["г. Казань, ул. Ленина"])
        assert first.status_code == again.status_code == 202, first.text
        assert first.json() == again.json() and first.json()["business_key"] == "planned_works:РР-1"
        works_id = first.json()["works_id"]
        assert run_pending("billing.works.notify") == [Outcome.DONE]
        assert run_pending("billing.works.notify") == []
        assert sorted(sms_rows()) == [
            (f"works:{works_id}:7700000001", "new"),
            (f"works:{works_id}:7700000002", "new"),
            (f"works:{works_id}:7700000003", "failed"),
        ]
        httpx.put(f"{smsc}/knobs", json={"extra": {"undeliverable": ["79160000002"]}})
        assert run_pending("sms.send") == [Outcome.DONE, Outcome.DONE]
        assert run_pending("sms.check_delivery") == [Outcome.DONE, Outcome.DONE]
        text = httpx.get(f"{smsc}/messages").json()[0]["text"]
        assert text.startswith("Плановые ремонтные работы на линии Л-7") and "Связи не будет." in text

        # The reminder: a deadline row due the day before, swept by billing.escalate.
        with session_scope() as s:
            deadline = s.scalars(select(WorksDeadline)).one()
            assert abs((deadline.due_at - (STARTS - timedelta(days=1))).total_seconds()) < 1
            deadline.due_at = datetime.now(UTC) - timedelta(minutes=1)
        assert escalate() == {"fired": 1, "cancelled": 0}
        assert run_pending("billing.works.fire_reminder", "billing.works.fire_batch") == [Outcome.DONE]
        assert escalate() == {"fired": 0, "cancelled": 0}
        assert run_pending("sms.send") == [Outcome.DONE, Outcome.DONE]
        assert run_pending("sms.check_delivery") == [Outcome.DONE, Outcome.DONE]

        report = httpx.get(f"{gw.url}/billing/works/РР-1", headers=READ)
        assert report.status_code == 200, report.text
        data = report.json()
        assert (data["status"], data["affected"], data["reminder"]["status"]) == ("notified", 4, "done")
        assert data["notices"] == {"delivered": 1, "failed": 2, "pending": 0}
        assert data["reminders"] == {"delivered": 1, "failed": 2, "pending": 0}
        reasons = {f["phone"]: f["reason"] for f in data["failures"] if f["kind"] == "works"}
        assert "невозможно доставить" in reasons["79160000002"]
        assert "not a Russian mobile number" in reasons["8 (843) 231-00-00"]
        assert httpx.get(f"{gw.url}/billing/works/РР-404", headers=READ).status_code == 404

    # The CLI reads the same report.
    shown = CliRunner().invoke(cli, ["billing", "works-report", "РР-1"])
    assert shown.exit_code == 0, shown.output
    assert json.loads(shown.output)["notices"]["delivered"] == 1


def test_bad_announcements_are_refused_and_record_nothing(people: None, obmen_app: Any) -> None:
    with GatewayThread() as gw:
        cases: list[tuple[dict[str, Any], str]] = [
            ({"line": None}, "name the line or the addresses"),
            ({"ends_at": WINDOW["starts_at"]}, "ends_at > starts_at"),
            (
                {"starts_at": "2020-01-01T09:00:00+03:00", "ends_at": "2020-01-01T12:00:00+03:00"},
                "ended already",
            ),
            ({"starts_at": "2026-12-10T09:00:00"}, "timezone"),
            ({"text": ""}, "text"),
            ({"addresses": []}, "addresses"),
        ]
        for change, words in cases:
            answer = announce(gw.url, **change)
            assert answer.status_code == 422, (change, answer.text)
            assert words in answer.text, (change, answer.text)
        assert httpx.post(f"{gw.url}/billing/works", json={}, headers=READ).status_code == 403
    refused = CliRunner().invoke(
        cli,
        ["billing", "announce-works", "--number", "РР-9", "--from", "tomorrow", "--to", "x", "--text", "t"],
    )
    assert refused.exit_code == 1 and "starts_at" in refused.output
    # Other services enqueue the entry by name: a bad message is a dead letter, once, never a loop.
    from models.dead_letters import DeadLetter
    from tasks.payments.entries import announce_works, override_request

    bad = {"number": "РР-9", "line": "Л-7", "text": "т", "starts_at": "soon", "ends_at": WINDOW["ends_at"]}
    assert announce_works.task.apply(kwargs=bad).get() == "rejected"
    assert override_request.task.apply(kwargs={"number": "О-1", "by": "И"}).get() == "rejected"
    with session_scope() as s:
        assert s.scalars(select(PlannedWorks)).all() == []
        letters = s.scalars(select(DeadLetter).order_by(DeadLetter.id)).all()
        assert [d.task_name for d in letters] == ["billing.announce_works", "billing.override_request"]
        assert "starts_at" in letters[0].error and "reason" in letters[1].error


class _WorkerKilled(BaseException):
    """What SIGKILL does to a step: its transaction never commits, nothing after runs."""


def test_a_worker_killed_in_the_notice_leaves_no_half_and_the_rerun_writes_each_once(
    people: None, monkeypatch: pytest.MonkeyPatch
) -> None:
    from tasks.payments.entries import WorksArgs, announce_works

    with session_scope() as s:
        works_id = announce_works.plain(
            s, WorksArgs.model_validate({"number": "РР-2", "line": "Л-7", "text": "т", **WINDOW})
        )
    real = works_logic.send_many

    def dies_after_writing(*args: Any, **kwargs: Any) -> int:
        real(*args, **kwargs)
        raise _WorkerKilled

    monkeypatch.setattr(works_logic, "send_many", dies_after_writing)
    with pytest.raises(_WorkerKilled):
        run_step(STEPS["billing.works.notify"], works_id)
    with session_scope() as s:
        works = s.get(PlannedWorks, works_id)
        assert works is not None and (works.status, works.attempts) == ("new", 1)
    assert sms_rows() == []
    monkeypatch.setattr(works_logic, "send_many", real)
    with session_scope() as s:  # the sweeper's re-drive, in effect
        s.execute(update(PlannedWorks).values(updated_at=datetime.now(UTC) - timedelta(hours=1)))
    assert run_step(STEPS["billing.works.notify"], works_id) is Outcome.DONE
    assert run_step(STEPS["billing.works.notify"], works_id) is Outcome.NOTHING_TO_DO
    assert len(sms_rows()) == 2  # the mobile and the landline (failed); the phoneless gets none
    # The same for the reminder the day before.
    with session_scope() as s:
        s.execute(update(WorksDeadline).values(due_at=datetime.now(UTC) - timedelta(minutes=1)))
    assert escalate() == {"fired": 1, "cancelled": 0}
    monkeypatch.setattr(works_logic, "send_many", dies_after_writing)
    with pytest.raises(_WorkerKilled):
        run_pending("billing.works.fire_reminder", "billing.works.fire_batch")
    with session_scope() as s:
        deadline = s.scalars(select(WorksDeadline)).one()
        assert (deadline.status, deadline.attempts) == ("due", 1)
    assert len(sms_rows()) == 2
    monkeypatch.setattr(works_logic, "send_many", real)
    assert run_step(STEPS["billing.works.fire_reminder"], deadline.id) is Outcome.DONE
    assert sorted(k.split(":")[0] for k, _ in sms_rows()) == [
        "works",
        "works",
        "works_reminder",
        "works_reminder",
    ]
