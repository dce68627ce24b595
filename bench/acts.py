"""``python -m bench.acts``: the acts register under load.

* 100,000 acts in the register, 10,000 of them sent and awaiting the counterparty's signature (each
  with its waiting deadline; the others settled, their deadlines fired or cancelled).
* The deadline sweep: its time when nothing is due (what beat pays every minute), and when all
  10,000 are overdue at once (beat was down): each turns ``due``, 50 to a ``acts.deadlines.fire_batch``
  message, and the relay's time to publish those messages.
* 10,000 change-feed events applied end to end: the СБИС emulator holds 10,000 signatures; beat's
  ``acts.track`` (sent to the workers) reads them in pages of 200, applies each to its act, and
  the deals' stage moves run as ``acts.crm.apply`` steps on two solo workers against the Bitrix24
  emulator (its rate limit lifted: the real portal allows 2 requests/s). Done when every deal's
  stage move is recorded. Events/s is compared with the no-op Celery rate of the same run
  (``ops.noop`` on two solo workers, the same worker shape).

Seeding uses plain multi-row INSERTs through psycopg 3 (``insertmanyvalues``), not an ``ON
CONFLICT`` executemany, which psycopg2 runs row by row (performance-anchors.md, the batched-upsert trap).
"""

from __future__ import annotations

import argparse
import os
import time
import uuid
from datetime import date, timedelta
from typing import Any

import httpx
import redis
from sqlalchemy import delete, func, insert, select, update

from bench.common import bench_stores, noop_rate, report

SEED_BATCH = 5000


def seed(n_acts: int, awaiting: int) -> list[tuple[int, str]]:
    """``n_acts`` acts on as many deals, the last ``awaiting`` sent to СБИС: their (deal, document)."""
    from models.acts import ACT_STATUSES, SENT, Act, ActDeadline, ActDeal
    from models.base import utcnow
    from models.db import session_scope

    settled = [s for s in ACT_STATUSES if s != SENT]
    now = utcnow()
    documents: list[tuple[int, str]] = []
    for start in range(0, n_acts, SEED_BATCH):
        deals, acts, deadlines = [], [], []
        for i in range(start + 1, min(start + SEED_BATCH, n_acts) + 1):
            waiting = i > n_acts - awaiting
            doc = str(uuid.uuid4()) if waiting or i % 2 else None
            deals.append({"deal_id": i, "status": "synced", "stage_id": "UC_ACT_SENT", "attempts": 0})
            acts.append(
                {
                    "number": f"B-{i:06d}",
                    "act_date": date(2026, 1, 1) + timedelta(days=i % 300),
                    "deal_id": i,
                    "company_id": 1 + i % 5000,
                    "counterparty_inn": "7728168971",
                    "counterparty_kpp": "772801001",
                    "act_type": "electronic_ul" if doc else "paper_ul",
                    "products": ["Услуга"],
                    "status": SENT if waiting else settled[i % len(settled)],
                    "sbis_document_id": doc,
                    "sent_at": now - timedelta(days=2),
                    "attempts": 0,
                }
            )
            deadlines.append(
                {
                    "kind": "signature",
                    "subject_key": f"signature:act:{i}",
                    "deal_id": i,
                    "act_id": i,
                    # The awaiting ones fall due over the coming days; the settled ones are history.
                    "due_at": now + timedelta(days=3, seconds=i % 86400),
                    "status": "waiting" if waiting else ("fired" if i % 3 == 0 else "cancelled"),
                }
            )
            if waiting:
                documents.append((i, str(doc)))
        with session_scope() as session:
            session.execute(insert(ActDeal), deals)
            session.execute(insert(Act), acts)
            session.execute(insert(ActDeadline), deadlines)
    return documents


def sweep_figures(awaiting: int) -> dict[str, Any]:
    from models.acts import ActDeadline
    from models.base import utcnow
    from models.db import session_scope
    from models.outbox import Outbox
    from tasks.acts.deadlines import sweep_deadlines
    from tasks.machinery.outbox import relay_all, set_dispatch_mode

    figures: dict[str, Any] = {}
    set_dispatch_mode("off")
    idle = []
    for _ in range(5):
        started = time.perf_counter()
        fired = sweep_deadlines(now=utcnow())
        idle.append(time.perf_counter() - started)
        assert fired == {"signature": 0, "form_answer": 0}, fired
    figures["sweep_nothing_due_ms"] = 1000 * sorted(idle)[len(idle) // 2]

    started = time.perf_counter()
    fired = sweep_deadlines(now=utcnow() + timedelta(days=30))
    figures["sweep_10k_overdue_s"] = time.perf_counter() - started
    assert fired["signature"] == awaiting, fired
    started = time.perf_counter()
    figures["relay_published"] = relay_all(max_batches=10_000)
    figures["relay_publish_s"] = time.perf_counter() - started
    set_dispatch_mode("inline")

    # Undo the firing, so the end-to-end run starts from 10,000 acts awaiting and nothing queued.
    with session_scope() as session:
        session.execute(delete(Outbox))
        session.execute(
            update(ActDeadline).where(ActDeadline.status == "due").values(status="waiting", fired_at=None)
        )
    redis.Redis.from_url(os.environ["OBMEN_BROKER_URL"]).delete("acts")
    return figures


def _count(query: Any) -> int:
    from models.db import session_scope

    with session_scope() as session:
        return int(session.scalar(query) or 0)


def feed_figures(sent: list[tuple[int, str]], workers: int) -> dict[str, Any]:
    from models.acts import ActCrmAction, SbisEvent
    from sandbox.bitrix24 import Bitrix24Emulator
    from sandbox.harness import SandboxClock
    from sandbox.sbis import SbisEmulator
    from sandbox.server import Sandbox
    from tests.harness.processes import start_worker
    from workers.app import app

    n = len(sent)
    documents = [doc for _, doc in sent]
    clock = SandboxClock()
    with Sandbox([Bitrix24Emulator(clock), SbisEmulator(clock)]) as box:
        env = {
            **box.client_settings(),
            "OBMEN_BITRIX24_RATE_PER_S": "1000000",
            "OBMEN_BITRIX24_BURST": "1000000",
            "OBMEN_SBIS_PAGE_SIZE": "200",
        }
        os.environ.update(env)
        httpx.put(box.url + "/_sandbox/bitrix24/limits", json={"bucket_size": 1e9, "drain_per_s": 1e9})
        bitrix = box.emulator("bitrix24")
        assert isinstance(bitrix, Bitrix24Emulator)
        for deal_id, _ in sent:
            bitrix.add_deal({"ID": deal_id, "STAGE_ID": "UC_ACT_SENT", "ASSIGNED_BY_ID": 7})
        httpx.post(
            box.url + "/_sandbox/sbis/documents",
            json={"documents": [{"id": doc, "number": f"B-{deal_id:06d}"} for deal_id, doc in sent]},
            timeout=120,
        ).raise_for_status()
        httpx.post(
            box.url + "/_sandbox/sbis/scenario", json={"documents": documents, "action": "sign"}, timeout=120
        ).raise_for_status()

        procs = [start_worker(env=env, concurrency=1, pool="solo", queues="acts") for _ in range(workers)]
        try:
            applied = select(func.count()).where(SbisEvent.outcome.like("applied%"))
            started = time.perf_counter()
            app.send_task("acts.track", kwargs={})
            applied_at = None
            deadline = started + 900
            while time.perf_counter() < deadline:
                if applied_at is None and _count(applied) >= n:
                    applied_at = time.perf_counter()
                moved = _count(
                    select(func.count()).where(ActCrmAction.kind == "stage", ActCrmAction.status == "done")
                )
                if moved >= n:
                    break
                time.sleep(0.2)
            else:
                raise RuntimeError(f"only {moved} of {n} deals moved in 900 s")
            finished = time.perf_counter()
        finally:
            for proc in procs:
                proc.stop()
        won = sum(1 for d in bitrix.portal.deals.values() if d["STAGE_ID"] == "WON")
        assert won == n, f"{won} of {n} deals at WON in the emulator"
    from models.outbox import Outbox

    messages = _count(select(func.count()).where(Outbox.task_name.like("acts.%")))
    return {
        "events": n,
        # acts.track once, and the deal moves, 50 to a message and a Bitrix24 batch call.
        "celery_tasks_for_them": 1 + messages,
        "events_in_register_s": (applied_at or finished) - started,
        "end_to_end_s": finished - started,
        "end_to_end_events_per_s": n / (finished - started),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--acts", type=int, default=100_000)
    parser.add_argument("--awaiting", type=int, default=10_000)
    parser.add_argument("--workers", type=int, default=2)
    args = parser.parse_args()
    with bench_stores():
        from workers.app import app  # noqa: F401  (publishing needs the configured app)

        started = time.perf_counter()
        documents = seed(args.acts, args.awaiting)
        figures: dict[str, Any] = {
            "acts": args.acts,
            "awaiting_signature": args.awaiting,
            "seed_s": time.perf_counter() - started,
        }
        figures.update(sweep_figures(args.awaiting))
        figures["noop_tasks_per_s"] = noop_rate(5000, args.workers)
        figures.update(feed_figures(documents, args.workers))
        figures["ratio_to_noop"] = figures["end_to_end_events_per_s"] / figures["noop_tasks_per_s"]
        figures["worker_processes"] = args.workers
    report("acts: deadline sweep and change feed", figures)


if __name__ == "__main__":
    main()
