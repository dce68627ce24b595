"""Every message a worker cannot run becomes one ``dead_letters`` row with the reason.

The bad messages are published raw to the real broker (kombu, not ``send_task``, which would refuse
to build most of them) and consumed by a real worker process: whether Celery would have dropped the
message with a log line, crashed on it, or a step would have failed to record it, each must end as
exactly one row, rejected from the broker, and the worker must keep running good messages.
"""

from __future__ import annotations

import json
import math
import os
import uuid
from dataclasses import dataclass, field
from typing import Any

import pytest
import redis
from kombu import Connection, Exchange, Producer
from sqlalchemy import func, select

from integrations.storable import JSON_LIMIT, refuse_unstorable
from models.canary import Canary
from models.db import session_scope
from models.dead_letters import DeadLetter
from models.gauges import GAUGES
from tasks.machinery.canary import start_canary
from tasks.machinery.dead_letters import record_dead_letter
from tasks.machinery.outbox import set_dispatch_mode
from tests.harness.processes import start_worker
from tests.harness.waiting import wait_for

EMBED = {"callbacks": None, "errbacks": None, "chain": None, "chord": None}
A_LONG_ID = "x" * 10_000


def _headers(task: str, task_id: str | None = None, **changes: Any) -> dict[str, Any]:
    """Task headers as Celery's message protocol 2 writes them."""
    task_id = task_id or str(uuid.uuid4())
    return {
        "lang": "py",
        "task": task,
        "id": task_id,
        "root_id": task_id,
        "parent_id": None,
        "group": None,
        "retries": 0,
        "eta": None,
        "expires": None,
        "timelimit": [None, None],
        "argsrepr": "()",
        "kwargsrepr": "{}",
        "origin": "test",
        **changes,
    }


def _body(kwargs: dict[str, Any], args: list[Any] | None = None) -> bytes:
    return json.dumps([args or [], kwargs, EMBED]).encode()


@dataclass
class Bad:
    kind: str
    body: bytes
    headers: dict[str, Any] = field(default_factory=dict)
    content_type: str = "application/json"
    reason: str = ""  # a part of the recorded reason
    task_name: str = "ops.canary.run"


BAD = [
    Bad(
        "NUL in an entry's text argument",
        _body({"number": "З-1024\x00", "kind": "connect", "inn": "500100732259"}),
        _headers("billing.submit_request"),
        reason="kwargs.number: text holds a NUL character",
        task_name="billing.submit_request",
    ),
    Bad(
        "NUL as a row id",
        _body({"id": "\x00"}),
        _headers("ops.canary.run"),
        reason="validation error for RowRef",
    ),
    Bad(
        "a lone surrogate in an entry's text argument",
        b'[[], {"number": "\\ud800", "kind": "connect", "inn": "500100732259"}, {}]',
        _headers("billing.submit_request"),
        reason="number",
        task_name="billing.submit_request",
    ),
    Bad("NaN as a row id", b'[[], {"id": NaN}, {}]', _headers("ops.canary.run"), reason="RowRef"),
    Bad(
        "id = 2**70",
        _body({"id": 2**70}),
        _headers("ops.canary.run"),
        reason="less than or equal to 9223372036854775807",
    ),
    Bad("a 10 KB task id", _body({"id": "seven"}), _headers("ops.canary.run", A_LONG_ID), reason="RowRef"),
    Bad(
        "a 5 MB payload",
        _body({"id": 1, "junk": "x" * 5_000_000}),
        _headers("ops.canary.run"),
        reason="Extra inputs are not permitted",
    ),
    Bad(
        "a task nobody registered",
        _body({}),
        _headers("nobody.registered"),
        reason="unknown task 'nobody.registered'",
        task_name="nobody.registered",
    ),
    Bad("a body that is not JSON", b"{not json", _headers("ops.canary.run"), reason="undecodable body"),
    Bad("no headers", _body({"id": 1}), {}, reason="no task headers", task_name="(no task name)"),
    Bad("no id header", _body({"id": 1}), {"task": "ops.canary.run"}, reason="bad task headers"),
    Bad(
        "pickle",
        b"\x80\x04N.",
        _headers("ops.canary.run"),
        content_type="application/x-python-serialize",
        reason="content type 'application/x-python-serialize' refused",
    ),
    Bad(
        "raw bytes kombu trusts (application/data)",
        b"raw",
        _headers("ops.canary.run"),
        content_type="application/data",
        reason="body is not [args, kwargs, embed]",
    ),
    Bad(
        "a body that is not a task body", b'{"id": 1}', _headers("ops.canary.run"), reason="body is not [args"
    ),
    Bad(
        "a canvas that is not one",
        b'[[], {"id": 1}, {"callbacks": "ops.noop"}]',
        _headers("ops.canary.run"),
        reason="bad embed",
    ),
    Bad(
        "a compression kombu cannot undo",
        b"not gzip",
        _headers("ops.canary.run", compression="application/x-gzip"),
        reason="undecodable message",
    ),
    Bad(
        "positional arguments to a beat job",
        _body({}, args=[1]),
        _headers("ops.noop"),
        reason="arguments do not fit ops.noop",
        task_name="ops.noop",
    ),
    Bad("an eta that is no time", _body({"id": 1}), _headers("ops.canary.run", eta="tomorrow"), reason="eta"),
    Bad(
        "retries that are no number",
        _body({"id": 1}),
        _headers("ops.canary.run", retries="x"),
        reason="retries",
    ),
]


def _publish(bad: Bad) -> None:
    with Connection(os.environ["OBMEN_BROKER_URL"]) as conn:
        producer = Producer(conn.channel(), exchange=Exchange("obmen", type="direct"), routing_key="ops")
        producer.publish(
            bad.body, headers=bad.headers, content_type=bad.content_type, content_encoding="utf-8"
        )


def _letters() -> list[DeadLetter]:
    with session_scope() as s:
        return list(s.scalars(select(DeadLetter).order_by(DeadLetter.id)))


def _wait_for_letter(count: int, kind: str) -> DeadLetter:
    """The ``count``-th dead letter, once it is there."""
    letters = wait_for(lambda: (found := _letters()) and len(found) >= count and found, timeout=60, what=kind)
    return letters[count - 1]


def _gauge(name: str) -> float:
    [gauge] = [g for g in GAUGES if g.name == name]
    with session_scope() as s:
        [(_, value)] = list(gauge.collect(s))
    return float(value)


def test_every_bad_message_is_one_dead_letter_and_the_worker_runs_on(obmen_app) -> None:
    set_dispatch_mode("inline")
    broker = redis.Redis.from_url(os.environ["OBMEN_BROKER_URL"])
    worker = start_worker(concurrency=1)
    try:
        for count, bad in enumerate(BAD, start=1):
            _publish(bad)
            letter = _wait_for_letter(count, bad.kind)
            assert bad.reason in letter.error, (bad.kind, letter.error)
            assert letter.task_name == bad.task_name, bad.kind
            assert len(json.dumps(letter.payload)) < JSON_LIMIT + 1000, bad.kind

        # Still consuming: a good message after all of them runs its step.
        with session_scope() as s:
            cid = start_canary(s).id

        def canary_done() -> bool:
            with session_scope() as s:
                row = s.get(Canary, cid)
                return row is not None and row.status == "done"

        wait_for(canary_done, timeout=30, what="a good message after the bad ones")
        # Every bad message was taken off the broker (none waits unacked to come back), none retried.
        wait_for(lambda: broker.hlen("unacked") == 0, what="nothing unacked")
        assert broker.llen("ops") == 0
        assert worker.proc.poll() is None
        for crash in ("Unrecoverable error", "Connection to broker lost", "Traceback"):
            assert crash not in worker.text(), crash
    finally:
        worker.stop()

    letters = _letters()
    assert len(letters) == len(BAD)
    assert _gauge("obmen_dead_letters") == len(BAD)
    by_kind = dict(zip((bad.kind for bad in BAD), letters, strict=True))

    # What did not fit was escaped and clipped, and says so.
    assert by_kind["NUL as a row id"].payload["kwargs"] == {"id": "\\u0000"}
    assert by_kind["a lone surrogate in an entry's text argument"].payload["kwargs"]["number"] == "\\ud800"
    assert by_kind["NaN as a row id"].payload["kwargs"] == {"id": "nan"}
    assert by_kind["id = 2**70"].payload["kwargs"] == {"id": 2**70}
    long_id = by_kind["a 10 KB task id"].task_id
    assert long_id is not None and len(long_id) == 200 and long_id.endswith("… [10000 characters]")
    assert by_kind["a 5 MB payload"].payload["kwargs"]["junk"].endswith("… [5000000 characters]")
    # A message refused before any task code ran keeps its raw form: headers and body as text.
    raw = by_kind["a body that is not JSON"].payload
    assert (raw["body"], raw["content_type"], raw["routing_key"]) == ("{not json", "application/json", "ops")
    assert by_kind["pickle"].payload["body"] == "\\x80\x04N."


def test_a_step_refuses_an_id_beyond_64_bits_and_text_the_store_cannot_hold() -> None:
    from tasks.machinery.canary import run_canary

    assert run_canary.task(id=2**63) == "rejected"
    assert run_canary.task(id=0) == "rejected"
    [big, zero] = _letters()
    assert "less than or equal to 9223372036854775807" in big.error
    assert "greater than or equal to 1" in zero.error


def _nested(depth: int, leaf: Any) -> Any:
    value = leaf
    for _ in range(depth):
        value = [value]
    return value


@pytest.mark.parametrize(
    ("value", "named"),
    [
        ({"a": ["ok", "b\x00"]}, r"kwargs.a\[1\]: text holds a NUL character"),
        ({"a": "\udc80"}, "kwargs.a: text holds a lone surrogate"),
        ({"ids": [1, -(2**63) - 1]}, r"kwargs.ids\[1\]: integer beyond 64 bits"),
        ({"x\x00": 1}, "kwargs key: text holds a NUL character"),
        ({"amount": math.inf}, "kwargs.amount: inf is not a number"),
        ({"deep": _nested(5000, "\x00")}, r"kwargs.deep(\[0\]){5000}: text holds a NUL character"),
    ],
)
def test_arguments_the_register_store_cannot_hold_are_named(value: dict[str, Any], named: str) -> None:
    with pytest.raises(ValueError, match=named):
        refuse_unstorable(value)


def test_the_record_is_written_whatever_the_message_held() -> None:
    deep = _nested(5000, [])
    payload = {
        "text": "a\x00b\ud800c",
        "nan": math.nan,
        "deep": deep,
        "many": list(range(5000)),
        "huge": "x" * 5_000_000,
        "bytes": b"\xff\x00ok",
        "object": object,
        7: 2**4000,
    }
    assert record_dead_letter("t\x00" + "n" * 10_000, "\ud800" * 300, payload, "why\x00" * 2000)
    [letter] = _letters()
    assert len(letter.task_name) == 200 and letter.task_name.startswith("t\\u0000nnn")
    assert letter.task_id is not None and len(letter.task_id) == 200 and letter.task_id.startswith("\\ud800")
    assert len(letter.error) == 4000 and letter.error.startswith("why\\u0000why")
    held = letter.payload
    assert held["text"] == "a\\u0000b\\ud800c"
    assert held["nan"] == "nan"
    assert held["many"][-1] == "… 4900 more items" and len(held["many"]) == 101
    assert held["huge"].endswith("… [5000000 characters]") and len(held["huge"]) == 4000
    assert held["bytes"] == "\\xff\\u0000ok"
    assert held["object"] == "<class 'object'>"
    assert held["7"] == "an integer of 4001 bits"
    inner = held["deep"]
    for _ in range(14):
        [inner] = inner
    assert inner == ["… nested deeper than 16 levels"]
    with session_scope() as s:
        assert s.scalar(select(func.count()).select_from(DeadLetter)) == 1


def test_with_the_register_store_away_the_message_is_logged_and_refused_not_looped() -> None:
    """A record that cannot be written must not become a crash or an endless redelivery."""
    broker = redis.Redis.from_url(os.environ["OBMEN_BROKER_URL"])
    nowhere = "postgresql+psycopg://postgres@127.0.0.1:9/nowhere"
    worker = start_worker(concurrency=1, env={"OBMEN_DATABASE_URL": nowhere})
    try:
        _publish(Bad("unknown", _body({"note": "kept in the log"}), _headers("nobody.registered", "lost-1")))
        worker.wait_for_output("dead_letter.not_recorded")
        wait_for(lambda: broker.hlen("unacked") == 0 and broker.llen("ops") == 0, what="the message refused")
        [line] = [line for line in worker.text().splitlines() if "dead_letter.not_recorded" in line]
        for part in ("unknown task 'nobody.registered'", "lost-1", "kept in the log", "Connection refused"):
            assert part in line, part
        assert worker.proc.poll() is None
    finally:
        worker.stop()
