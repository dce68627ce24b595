"""The SEP exchange record: one statement of its own, kept whatever the step does after it."""

from __future__ import annotations

import pytest
from sqlalchemy import func, select, text

from integrations.sep.outcomes import SepExchange
from models.db import session_scope
from models.exchange_log import ExchangeLog
from models.sep import SepExchangeError, SepExchangeHistory, SepRequest
from tasks.machinery.exchange import autocommit
from tasks.sep.record import _one_statement, _parameters, record_sep_exchange


def _failed_poll(request_id: int) -> SepExchange:
    return SepExchange(
        system="sep",
        operation="GetQueueResult",
        correlation_id="Q-1",
        request_headers={"SOAPAction": "urn:obmen:sep:v1/GetQueueResult"},
        response_status=200,
        duration_ms=12.5,
        queue_number="Q-1",
        request_id=request_id,
        request_status="Получен ответ",
        sep_state="Error",
        failures=[("sep", "ApplicationNotFound", "no such application"), ("sep", None, "and another")],
        application_number="2026-000001",
    )


def test_the_record_survives_the_step_that_rolls_back() -> None:
    with pytest.raises(RuntimeError), session_scope() as session:
        # The step's own work, under the row lock, then the call's record, then the step fails.
        session.add(SepRequest(operation="GetQueueResult", business_key="k", message_id="m", payload={}))
        session.flush()
        record_sep_exchange(_failed_poll(request_id=1))
        raise RuntimeError("the step failed after its call")
    with session_scope() as session:
        assert session.scalar(select(func.count()).select_from(SepRequest)) == 0
        logged = session.scalars(select(ExchangeLog)).one()
        history = session.scalars(select(SepExchangeHistory)).one()
        errors = session.scalars(select(SepExchangeError).order_by(SepExchangeError.id)).all()
    assert (logged.operation, logged.response_status, logged.request_headers) == (
        "GetQueueResult",
        200,
        {"SOAPAction": "urn:obmen:sep:v1/GetQueueResult"},
    )
    assert (history.exchange_log_id, history.request_id, history.sep_state, history.duration_ms) == (
        logged.id,
        1,
        "Error",
        12.5,
    )
    assert [(e.correlation_id, e.code, e.message, e.application_number) for e in errors] == [
        ("Q-1", "ApplicationNotFound", "no such application", "2026-000001"),
        ("Q-1", None, "and another", "2026-000001"),
    ]


def test_the_record_skips_its_flush_wait_for_itself_only() -> None:
    """``synchronous_commit`` is off for the record's own transaction, never for the connection's next."""
    with autocommit() as connection:
        connection.execute(_one_statement(0), _parameters(SepExchange(system="sep", operation="X")))
        assert connection.execute(text("SHOW synchronous_commit")).scalar() == "on"
    with session_scope() as session:
        history = session.scalars(select(SepExchangeHistory)).one()
        assert history.exchange_log_id == session.scalars(select(ExchangeLog.id)).one()
        assert session.scalar(select(func.count()).select_from(SepExchangeError)) == 0
