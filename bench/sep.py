"""``python -m bench.sep``: 10,000 SEP requests outstanding at once against the sandbox.

Each is a ``sep.request_application_data`` for an application the emulator holds: submitted by
the workers, polled no earlier than the minimum delay (compressed to 5 s, SEP's own minimum the
same), then every poll interval until SEP's result is ready (its minimum delay, plus
``--processing`` seconds, plus a random share of ``--spread``), then applied to
``sep_applications``. Reported:

* readiness → applied: from the moment SEP's result is ready (the emulator's own time) to the row's
  ``applied_at`` (median, p99) — the target is p99 ≤ poll interval + 2 s;
* broker memory (a Redis of this run's own) and worker RSS while the requests wait: the peak and
  the growth over the same workers warmed up and idle (their main processes and their pool
  processes apart), and that growth per 1,000 requests waiting — the target is ≤ 30 MB for 10,000;
* the workers' CPU time per step (user + system of the worker processes, pool processes included);
* SEP's own log of poll times: polls before the minimum delay (must be 0), first-poll delays,
  polls per queue number;
* the steps' throughput and the Celery no-op rate measured in the same run, and their ratio.

The machine is shared (several sessions run tests beside this); read the figures with the no-op
rate beside them.
"""

from __future__ import annotations

import argparse
import os
import statistics
import tempfile
import time
from datetime import UTC, datetime, timedelta
from typing import Any

import httpx
import redis

from bench.common import answers, bench_stores, noop_rate, postgres_cpu_s, report, tree_cpu_s, tree_rss_kb

ORG = "7707083893"


def _percentile(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, round(q * (len(ordered) - 1)))]


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("-n", type=int, default=10_000, help="requests outstanding at once")
    parser.add_argument("--min-delay", type=float, default=5.0, help="minimum delay, obmen's and SEP's (s)")
    parser.add_argument("--interval", type=int, default=30, help="OBMEN_SEP_POLL_INTERVAL_S")
    parser.add_argument(
        "--processing", type=float, default=20.0, help="SEP's processing time after the minimum (s)"
    )
    parser.add_argument("--spread", type=float, default=40.0, help="a random further share of this (s)")
    parser.add_argument("--workers", type=int, default=2, help="worker processes (nodes)")
    parser.add_argument("--concurrency", type=int, default=3, help="pool processes per worker")
    parser.add_argument("--noop", type=int, default=5000, help="tasks of the no-op denominator")
    parser.add_argument(
        "--warm-up", type=int, default=1000, help="requests run through the workers before the idle figure"
    )
    parser.add_argument(
        "--horizon",
        type=int,
        default=None,
        help="OBMEN_OUTBOX_HORIZON_S (default: the product's): polls due later wait as outbox rows",
    )
    args = parser.parse_args()

    from tests.harness.processes import OBMEN, Process, RedisServer, free_port, start_worker
    from tests.harness.waiting import wait_for

    broker = RedisServer()
    broker.start()
    sandbox: Process | None = None
    workers: list[Process] = []
    try:
        with bench_stores() as env:
            env["OBMEN_BROKER_URL"] = os.environ["OBMEN_BROKER_URL"] = broker.url
            port = free_port()
            mail_dir = tempfile.mkdtemp(prefix="obmen-bench-sep-mail-")
            sandbox = Process(
                [OBMEN, "sandbox", "--port", str(port), "--smtp-port", str(free_port())],
                env={**env, "OBMEN_LOG_LEVEL": "WARNING", "TMPDIR": mail_dir},
            )
            base = f"http://127.0.0.1:{port}"
            wait_for(lambda: answers(base + "/_sandbox"), timeout=60, what="the sandbox")
            timing = {
                "min_delay_s": args.min_delay,
                "processing_s": args.processing,
                "processing_spread_s": args.spread,
            }
            httpx.put(base + "/_sandbox/sep/knobs", json={"extra": timing}).raise_for_status()
            settings = {
                "OBMEN_SEP_URL": base + "/sep",
                "OBMEN_SEP_MIN_POLL_DELAY_S": str(int(args.min_delay)),
                "OBMEN_SEP_POLL_INTERVAL_S": str(args.interval),
                "OBMEN_SEP_MAX_POLLS": "1000",
                "OBMEN_LOG_LEVEL": "WARNING",
            }
            if args.horizon is not None:
                settings["OBMEN_OUTBOX_HORIZON_S"] = str(args.horizon)
            os.environ.update(settings)
            from config.settings import get_settings

            get_settings.cache_clear()
            figures = _run(args, env, settings, base, broker.url, workers, start_worker, sandbox.proc.pid)
            for worker in workers:
                worker.stop()
            workers.clear()
            rate = noop_rate(args.noop, workers=2)
            figures["noop_tasks_per_s"] = rate
            figures["busiest_steps_per_s_over_noop"] = round(figures["steps_per_s"] / rate, 3)
            # What else ran: the machine is shared, and this says how busy it was, not a guess.
            figures["load_average_1_5_15_min"] = os.getloadavg()
            report(f"SEP: {args.n} requests outstanding at once", figures)
    finally:
        for worker in workers:
            worker.stop()
        if sandbox is not None:
            sandbox.stop()
        broker.close()


def _run(
    args: argparse.Namespace,
    env: dict[str, str],
    settings: dict[str, str],
    base: str,
    broker_url: str,
    workers: list[Any],
    start_worker: Any,
    sandbox_pid: int,
) -> dict[str, Any]:
    from sqlalchemy import func, select

    from config.settings import get_settings
    from models.db import session_scope
    from models.sep import APPLIED, PENDING, QUEUED, UNCERTAIN, SepRequest
    from tasks.machinery.master_data import import_master_data
    from tasks.machinery.outbox import relay, set_dispatch_mode
    from tasks.sep.actions import ask_application_data
    from workers.app import app  # noqa: F401  (publishing needs the configured app)

    with session_scope() as session:
        import_master_data(
            session,
            {
                "organizations": [{"inn": ORG, "name": "ООО «Лизинг-Бенч»"}],
                "sep_settings": {"organization_inn": ORG, "technical_email": "sep@bench.example.ru"},
            },
        )
    warm = max(args.warm_up, args.workers * args.concurrency * 5)
    numbers = httpx.post(
        base + "/_sandbox/sep/ownership-changes/many",
        json={"count": warm + args.n, "new_owner_inn": ORG},
        timeout=120,
    ).json()["application_numbers"]
    set_dispatch_mode("off")

    def ask(batch: list[str], source: str) -> None:
        with session_scope() as session:
            for number in batch:
                ask_application_data(session, number, organization_inn=ORG, source=source)

    def applied(source: str) -> int:
        with session_scope() as session:
            return (
                session.scalar(
                    select(func.count()).where(SepRequest.source == source, SepRequest.status == APPLIED)
                )
                or 0
            )

    # Warm the workers up with a burst of their own, run at full speed, so that the growth measured
    # below is what the waiting requests cost: every pool process has loaded the SEP client, the
    # models and their caches, and every main process has reached the heap a busy worker works with
    # (its allocator keeps what a burst of messages needed, ≈ 10-15 MB, whatever waits afterwards).
    for _ in range(args.workers):
        workers.append(start_worker(env={**env, **settings}, concurrency=args.concurrency, queues="sep"))
    httpx.put(base + "/_sandbox/sep/knobs", json={"extra": {"processing_s": 0, "processing_spread_s": 0}})
    ask(numbers[:warm], "warm-up")
    while relay(limit=1000):
        pass
    while applied("warm-up") < warm:
        time.sleep(0.5)
    timing = {"processing_s": args.processing, "processing_spread_s": args.spread}
    httpx.put(base + "/_sandbox/sep/knobs", json={"extra": timing}).raise_for_status()
    time.sleep(2.0)  # let the last acknowledgements and timers of the warm-up settle
    idle_main_kb, idle_rss_kb = _rss_kb(workers)
    client = redis.Redis.from_url(broker_url)
    idle_broker = int(client.info("memory")["used_memory"])

    # The measured requests, written at once (their outbox rows too), then published at once.
    ask(numbers[warm:], "bench")
    cpu_before = sum(tree_cpu_s(w.proc.pid) for w in workers)
    # The emulator and Postgres share the workers' cores here: what they take is not the workers'.
    others_before = tree_cpu_s(sandbox_pid), postgres_cpu_s()
    started = time.monotonic()
    while relay(limit=1000):
        pass
    published_s = time.monotonic() - started

    peak_rss_kb, peak_main_kb, peak_broker = idle_rss_kb, idle_main_kb, idle_broker
    submitted_at = peak_waiting = None
    burst_over = datetime.max.replace(tzinfo=UTC)
    waiting_max = held_max = 0
    while True:
        time.sleep(1.0)
        # What beat's outbox.relay does: polls due beyond OBMEN_OUTBOX_HORIZON_S wait as rows.
        while relay(limit=1000):
            pass
        main, rss = _rss_kb(workers)
        used = int(client.info("memory")["used_memory"])
        peak_rss_kb, peak_broker = max(peak_rss_kb, rss), max(peak_broker, used)
        peak_main_kb = max(peak_main_kb, main)
        # Delivered and not yet acknowledged: the countdowns the workers hold, and what they run.
        held_max = max(held_max, int(client.hlen("unacked")))
        with session_scope() as session:
            counts = dict(
                session.execute(
                    select(SepRequest.status, func.count())
                    .where(SepRequest.source == "bench")
                    .group_by(SepRequest.status)
                ).all()
            )
        if counts.get(QUEUED, 0) > waiting_max:
            waiting_max, peak_waiting = (
                counts.get(QUEUED, 0),
                (round(rss / 1024, 1), round(used / 2**20, 1)),
            )
        if submitted_at is None and not counts.get(PENDING) and not counts.get(UNCERTAIN):
            submitted_at, burst_over = time.monotonic(), datetime.now(UTC)
        if counts.get(APPLIED, 0) == args.n:
            applied_all_at = time.monotonic()
            cpu_s = sum(tree_cpu_s(w.proc.pid) for w in workers) - cpu_before
            sandbox_cpu_s = tree_cpu_s(sandbox_pid) - others_before[0]
            postgres_s = postgres_cpu_s() - others_before[1]
            break
        if time.monotonic() - started > 3600:
            raise SystemExit(f"gave up after an hour: {counts}")

    polls = httpx.get(base + "/_sandbox/sep/polls", params={"detail": "1"}, timeout=300).json()
    sep_log = {i["queue_number"]: i for i in polls["items"]}
    with session_scope() as session:
        rows = session.execute(
            select(SepRequest.queue_number, SepRequest.applied_at).where(SepRequest.source == "bench")
        ).all()
        busiest = _busiest(session)
    latency: list[float] = []
    steady: list[float] = []
    first_delays: list[float] = []
    per_number: dict[int, int] = {}  # polls per queue number -> how many queue numbers
    early = 0
    # Where a result's wait goes past the interval: the poll that found it, after its due time (the
    # poll before it plus the interval, or the acceptance plus the minimum delay), and that poll to
    # the result applied. By results ready during the submission burst, and after it.
    late: dict[bool, list[float]] = {True: [], False: []}
    to_applied: dict[bool, list[float]] = {True: [], False: []}
    for queue_number, applied_at in rows:
        item = sep_log[queue_number]
        accepted, ready = (
            datetime.fromisoformat(item["accepted_at"]),
            datetime.fromisoformat(item["ready_at"]),
        )
        assert applied_at is not None, f"queue number {queue_number} was never applied"
        latency.append((applied_at - ready).total_seconds())
        if ready > burst_over:  # ready once every submission was through: no backlog in front of it
            steady.append(latency[-1])
        times = [datetime.fromisoformat(p["at"]) for p in item["polls"]]
        first_delays.append((times[0] - accepted).total_seconds())
        after_burst = ready > burst_over
        due = (
            times[-2] + timedelta(seconds=args.interval)
            if len(times) > 1
            else accepted + timedelta(seconds=args.min_delay)
        )
        late[after_burst].append((times[-1] - due).total_seconds())
        to_applied[after_burst].append((applied_at - times[-1]).total_seconds())
        early += sum(1 for t in times if (t - accepted).total_seconds() < args.min_delay)
        per_number[len(times)] = per_number.get(len(times), 0) + 1
    steps = args.n * 2 + sum(
        k * v for k, v in per_number.items()
    )  # a submit and an apply each, and the polls
    assert submitted_at is not None and peak_waiting is not None
    total_s = applied_all_at - started
    return {
        "requests": args.n,
        "min_delay_s": args.min_delay,
        "poll_interval_s": args.interval,
        "sep_processing_s": f"{args.processing} + U(0, {args.spread})",
        "workers": f"{args.workers} x prefork -c {args.concurrency}",
        "outbox_horizon_s": get_settings().outbox_horizon_s,
        "published_s": round(published_s, 1),
        "all_submitted_after_s": round(submitted_at - started, 1),
        "all_applied_after_s": round(total_s, 1),
        "most_waiting_at_once": waiting_max,
        "ready_to_applied_median_s": round(statistics.median(latency), 2),
        "ready_to_applied_p99_s": round(_percentile(latency, 0.99), 2),
        "ready_to_applied_max_s": round(max(latency), 2),
        "ready_after_the_submission_burst": len(steady),
        "of_those_ready_to_applied_median_s": round(statistics.median(steady), 2) if steady else None,
        "of_those_ready_to_applied_p99_s": round(_percentile(steady, 0.99), 2) if steady else None,
        "target_p99_s": args.interval + 2,
        "finding_poll_after_its_due_time_p99_s_in_burst_after": tuple(
            round(_percentile(late[k], 0.99), 2) if late[k] else None for k in (False, True)
        ),
        "finding_poll_to_applied_p99_s_in_burst_after": tuple(
            round(_percentile(to_applied[k], 0.99), 2) if to_applied[k] else None for k in (False, True)
        ),
        "worker_rss_idle_mb": round(idle_rss_kb / 1024, 1),
        "worker_rss_peak_mb": round(peak_rss_kb / 1024, 1),
        "worker_rss_growth_mb": round((peak_rss_kb - idle_rss_kb) / 1024, 1),
        "worker_rss_growth_mb_per_1000_waiting": round(
            (peak_rss_kb - idle_rss_kb) / 1024 / waiting_max * 1000, 1
        ),
        "of_it_main_processes_idle_to_peak_mb": (
            round(idle_main_kb / 1024, 1),
            round(peak_main_kb / 1024, 1),
        ),
        "worker_rss_and_broker_mb_at_most_waiting": peak_waiting,
        "messages_held_by_workers_at_most": held_max,
        "broker_memory_idle_mb": round(idle_broker / 2**20, 1),
        "broker_memory_peak_mb": round(peak_broker / 2**20, 1),
        "sep_polls": sum(k * v for k, v in per_number.items()),
        "sep_polls_before_min_delay": early,
        "sep_first_poll_delay_min_s": round(min(first_delays), 3),
        "sep_first_poll_delay_median_s": round(statistics.median(first_delays), 1),
        "sep_first_poll_delay_max_s": round(max(first_delays), 1),
        "sep_polls_per_queue_number": {str(k): v for k, v in sorted(per_number.items())},
        "steps": steps,
        "steps_per_s_average": round(steps / total_s, 1),
        "worker_cpu_ms_per_step": round(cpu_s * 1000 / steps, 2),
        "postgres_cpu_ms_per_step": round(postgres_s * 1000 / steps, 2),
        "sep_emulator_cpu_ms_per_step (same cores)": round(sandbox_cpu_s * 1000 / steps, 2),
        "steps_per_s": round(busiest, 1),
    }


def _rss_kb(workers: list[Any]) -> tuple[int, int]:
    """RSS of the workers' main processes, and of the main processes with their pool processes (KiB)."""
    main = sum(tree_rss_kb(w.proc.pid) - sum(tree_rss_kb(c) for c in _children(w.proc.pid)) for w in workers)
    return main, sum(tree_rss_kb(w.proc.pid) for w in workers)


def _children(pid: int) -> list[int]:
    try:
        with open(f"/proc/{pid}/task/{pid}/children") as listed:
            return [int(child) for child in listed.read().split()]
    except FileNotFoundError:
        return []


def _busiest(session: Any, window_s: int = 5) -> float:
    """SEP exchanges (submits and polls) per second in the busiest ``window_s`` seconds of the run."""
    from sqlalchemy import text

    peak = session.execute(
        text(
            "SELECT count(*) FROM sep_exchange_history "
            "GROUP BY floor(extract(epoch FROM created_at) / :w) ORDER BY count(*) DESC LIMIT 1"
        ),
        {"w": window_s},
    ).scalar()
    return float(peak or 0) / window_s


if __name__ == "__main__":
    main()
