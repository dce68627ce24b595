"""``python -m bench.console``: the console's pages at real register sizes, through the gateway.

* ``--rows`` (default 100,000) rows in each of the largest registers: payments, letters
  (mail_messages), the SEP queue, acts, the exchange log; 1 % of payments unallocated, 1 % of letters
  unprocessed, 0.5 % of SEP requests open.
* The gateway in this process over real HTTP (uvicorn), a logged-in admin, the settings' defaults
  (tab and start-page counts cached 10 s per process, so about one request in a hundred recomputes
  them); and the counts themselves computed without a cache, in process (``uncached counts``).
* Each page's first page and a filtered page, and the start page: ``--requests`` sequential requests
  after a warm-up, p50 and p99 of the time to the whole answer, measured by the client over loopback
  (an upper bound of the server's time).
* Three runs; each prints the Celery no-op rate of the same run (``bench.common.noop_rate``) to
  compare machines. The summary is min / median / max of each page's p99 over the runs.
"""

from __future__ import annotations

import argparse
import re
import statistics
import time
import uuid
from datetime import date, timedelta
from decimal import Decimal
from typing import Any

import httpx
from sqlalchemy import insert

from bench.common import bench_stores, noop_rate, report

BATCH = 5000
PAGES = {
    "start page": "/console/",
    "start page counts (60 s refresh)": "/console/widgets",
    "SEP letters": "/console/sep/letters",
    "SEP ownership changes": "/console/sep/ownership",
    "SEP queue": "/console/sep/queue",
    "SEP errors": "/console/sep/errors",
    "payments": "/console/payments",
    "payments, unallocated": "/console/payments?status=unallocated",
    "payments, by ИНН": "/console/payments?inn=7707000017",
    "payments, page after id 50000": "/console/payments?after=50000",
    "acts": "/console/acts",
    "acts, by status": "/console/acts?status=%D0%A1%D0%BE%D0%B7%D0%B4%D0%B0%D0%BD",
    "mail": "/console/mail",
    "mail, errors": "/console/mail?status=error",
    "exchange log": "/console/exchange",
    "exchange log, system sep": "/console/exchange?system=sep",
    "ops": "/console/ops",
    "audit": "/console/audit",
}


def _batches(n: int, row: Any) -> None:
    from models.db import session_scope

    for start in range(0, n, BATCH):
        rows = [row(i) for i in range(start, min(start + BATCH, n))]
        model = rows[0].pop("__model__")
        for r in rows[1:]:
            r.pop("__model__")
        with session_scope() as session:
            session.execute(insert(model), rows)


def seed(n: int) -> None:
    from models.acts import Act, ActDeal
    from models.base import utcnow
    from models.exchange_log import ExchangeLog
    from models.mail import MailMessage
    from models.payments import Payment
    from models.sep import SepRequest

    now = utcnow()
    _batches(
        n,
        lambda i: {
            "__model__": Payment,
            "transaction_id": f"bench-{i}",
            "source": "bank",
            "inn": f"7707{i % 1000:06d}",
            "amount": Decimal("1000.00"),
            "paid_at": now - timedelta(minutes=i),
            "purpose": "Оплата по договору",
            "content_hash": "0" * 64,
            "status": "unallocated" if i % 100 == 0 else "posted",
            "remainder": Decimal("0.00"),
            "attempts": 1,
        },
    )
    _batches(
        n,
        lambda i: {
            "__model__": MailMessage,
            "mailbox": "imap://bench@127.0.0.1/INBOX",
            "uidvalidity": 1,
            "uid": i + 1,
            "status": "error" if i % 100 == 0 else "ignored",
            "content_hash": f"{i:064d}",
            "size": 1000,
            "sender": "noreply@elpts.ru",
            "subject": "СЭП: уведомление",
            "received_at": now - timedelta(minutes=i),
        },
    )
    _batches(
        n,
        lambda i: {
            "__model__": SepRequest,
            "operation": "RequestApplicationData",
            "business_key": f"bench:{i}",
            "message_id": str(uuid.uuid4()),
            "payload": {},
            "status": "queued" if i % 200 == 0 else "applied",
            "request_status": "Получен номер очереди" if i % 200 == 0 else "Получен ответ",
            "queue_number": f"QB-{i}",
            "submitted_at": now - timedelta(minutes=i),
            "next_poll_at": now + timedelta(minutes=1),
        },
    )
    _batches(
        n,
        lambda i: {
            "__model__": ActDeal,
            "deal_id": i + 1,
            "status": "synced",
            "stage_id": "WON",
            "attempts": 0,
        },
    )
    _batches(
        n,
        lambda i: {
            "__model__": Act,
            "number": f"B-{i:07d}",
            "act_date": date(2026, 1, 1) + timedelta(days=i % 300),
            "deal_id": i + 1,
            "company_id": 1 + i % 5000,
            "counterparty_inn": "7728168971",
            "counterparty_name": "ООО «Контрагент»",
            "act_type": "paper_ul",
            "amount": Decimal("5000.00"),
            "status": "Создан" if i % 50 == 0 else "Акт получен и подписан",
            "attempts": 0,
        },
    )
    _batches(
        n,
        lambda i: {
            "__model__": ExchangeLog,
            "created_at": now - timedelta(seconds=10 * i),
            "system": ("sep", "bitrix24", "sbis", "imap")[i % 4],
            "operation": "GetQueueResult",
            "direction": "out",
            "business_key": f"bench:{i}",
            "request_body": "<Envelope/>",
            "response_status": 500 if i % 97 == 0 else 200,
            "response_body": "<Envelope/>",
            "duration_ms": 12.5,
        },
    )
    from models.db import engine_for

    # As autovacuum would have long before on a register that grew to this: the planner needs the
    # statistics to pick the partial indexes, and a vacuum of the new rows is not left to run
    # during the measurement.
    with engine_for().connect().execution_options(isolation_level="AUTOCOMMIT") as conn:
        conn.exec_driver_sql("VACUUM ANALYZE")


def _logged_in(base: str) -> httpx.Client:
    from models.db import session_scope
    from workers.gateway.console.accounts import add_user

    with session_scope() as session:
        add_user(session, "bench", "bench-password", "admin")
    client = httpx.Client(base_url=base, timeout=30)
    token = re.search(r'name="csrf" value="([^"]+)"', client.get("/console/login").text)
    assert token
    answer = client.post(
        "/console/login", data={"csrf": token.group(1), "login": "bench", "password": "bench-password"}
    )
    assert answer.status_code == 303, answer.text
    return client


def measure(client: httpx.Client, requests: int) -> dict[str, tuple[float, float]]:
    """p50 and p99 in ms of each page."""
    found = {}
    for name, path in PAGES.items():
        for _ in range(3):
            client.get(path).raise_for_status()
        times = []
        for _ in range(requests):
            start = time.perf_counter()
            client.get(path).raise_for_status()
            times.append((time.perf_counter() - start) * 1000)
        times.sort()
        found[name] = (times[len(times) // 2], times[min(len(times) - 1, int(len(times) * 0.99))])
    return found


def uncached_counts(requests: int) -> dict[str, tuple[float, float]]:
    """p50 and p99 in ms of the start page's counts and the SEP tabs' counts, computed directly."""
    from models.db import session_scope
    from tasks.sep import queries
    from workers.gateway.console.pages import widgets

    found = {}
    for name, compute in (
        ("uncached counts: start page", lambda s: {w.key: w.count(s) for w in widgets()}),
        ("uncached counts: SEP tabs", queries.summary),
    ):
        times = []
        for _ in range(requests):
            start = time.perf_counter()
            with session_scope() as session:
                compute(session)
            times.append((time.perf_counter() - start) * 1000)
        times.sort()
        found[name] = (times[len(times) // 2], times[min(len(times) - 1, int(len(times) * 0.99))])
    return found


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--rows", type=int, default=100_000)
    parser.add_argument("--requests", type=int, default=100)
    parser.add_argument("--runs", type=int, default=3)
    parser.add_argument("--noop", type=int, default=3000)
    args = parser.parse_args()
    with bench_stores():
        from tests.harness.gateway import GatewayThread

        started = time.perf_counter()
        seed(args.rows)
        print(f"seeded {args.rows:,} rows in each of 5 registers in {time.perf_counter() - started:.0f} s")
        runs: list[dict[str, tuple[float, float]]] = []
        rates: list[float] = []
        with GatewayThread() as gateway:
            client = _logged_in(gateway.url)
            for run in range(args.runs):
                runs.append({**measure(client, args.requests), **uncached_counts(max(5, args.requests // 5))})
                rates.append(noop_rate(args.noop))
                figures: dict[str, Any] = {
                    f"{k} p50/p99 ms": f"{a:.1f} / {b:.1f}" for k, (a, b) in runs[-1].items()
                }
                figures["celery no-op tasks/s"] = rates[-1]
                report(f"console run {run + 1} ({args.rows:,} rows per register)", figures)
            client.close()
        summary: dict[str, Any] = {}
        for name in runs[0]:
            p99s = sorted(r[name][1] for r in runs)
            summary[f"{name} p99 ms min/median/max"] = (
                f"{p99s[0]:.1f} / {statistics.median(p99s):.1f} / {p99s[-1]:.1f}"
            )
        summary["celery no-op tasks/s min/median/max"] = (
            f"{min(rates):.0f} / {statistics.median(rates):.0f} / {max(rates):.0f}"
        )
        worst = max(max(r[name][1] for r in runs) for name in PAGES)  # the pages, through the gateway
        summary["worst p99 ms"] = round(worst, 1)
        summary["worst p99 as no-op task times"] = round(worst / 1000 * statistics.median(rates), 1)
        report(f"console summary ({args.runs} runs)", summary)


if __name__ == "__main__":
    main()
