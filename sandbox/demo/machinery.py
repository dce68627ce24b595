"""Demo of the machinery: the canary through outbox, relay, worker and register, with injected faults."""

from __future__ import annotations

from sqlalchemy import select

from models.canary import Canary
from models.db import session_scope
from sandbox.demo import DemoContext
from tasks.machinery.canary import start_canary
from tasks.machinery.outbox import set_dispatch_mode
from tasks.machinery.sweeper import redrive


def _row(canary_id: int) -> Canary:
    with session_scope() as session:
        row = session.scalars(select(Canary).where(Canary.id == canary_id)).one()
        session.expunge(row)
        return row


def _row_when(canary_id: int, done: bool = False, parked: bool = False) -> Canary | None:
    row = _row(canary_id)
    if (done and row.status == "done") or (parked and row.parked_at is not None):
        return row
    return None


def _start(fault: str | None = None, times: int = 0) -> int:
    with session_scope() as session:
        return start_canary(session, fault=fault, fault_times=times).id


def run(ctx: DemoContext) -> None:
    cid = _start()
    row = ctx.wait_for(lambda: _row_when(cid, done=True), "the first canary")
    ctx.say(
        f"canary {cid}: committed with its outbox row -> published -> worker -> register in {row.latency_ms:.0f} ms"
    )

    cid = _start("transient", 2)
    row = ctx.wait_for(lambda: _row_when(cid, done=True), "the canary with two transient faults")
    ctx.say(
        f"canary {cid}: injected transient fault twice -> retried with backoff -> done, effect applied {row.executions}x"
    )
    ctx.say(f"           last error kept for the record: {row.last_error}")

    cid = _start("permanent")
    row = ctx.wait_for(lambda: _row_when(cid, parked=True), "the canary to be parked")
    ctx.say(
        f"canary {cid}: injected permanent fault -> parked after {row.attempts} attempt: {row.last_error}"
    )
    with session_scope() as session:
        fixed = session.get(Canary, cid)
        assert fixed is not None
        fixed.fault = None
    result = redrive("canaries", [cid])
    row = ctx.wait_for(lambda: _row_when(cid, done=True), "the re-driven canary")
    ctx.say(
        f"canary {cid}: ops cleared the cause and re-drove {result.ids} -> done, effect applied {row.executions}x"
    )

    # The process "dies" between its commit and its publish: the beat relay publishes the row.
    set_dispatch_mode("off")
    try:
        cid = _start()
    finally:
        set_dispatch_mode("inline")
    row = ctx.wait_for(lambda: _row_when(cid, done=True), "the relay to publish the orphaned row")
    ctx.say(
        f"canary {cid}: committed but never published (publisher crash) -> beat relay published it -> done"
    )
