"""``python -m bench.payments``: signed payments over HTTP into the gateway, posted by 2 worker processes.

20,000 payments at concurrency 32 (defaults) against ``obmen gateway`` (its own process), two
``-P solo`` workers consuming every queue, and the Bitrix24 sandbox at a real portal's limits (50,
2/s): each payment clears its subscriber's debt, so each asks for a deal update the portal can only
take two per second; those wait as deferred rows and must not slow posting. Reports accepted/s,
p50/p99 accept latency, posted/s end to end, and the no-op Celery rate of the same broker in the same
run with the ratio; checks that no payment was lost or doubled. ``--rate R`` offers the payments at R a
second instead (open loop, as a bank sends them as they happen), for the accept latency at that load;
the closed loop measures what the machine can take, and its latency is concurrency / throughput.
"""

from __future__ import annotations

import argparse
import hashlib
import hmac
import json
import time
from collections.abc import Callable

from sqlalchemy import func, select

from bench.common import bench_stores, commits, cpu_s, noop_rate, postgres_cpu_s, report, serving, tree_cpu_s
from bench.httpload import LoadResult, request_bytes, run_load

SECRET = "bench-bank-secret"


def _headers(body: bytes) -> dict[str, str]:
    ts = str(int(time.time()))
    sig = hmac.new(
        SECRET.encode(), f"{ts}\nPOST\n/bank/v1/payments\n".encode() + body, hashlib.sha256
    ).hexdigest()
    return {"Content-Type": "application/json", "X-Obmen-Timestamp": ts, "X-Obmen-Signature": f"sha256={sig}"}


def _payment_request(host: str, inn: str, i: int) -> Callable[[], bytes]:
    body = json.dumps(
        {
            "transaction_id": f"BENCH-{i}",
            "inn": inn,
            "amount": "1500.00",
            "paid_at": "2026-11-20T10:15:00+03:00",
            "purpose": "Оплата услуг связи за ноябрь 2026",
        }
    ).encode()
    # Signed when sent: a long run must not outlive the ±300 s timestamp window.
    return lambda: request_bytes("POST", "/bank/v1/payments", host, body, _headers(body))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("-n", type=int, default=20_000)
    parser.add_argument("--concurrency", type=int, default=32)
    parser.add_argument(
        "--rate", type=float, default=None, help="offer payments at this rate a second (open loop) instead"
    )
    parser.add_argument("--noop-n", type=int, default=5000)
    parser.add_argument("--gateway-processes", type=int, default=1)
    parser.add_argument(
        "--prefill", type=int, default=0, help="rows of history in each large register first (bench.console)"
    )
    args = parser.parse_args()

    with bench_stores() as env:
        if args.prefill:
            from bench.console import seed

            seed(args.prefill)
        from models.db import session_scope
        from models.payments import DealPaidMark, Payment, PaymentAllocation
        from sandbox.bitrix24 import Bitrix24Emulator
        from sandbox.harness import SandboxClock
        from sandbox.server import Sandbox
        from tests.harness.bank import seed_subscribers
        from tests.harness.processes import start_worker
        from tests.harness.waiting import wait_for

        box = Sandbox([Bitrix24Emulator(SandboxClock())]).start()
        portal = box.emulator("bitrix24")
        assert isinstance(portal, Bitrix24Emulator)
        inns = seed_subscribers(args.n, first_deal=1)
        for i in range(args.n):
            portal.add_deal({"ID": 1 + i, "TITLE": f"Абонент {i}"})
        run_env = {
            **env,
            **box.client_settings(),
            "OBMEN_BANK_HMAC_SECRETS": SECRET,
            "OBMEN_LOG_LEVEL": "WARNING",
        }
        # The flow's queues only: a worker on every queue refuses to start without every system's URL.
        workers = [
            start_worker(env=run_env, concurrency=1, pool="solo", queues="payments,crm") for _ in range(2)
        ]

        # This run's payments, not the history ``--prefill`` put there: ids above it (the primary key),
        # so the progress count does not read the history on every look.
        with session_scope() as s:
            ours = Payment.id > (s.scalar(select(func.max(Payment.id))) or 0)

        def posted() -> int:
            with session_scope() as s:
                return s.scalar(select(func.count()).where(ours, Payment.status == "posted")) or 0

        with serving(workers, run_env, args.gateway_processes) as served:
            port = served.port
            cpu_before = (tree_cpu_s(served.pid), sum(cpu_s(w.proc.pid) for w in workers), postgres_cpu_s())
            commits_before = commits()
            started = time.perf_counter()
            load = run_load(
                "127.0.0.1",
                port,
                [_payment_request(f"127.0.0.1:{port}", inn, i) for i, inn in enumerate(inns)],
                args.concurrency,
                args.rate,
            )
            wait_for(lambda: posted() == args.n, timeout=1800, interval=0.25, what="every payment posted")
            end_to_end_s = time.perf_counter() - started
            cpu_after = (tree_cpu_s(served.pid), sum(cpu_s(w.proc.pid) for w in workers), postgres_cpu_s())
            commits_per_payment = (commits() - commits_before) / args.n
            gateway_ms, worker_ms, postgres_ms = (
                (after - before) * 1000 / args.n for before, after in zip(cpu_before, cpu_after, strict=True)
            )
            with session_scope() as s:
                count = s.scalar(select(func.count()).where(ours))
                distinct = s.scalar(select(func.count(func.distinct(Payment.transaction_id))).where(ours))
                allocations = s.scalar(select(func.count()).select_from(PaymentAllocation))
                marks_done = s.scalar(select(func.count()).where(DealPaidMark.status == "done"))
                marks = s.scalar(select(func.count()).select_from(DealPaidMark))
        rate = noop_rate(args.noop_n, workers=2)
        box.stop()

    posted_per_s = args.n / end_to_end_s
    report(
        "payments: signed HTTP -> gateway -> Postgres + outbox -> 2 solo workers -> posted",
        {
            "payments": args.n,
            "history_rows_per_register": args.prefill,
            "concurrency": args.concurrency,
            "offered_per_s": args.rate or "closed loop",
            "answers_201": load.statuses.count(201),
            "other_answers": len(load.statuses) - load.statuses.count(201),
            "accepted_per_s": args.n / load.elapsed_s,
            "accept_p50_ms": load.percentile_ms(0.50),
            "accept_p99_ms": load.percentile_ms(0.99),
            "accept_p999_ms": load.percentile_ms(0.999),
            "accept_max_ms": load.percentile_ms(1.0),
            "accept_first_64_max_ms": max(load.latencies_s[:64]) * 1000,
            "accept_p99_after_first_64_ms": LoadResult(load.latencies_s[64:]).percentile_ms(0.99),
            "posted_per_s_end_to_end": posted_per_s,
            "gateway_processes": args.gateway_processes,
            "cpu_ms_per_payment_gateway": gateway_ms,
            "cpu_ms_per_payment_workers": worker_ms,
            "cpu_ms_per_payment_postgres": postgres_ms,
            "postgres_commits_per_payment": commits_per_payment,
            "noop_tasks_per_s_same_run": rate,
            "ratio_posted_to_noop": posted_per_s / rate,
            "payments_in_register": count,
            "duplicates": (count or 0) - (distinct or 0),
            "lost": args.n - (count or 0),
            "allocations": allocations,
            "crm_marks": marks,
            "crm_marks_done_at_end": marks_done,
        },
    )


if __name__ == "__main__":
    main()
