"""SMS through the SMSC emulator: sent once under our id, delivery reports, the balance running out,
the provider's pace, bad numbers and bad answers."""

from __future__ import annotations

from typing import Any

import httpx
import pytest
from click.testing import CliRunner
from sqlalchemy import select

from models.db import session_scope
from models.exchange_log import ExchangeLog
from models.sms import SmsMessage
from tasks.machinery.steps import STEPS, Outcome, run_step
from tasks.machinery.sweeper import redrive
from tasks.sms.chain import CHECK_DELIVERY, SEND
from tasks.sms.outgoing import Outgoing, send_many, send_sms
from tests.harness.outbox import run_pending
from workers.cli import cli

PHONE = "79161234567"


def queue(key: str, phone: str | None = "8 (916) 123-45-67", text: str = "Проверка") -> None:
    with session_scope() as s:
        send_sms(s, Outgoing(key=key, kind="test", phone=phone, text=text, subscriber_inn="7707083893"))


def message(key: str) -> SmsMessage:
    with session_scope() as s:
        row = s.scalars(select(SmsMessage).where(SmsMessage.business_key == key)).one()
        s.expunge(row)
        return row


def taken(smsc: str) -> list[dict]:
    return httpx.get(f"{smsc}/messages").json()


def test_a_message_is_sent_once_under_our_id_and_its_delivery_followed(smsc: str) -> None:
    queue("t:1")
    queue("t:1")  # asked twice: one row, one send
    assert run_pending(SEND) == [Outcome.DONE]
    row = message("t:1")
    assert (row.status, row.phone) == ("sent", PHONE)
    assert [(m["id"], m["phone"], m["text"]) for m in taken(smsc)] == [(str(row.id), PHONE, "Проверка")]
    assert run_pending(CHECK_DELIVERY) == [Outcome.DONE]
    row = message("t:1")
    assert (row.status, row.provider_status, row.status_checks) == ("delivered", 1, 1)
    with session_scope() as s:
        logged = s.scalars(select(ExchangeLog).where(ExchangeLog.system == "sms")).all()
    assert {e.operation for e in logged} == {"send.php", "status.php"}
    assert all("sandbox-smsc-password" not in (e.request_body or "") + (e.url or "") for e in logged)
    assert all("psw=***" in (e.request_body or "") for e in logged)


def test_a_send_repeated_after_a_lost_answer_asks_the_provider_first(smsc: str) -> None:
    queue("t:lost")
    row = message("t:lost")
    # The first attempt reached SMSC, and its worker died before recording it (the attempt counted).
    httpx.put(f"{smsc}/knobs", json={"extra": {"deliver_after_s": 3600}})
    assert run_step(STEPS[SEND], row.id) is Outcome.DONE
    with session_scope() as s:
        lost = s.get(SmsMessage, row.id)
        assert lost is not None
        lost.status, lost.attempts = "new", 1
    assert run_step(STEPS[SEND], row.id) is Outcome.DONE
    assert len(taken(smsc)) == 1  # found at the provider: not sent again
    row = message("t:lost")
    assert (row.status, row.provider_status) == ("sent", 0)


def test_the_balance_running_out_parks_until_topped_up_and_redriven(smsc: str) -> None:
    httpx.put(f"{smsc}/balance", json={"balance": "2.50"})
    queue("t:a", phone="+7 916 000-00-01")
    queue("t:b", phone="+7 916 000-00-02")
    assert run_pending(SEND) == [Outcome.DONE, Outcome.PARKED]
    parked = message("t:b")
    assert parked.status == "new" and "error 3" in (parked.last_error or "")
    assert "re-drive" in (parked.last_error or "")
    httpx.put(f"{smsc}/balance", json={"balance": "100.00"})
    shown = CliRunner().invoke(cli, ["billing", "sms-balance"])
    assert shown.exit_code == 0 and '"balance": "100.00"' in shown.output, shown.output
    assert redrive("sms_messages").ids == [parked.id]
    assert run_pending(SEND) == [Outcome.DONE]
    assert [m["phone"] for m in taken(smsc)] == ["79160000001", "79160000002"]


def test_the_providers_pace_defers_without_using_an_attempt(smsc: str) -> None:
    httpx.put(f"{smsc}/knobs", json={"extra": {"max_per_s": 1}})
    with session_scope() as s:
        send_many(s, [Outgoing(f"t:p{i}", "test", f"7916000001{i}", "Плановые работы") for i in range(2)])
    outcomes = run_pending(SEND)
    assert outcomes == [Outcome.DONE, Outcome.DEFERRED]
    deferred = message("t:p1")
    assert (deferred.status, deferred.attempts) == ("new", 0)
    assert httpx.get(f"{smsc}/stats").json()["refusals"] == {"9": 1}


def test_numbers_that_are_no_mobile_numbers_fail_and_no_phone_sends_nothing(smsc: str) -> None:
    queue("t:landline", phone="8 (843) 231-00-00")
    queue("t:none", phone=None)
    with session_scope() as s:
        rows = s.scalars(select(SmsMessage)).all()
        assert [(r.business_key, r.status) for r in rows] == [("t:landline", "failed")]
        assert "not a Russian mobile number" in (rows[0].failure or "")
    assert run_pending(SEND) == []


def test_an_undeliverable_number_ends_failed_with_the_providers_status(smsc: str) -> None:
    httpx.put(f"{smsc}/knobs", json={"extra": {"undeliverable": [PHONE]}})
    queue("t:u")
    assert run_pending(SEND) == [Outcome.DONE]
    assert run_pending(CHECK_DELIVERY) == [Outcome.DONE]
    row = message("t:u")
    assert (row.status, row.provider_status) == ("failed", 20)
    assert "невозможно доставить" in (row.failure or "")


def test_answers_that_are_not_the_providers_are_retried_then_parked(smsc: str) -> None:
    httpx.put(f"{smsc}/knobs", json={"fault": "html_500", "fault_next": 5})
    queue("t:bad")
    row = message("t:bad")
    outcomes = [run_step(STEPS[SEND], row.id) for _ in range(3)]
    assert outcomes == [Outcome.RETRY, Outcome.RETRY, Outcome.PARKED]
    row = message("t:bad")
    assert row.status == "new" and "SmsUnavailable" in (row.last_error or "")
    assert taken(smsc) == []


class _WorkerKilled(BaseException):
    """What SIGKILL does to a step: its transaction never commits, nothing after runs."""


def test_a_worker_killed_after_asking_the_delivery_status_asks_again(
    smsc: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    from integrations.sms import SmscClient

    queue("t:k")
    assert run_pending(SEND) == [Outcome.DONE]
    row = message("t:k")
    real = SmscClient.status

    def dies_after_the_answer(self: SmscClient, *args: Any, **kwargs: Any) -> Any:
        real(self, *args, **kwargs)
        raise _WorkerKilled

    monkeypatch.setattr(SmscClient, "status", dies_after_the_answer)
    with pytest.raises(_WorkerKilled):
        run_pending(CHECK_DELIVERY)
    row = message("t:k")
    assert (row.status, row.status_checks, row.attempts) == ("sent", 0, 1)
    monkeypatch.setattr(SmscClient, "status", real)
    assert run_step(STEPS[CHECK_DELIVERY], row.id) is Outcome.DONE
    row = message("t:k")
    assert (row.status, row.status_checks) == ("delivered", 1)
    assert len(taken(smsc)) == 1
