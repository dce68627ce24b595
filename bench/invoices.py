"""``python -m bench.invoices``: invoice requests through the gateway, asked of the 1C emulator by
worker processes under the licence cap; then the site's list and file download with 1,000,000
invoices in the register.

Part 1: ``-n`` requests (10,000) for ``--customers`` customers (2,000), five orders each, posted to
``POST /invoices/requests`` at concurrency 32; ``--workers`` worker processes (prefork,
``--concurrency`` each) ask the emulator, which has 4 licences and takes 50 ms a call. Reports
accepted/s, requests done per second end to end, the most requests 1C ever saw at once (counted at
the emulator: must be ≤ 4), licence refusals, lost and doubled.

Part 2: the register is filled to ``--register`` invoices (SQL, a few hundred distinct PDFs
shared), then ``GET /invoices?customer_inn=…`` (a page of 50, newest first) and
``GET /invoices/<id>/file`` for random customers and invoices: p50/p99 through the gateway.

Both with the Celery no-op rate of the same broker in the same run, and the ratio.
"""

from __future__ import annotations

import argparse
import json
import random
import time
from collections.abc import Callable
from datetime import UTC, datetime
from decimal import Decimal

from sqlalchemy import func, select, text

from bench.common import bench_stores, noop_rate, report, serving
from bench.httpload import request_bytes, run_load

TOKEN = "bench-site-token"
AUTH = {"Authorization": f"Bearer {TOKEN}", "Content-Type": "application/json"}
DISTINCT_FILES = 200


def _request(host: str, inn: str, order: str) -> Callable[[], bytes]:
    body = json.dumps(
        {"order_id": order, "amount": "1500.00", "customer_inn": inn, "source": "bench"}
    ).encode()
    return lambda: request_bytes("POST", "/invoices/requests", host, body, AUTH)


def _get(host: str, path: str) -> Callable[[], bytes]:
    return lambda: request_bytes("GET", path, host, b"", AUTH)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("-n", type=int, default=10_000)
    parser.add_argument("--customers", type=int, default=2_000)
    parser.add_argument("--workers", type=int, default=1)
    parser.add_argument("--concurrency", type=int, default=6, help="prefork processes per worker")
    parser.add_argument("--http-concurrency", type=int, default=32)
    parser.add_argument("--register", type=int, default=1_000_000)
    parser.add_argument("--reads", type=int, default=5_000)
    parser.add_argument("--noop-n", type=int, default=5000)
    args = parser.parse_args()

    with bench_stores() as env:
        from models.db import session_scope
        from models.invoices import Invoice, InvoiceRequest
        from sandbox.harness import SandboxClock
        from sandbox.onec import OnecEmulator
        from sandbox.server import Sandbox
        from tests.harness.bank import inn12
        from tests.harness.processes import start_worker
        from tests.harness.waiting import wait_for

        emulator = OnecEmulator(SandboxClock())
        box = Sandbox([emulator]).start()
        emulator.knobs.update({"extra": {"licences": 4, "call_ms": 50, "bom": True}})
        customers = [inn12(i) for i in range(1, args.customers + 1)]
        run_env = {
            **env,
            **box.client_settings(),
            "OBMEN_API_TOKENS": f"invoices:{TOKEN}",
            "OBMEN_ONEC_MAX_SESSIONS": "4",
            # A worker waits up to a second for one of the 4 sessions instead of deferring at once.
            "OBMEN_ONEC_MAX_WAIT_S": "1",
            "OBMEN_ONEC_BUSY_RETRY_S": "1",
            "OBMEN_LOG_LEVEL": "WARNING",
        }
        workers = [
            start_worker(env=run_env, concurrency=args.concurrency, queues="invoices")
            for _ in range(args.workers)
        ]

        def done() -> int:
            with session_scope() as s:
                return s.scalar(select(func.count()).where(InvoiceRequest.status == "done")) or 0

        with serving(workers, run_env) as served:
            port = served.port
            host = f"127.0.0.1:{port}"
            started = time.perf_counter()
            load = run_load(
                "127.0.0.1",
                port,
                [_request(host, customers[i % len(customers)], f"ORD-{i}") for i in range(args.n)],
                args.http_concurrency,
            )
            wait_for(lambda: done() == args.n, timeout=3600, interval=0.25, what="every invoice requested")
            end_to_end_s = time.perf_counter() - started
            stats = emulator.stats()
            with session_scope() as s:
                invoices = s.scalar(select(func.count()).select_from(Invoice)) or 0
                distinct_orders = s.scalar(select(func.count(func.distinct(Invoice.order_id)))) or 0
                requests = s.scalar(select(func.count()).select_from(InvoiceRequest)) or 0
            in_1c = len(emulator.books.invoices)

            _fill_register(args.register, customers)
            reads = random.Random(4)
            with session_scope() as s:
                top = s.scalar(select(func.max(Invoice.id))) or 1
            lists = run_load(
                "127.0.0.1",
                port,
                [
                    _get(host, f"/invoices?customer_inn={reads.choice(customers)}&limit=50")
                    for _ in range(args.reads)
                ],
                4,
            )
            files = run_load(
                "127.0.0.1",
                port,
                [_get(host, f"/invoices/{reads.randint(1, top)}/file") for _ in range(args.reads)],
                4,
            )
        rate = noop_rate(args.noop_n, workers=2)
        box.stop()

    per_s = args.n / end_to_end_s
    report(
        "invoices: HTTP -> gateway -> invoices.ask_onec (1C emulator: 4 licences, 50 ms a call) -> register",
        {
            "requests": args.n,
            "customers": args.customers,
            "worker_processes": args.workers * args.concurrency,
            "answers_202": load.statuses.count(202),
            "other_answers": len(load.statuses) - load.statuses.count(202),
            "accepted_per_s": args.n / load.elapsed_s,
            "accept_p99_ms": load.percentile_ms(0.99),
            "requests_done_per_s_end_to_end": per_s,
            "onec_calls": stats["calls"],
            "onec_max_in_flight": stats["max_in_flight"],
            "onec_licence_refusals": stats["licence_refusals"],
            "invoices_in_register": invoices,
            "invoices_in_1c": in_1c,
            "lost": args.n - invoices,
            "doubled": invoices - distinct_orders + (requests - args.n),
            "register_rows_for_reads": args.register,
            "list_page_p50_ms": lists.percentile_ms(0.50),
            "list_page_p99_ms": lists.percentile_ms(0.99),
            "list_non_200": len([s for s in lists.statuses if s != 200]),
            "file_p50_ms": files.percentile_ms(0.50),
            "file_p99_ms": files.percentile_ms(0.99),
            "file_non_200": len([s for s in files.statuses if s != 200]),
            "noop_tasks_per_s_same_run": rate,
            "ratio_requests_to_noop": per_s / rate,
        },
    )


def _fill_register(total: int, customers: list[str]) -> None:
    """Invoices up to ``total`` in one SQL statement per table, sharing a few hundred real PDFs."""
    from models.db import session_scope
    from sandbox.onec.pdf import render_invoice
    from tasks.invoices.register import store_file

    with session_scope() as s:
        have = s.scalar(select(func.count()).select_from(text("invoices"))) or 0
        shas = [
            store_file(
                s,
                render_invoice(
                    number=f"Б-{i}",
                    issued_at=datetime(2026, 1, 1, tzinfo=UTC),
                    customer_inn=customers[0],
                    order_id=f"B-{i}",
                    amount=Decimal("1000.00") + i,
                    purpose="Оплата",
                    revision=1,
                ),
            )
            for i in range(DISTINCT_FILES)
        ]
        if total <= have:
            return
        params = {"shas": shas, "inns": customers, "first": have + 1, "last": total, "top": total}
        s.execute(
            text(
                """
                INSERT INTO invoices (id, onec_id, number, number_key, issued_at, customer_inn, order_id,
                    amount, purpose, payment_status, paid_amount, onec_payment_status, onec_paid_amount,
                    matched_amount, current_version, content_hash, file_sha256, file_name)
                SELECT g, 'bench-' || g, 'Б-' || g, g::text, now() - make_interval(secs => g),
                    (CAST(:inns AS text[]))[1 + g % cardinality(CAST(:inns AS text[]))], 'BORD-' || g, 1000 + g % 1000, 'Оплата',
                    'unpaid', 0, 'unpaid', 0, 0, 1, md5(g::text),
                    (CAST(:shas AS text[]))[1 + g % cardinality(CAST(:shas AS text[]))], 'invoice.pdf'
                FROM generate_series(CAST(:first AS bigint), CAST(:last AS bigint)) g
                """
            ),
            params,
        )
        s.execute(
            text(
                """
                INSERT INTO invoice_versions (invoice_id, version, content_hash, number, issued_at,
                    customer_inn, order_id, amount, purpose, file_sha256, file_name)
                SELECT id, 1, content_hash, number, issued_at, customer_inn, order_id, amount, purpose,
                    file_sha256, file_name
                FROM invoices WHERE id >= :first
                """
            ),
            params,
        )
        s.execute(text("SELECT setval(pg_get_serial_sequence('invoices', 'id'), :top)"), params)
    with session_scope() as s:
        s.connection().exec_driver_sql("ANALYZE invoices")
        s.connection().exec_driver_sql("ANALYZE invoice_versions")


if __name__ == "__main__":
    main()
