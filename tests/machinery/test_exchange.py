"""The exchange log: each exchange committed on its own, kept whatever its caller does after it."""

from __future__ import annotations

import pytest
from sqlalchemy import select, text

from integrations.exchange import Exchange
from models.db import engine_for, session_scope
from models.exchange_log import ExchangeLog
from tasks.machinery.exchange import _record_on, autocommit, exchange_recorder, record_exchange


def _sent(message_id: str) -> Exchange:
    return Exchange(
        system="smtp",
        operation="send",
        url="smtp://sink",
        request_headers={"To": "Иванов <i@example.ru>", "Message-ID": message_id},
        response_status=250,
        response_body="2.0.0 queued",
        duration_ms=1.25,
        correlation_id=message_id,
        business_key="letter:1",
    )


def _logged() -> list[tuple[object, ...]]:
    with session_scope() as session:
        rows = session.scalars(select(ExchangeLog).order_by(ExchangeLog.id)).all()
        return [
            (r.system, r.request_headers, r.response_status, r.correlation_id, r.duration_ms) for r in rows
        ]


def test_the_record_survives_the_caller_that_rolls_back() -> None:
    with pytest.raises(RuntimeError), session_scope() as session:
        session.add(ExchangeLog(system="callers-own", operation="write"))
        session.flush()
        record_exchange(_sent("<a@obmen>"))
        raise RuntimeError("the step failed after its call")
    assert _logged() == [
        ("smtp", {"To": "Иванов <i@example.ru>", "Message-ID": "<a@obmen>"}, 250, "<a@obmen>", 1.25)
    ]


def test_a_recorder_block_commits_each_exchange_as_it_is_made() -> None:
    with exchange_recorder() as record:
        record(_sent("<a@obmen>"))
        # Seen from another connection before the block ends: committed, not waiting for the block.
        assert [row[3] for row in _logged()] == ["<a@obmen>"]
        record(_sent("<b@obmen>"))
    assert [row[3] for row in _logged()] == ["<a@obmen>", "<b@obmen>"]


def test_the_record_skips_its_flush_wait_for_itself_only() -> None:
    """``synchronous_commit`` is off for the record's own transaction, never for the connection's next."""
    with engine_for().begin() as connection:
        _record_on(connection, _sent("<a@obmen>"))
        assert connection.execute(text("SHOW synchronous_commit")).scalar() == "off"
    with autocommit() as connection:
        _record_on(connection, _sent("<b@obmen>"))
        assert connection.execute(text("SHOW synchronous_commit")).scalar() == "on"
    assert len(_logged()) == 2
