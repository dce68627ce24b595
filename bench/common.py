"""What every benchmark shares: throwaway stores, worker processes, RSS, the no-op denominator.

These machines are shared and noisy, so every benchmark measures the raw Celery no-op rate on the
same broker in the same run and reports its own figure as a ratio of it.
"""

from __future__ import annotations

import json
import os
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import redis


@contextmanager
def bench_stores() -> Iterator[dict[str, str]]:
    """A throwaway database (migrated) and Redis database, exported to this process and its children."""
    from tests.harness import stores

    created = stores.create()
    env = {
        "OBMEN_DATABASE_URL": created.database_url,
        "OBMEN_BROKER_URL": created.broker_url,
        "OBMEN_LOG_JSON": "false",
        "OBMEN_LOG_LEVEL": "WARNING",
    }
    os.environ.update(env)
    from config.settings import get_settings

    get_settings.cache_clear()
    from models.migrate import upgrade

    upgrade(created.database_url)
    try:
        yield env
    finally:
        created.release()


def tree_rss_kb(pid: int) -> int:
    """Resident memory of a process and all its descendants, in KiB."""
    total = 0
    for child in [pid, *_descendants(pid)]:
        try:
            for line in Path(f"/proc/{child}/status").read_text().splitlines():
                if line.startswith("VmRSS:"):
                    total += int(line.split()[1])
        except FileNotFoundError:
            continue
    return total


def _descendants(pid: int) -> list[int]:
    found: list[int] = []
    try:
        children = Path(f"/proc/{pid}/task/{pid}/children").read_text().split()
    except FileNotFoundError:
        return found
    for child in map(int, children):
        found += [child, *_descendants(child)]
    return found


def remaining(broker_url: str, queue: str) -> int:
    """Messages of ``queue`` not yet done: waiting, or delivered and not yet acknowledged."""
    client = redis.Redis.from_url(broker_url)
    return int(client.llen(queue)) + int(client.hlen("unacked"))


def noop_rate(n: int = 5000, workers: int = 2) -> float:
    """Tasks per second of ``ops.noop`` through ``workers`` solo worker processes on the current broker."""
    from tests.harness.processes import start_worker
    from workers.app import app
    from workers.cli.output import progress

    broker_url = os.environ["OBMEN_BROKER_URL"]
    procs = [start_worker(concurrency=1, pool="solo", queues="ops") for _ in range(workers)]
    try:
        start = time.perf_counter()
        with app.producer_or_acquire() as producer:
            for _ in range(n):
                app.send_task("ops.noop", kwargs={}, producer=producer)
        with progress("no-op tasks run", n) as shown:
            while left := remaining(broker_url, "ops"):
                shown.advance(max(0, n - left - shown.done))
                time.sleep(0.01)
            shown.advance(n - shown.done)
        return n / (time.perf_counter() - start)
    finally:
        for proc in procs:
            proc.stop()


def report(name: str, figures: dict[str, Any]) -> None:
    """Print the figures as a table and one JSON line (for the closing notes and for tooling)."""
    print(f"\n{name}")
    width = max(len(k) for k in figures)
    for key, value in figures.items():
        shown = f"{value:,.2f}" if isinstance(value, float) else str(value)
        print(f"  {key.ljust(width)}  {shown}")
    print("JSON " + json.dumps({"benchmark": name, **figures}, default=str))
