"""What every benchmark shares: throwaway stores, worker processes, the gateway, RSS, the no-op
denominator.

These machines are shared and noisy, so every benchmark measures the raw Celery no-op rate on the
same broker in the same run and reports its own figure as a ratio of it.
"""

from __future__ import annotations

import json
import os
import signal
import sys
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import redis


@contextmanager
def bench_stores() -> Iterator[dict[str, str]]:
    """A throwaway database (migrated) and Redis database, exported to this process and its children."""
    from tests.harness import stores

    # A run stopped by SIGTERM (``timeout``) unwinds like Ctrl-C: its workers and gateway run in
    # sessions of their own and would otherwise go on consuming a Redis database the test stores
    # hand out again once its lock expires.
    signal.signal(signal.SIGTERM, lambda signum, frame: sys.exit(128 + signum))

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


@dataclass
class Served:
    """The gateway's port and pid (for its CPU figure)."""

    port: int
    pid: int


@contextmanager
def serving(workers: list[Any], env: dict[str, str], gateway_processes: int = 1) -> Iterator[Served]:
    """``obmen gateway`` on a free port beside ``workers`` (already started), once it answers; on exit
    the gateway and the workers stop, so the no-op run that follows has the CPU."""
    from tests.harness.processes import OBMEN, Process, free_port
    from tests.harness.waiting import wait_for

    port = free_port()
    command = [OBMEN, "gateway", "--port", str(port), "--workers", str(gateway_processes)]
    gateway = Process(command, env=env)
    try:
        wait_for(lambda: answers(f"http://127.0.0.1:{port}/healthz"), timeout=30, what="the gateway")
        yield Served(port, gateway.proc.pid)
    finally:
        gateway.stop()
        for worker in workers:
            worker.stop()


def answers(url: str) -> bool:
    """Whether ``url`` answers 200 now (a process still coming up does not)."""
    import httpx

    try:
        return httpx.get(url, timeout=2).status_code == 200
    except httpx.TransportError:
        return False


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


def cpu_s(pid: int, *, reaped: bool = False) -> float:
    """User + system CPU seconds of a process; with ``reaped`` also of its children that have exited
    (Postgres backends come and go, and their time lands in the postmaster's ``cutime``)."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    ticks = int(fields[11]) + int(fields[12])
    if reaped:
        ticks += int(fields[13]) + int(fields[14])
    return ticks / os.sysconf("SC_CLK_TCK")


def tree_cpu_s(pid: int) -> float:
    """CPU seconds of a process tree: the live processes and what the exited ones left with their parents
    (a gateway's uvicorn workers, a prefork worker's children)."""
    total = 0.0
    for member in [pid, *_descendants(pid)]:
        try:
            total += cpu_s(member, reaped=True)
        except FileNotFoundError:
            continue
    return total


def postgres_cpu_s() -> float:
    """CPU seconds the whole Postgres server has spent so far (every backend, live or gone). The server is
    shared, so a figure from it is only clean on an otherwise quiet machine."""
    from sqlalchemy import text

    from models.db import engine_for

    with engine_for().connect() as conn:
        backend = conn.execute(text("SELECT pg_backend_pid()")).scalar_one()
    parent = int(Path(f"/proc/{backend}/stat").read_text().rsplit(")", 1)[1].split()[1])
    return tree_cpu_s(parent)


def commits() -> int:
    """Transactions committed in this benchmark's own database so far (exact, whatever else runs)."""
    from sqlalchemy import text

    from models.db import engine_for

    with engine_for().connect() as conn:
        query = "SELECT xact_commit FROM pg_stat_database WHERE datname = current_database()"
        return int(conn.execute(text(query)).scalar_one())


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
