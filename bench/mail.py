"""``python -m bench.mail``: 5,000 SEP letters in a real IMAP mailbox (Dovecot), two worker processes.

Every letter is stored, parsed, matched against 1,000 assets, its code filed, and its personal
notification sent over SMTP to the sandbox sink. Reports letters per second (from the first
``mail.fetch`` until the last notification is accepted), the raw Celery no-op rate on the same
broker measured in the same run (before and after), their ratio, and the peak RSS of each worker.
"""

from __future__ import annotations

import argparse
import random
import string
import time

from sqlalchemy import func, select

from bench.common import bench_stores, commits, cpu_s, noop_rate, postgres_cpu_s, report, tree_rss_kb
from tests.harness.dovecot import DovecotServer

VIN_CHARS = "ABCDEFGHJKLMNPRSTUVWXYZ0123456789"


def _vin(rng: random.Random) -> str:
    return "".join(rng.choice(VIN_CHARS) for _ in range(17))


def master_data(assets: int, rng: random.Random) -> dict:
    employees = [
        {"id": f"B{i}", "name": f"Сотрудник {i}", "email": f"e{i}@bench.example.ru"} for i in range(20)
    ]
    return {
        "organizations": [{"inn": "7707083893", "name": "ООО «Бенч»"}],
        "employees": employees,
        "assets": [
            {
                "inventory_number": f"OS-{i:05d}",
                "name": f"Тягач {i}",
                "vin": _vin(rng),
                "epts": f"1643{i:011d}",
                "responsible": f"B{i % 20}",
                "organization_inn": "7707083893",
            }
            for i in range(assets)
        ],
        "sep_settings": {
            "organization_inn": "7707083893",
            "technical_email": "sep@bench.example.ru",
            "responsible": "B0",
        },
    }


def letters(count: int, master: dict, rng: random.Random) -> list[bytes]:
    from tests.mail.corpus import sep_letter

    out = []
    kinds = ["ownership_change", "lease_application", "lease_entered"]
    for i in range(count):
        asset = master["assets"][i % len(master["assets"])]
        vin: str | None = asset["vin"]
        epts: str | None = asset["epts"]
        shape = i % 10
        if shape in (7, 8):
            vin = f"{asset['vin'][:3]}********{asset['vin'][-6:]}"  # masked
        elif shape == 9:
            vin = None  # ЭПТС only
        kind = kinds[0] if i % 3 else kinds[1]
        code = "".join(rng.choice(string.digits) for _ in range(6))
        out.append(
            sep_letter(kind, f"2026-{i:06d}", vin=vin, epts=epts, code=code, to="sep@bench.example.ru")
        )
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("-n", type=int, default=5000, help="letters")
    parser.add_argument("--assets", type=int, default=1000)
    parser.add_argument("--noop", type=int, default=5000, help="no-op tasks for the denominator")
    parser.add_argument(
        "--prefill", type=int, default=0, help="rows of history in each large register first (bench.console)"
    )
    args = parser.parse_args()
    rng = random.Random(3)

    with bench_stores() as env, DovecotServer() as dovecot:
        if args.prefill:
            from bench.console import seed

            seed(args.prefill)
        from config.settings import get_settings
        from models.db import session_scope
        from models.mail import MailMessage, OutgoingLetter
        from models.outbox import Outbox
        from sandbox.harness import SandboxClock
        from sandbox.mail import SmtpSink
        from tasks.machinery.master_data import import_master_data
        from tests.harness.processes import start_worker
        from workers.app import app

        noop_before = noop_rate(args.noop, 2)
        master = master_data(args.assets, rng)
        with session_scope() as session:
            import_master_data(session, master)
            # This run's letters, not the history ``--prefill`` put there.
            ours = MailMessage.id > (session.scalar(select(func.max(MailMessage.id))) or 0)
        raws = letters(args.n, master, rng)
        started = time.perf_counter()
        dovecot.append(raws)
        append_s = time.perf_counter() - started

        sink = SmtpSink(SandboxClock())
        smtp = sink.client_settings("http://127.0.0.1")
        sink.start("127.0.0.1")
        worker_env = {
            **env,
            **smtp,
            "OBMEN_IMAP_URL": dovecot.url(),
            "OBMEN_MAIL_FROM": "obmen <obmen@bench.example.ru>",
        }
        workers = [
            start_worker(env=worker_env, concurrency=1, pool="solo", queues="mail,ops") for _ in range(2)
        ]
        rss_start = [tree_rss_kb(w.proc.pid) for w in workers]
        cpu_start = [cpu_s(w.proc.pid) for w in workers]
        postgres_start = postgres_cpu_s()
        commits_start = commits()
        peaks = list(rss_start)
        try:
            started = time.perf_counter()
            app.send_task("mail.fetch", kwargs={})
            stored_at = processed_at = None
            while True:
                with session_scope() as session:
                    stored = session.scalar(select(func.count()).where(ours)) or 0
                    waiting = (
                        session.scalar(select(func.count()).where(ours, MailMessage.status == "new")) or 0
                    )
                    sent = session.scalar(select(func.count()).where(OutgoingLetter.status == "sent")) or 0
                now = time.perf_counter() - started
                if stored_at is None and stored >= args.n:
                    stored_at = now
                if processed_at is None and stored >= args.n and waiting == 0:
                    processed_at = now
                peaks = [max(p, tree_rss_kb(w.proc.pid)) for p, w in zip(peaks, workers, strict=True)]
                if sent >= args.n:
                    break
                if now > 1800:
                    raise SystemExit(
                        f"gave up after {now:.0f} s: {stored} stored, {waiting} waiting, {sent} sent"
                    )
                time.sleep(0.5)
            elapsed = time.perf_counter() - started
            rss_end = [tree_rss_kb(w.proc.pid) for w in workers]
            worker_cpu = sum(cpu_s(w.proc.pid) for w in workers) - sum(cpu_start)
            postgres_cpu = postgres_cpu_s() - postgres_start
            commits_per_letter = (commits() - commits_start) / args.n
        finally:
            for worker in workers:
                worker.stop()
            sink.stop()
        with session_scope() as session:
            statuses = dict(
                session.execute(
                    select(MailMessage.status, func.count()).where(ours).group_by(MailMessage.status)
                ).all()
            )
            # Each stored batch's ``mail.process`` outbox rows carry its transaction's start: from the
            # first batch's to the last's is the intake of every batch but the first, with no polling.
            first, last = session.execute(
                select(func.min(Outbox.created_at), func.max(Outbox.created_at)).where(
                    Outbox.task_name == "mail.process"
                )
            ).one()
            first_batch = min(args.n, get_settings().mail_fetch_batch)
            intake_s = (last - first).total_seconds()
        noop_after = noop_rate(args.noop, 2)

    noop = (noop_before + noop_after) / 2
    rate = args.n / elapsed
    report(
        "mail intake: IMAP -> stored -> parsed -> matched -> code filed -> notified by SMTP",
        {
            "letters": args.n,
            "history_rows_per_register": args.prefill,
            "assets": args.assets,
            "worker_processes": 2,
            "imap_append_s (setup, not timed)": append_s,
            "all_stored_s": stored_at,
            "imap_intake_per_s (between the first and last batch)": (args.n - first_batch) / intake_s
            if intake_s
            else None,
            "all_processed_s": processed_at,
            "all_notified_s": elapsed,
            "statuses": statuses,
            "smtp_sink_received": len(sink.received()),
            "letters_per_s": rate,
            "noop_tasks_per_s_before": noop_before,
            "noop_tasks_per_s_after": noop_after,
            "ratio_to_noop": rate / noop,
            "worker_cpu_ms_per_letter": worker_cpu * 1000 / args.n,
            "postgres_cpu_ms_per_letter": postgres_cpu * 1000 / args.n,
            "postgres_commits_per_letter": commits_per_letter,
            "worker_rss_start_mb": [round(kb / 1024, 1) for kb in rss_start],
            "worker_rss_peak_mb": [round(kb / 1024, 1) for kb in peaks],
            "worker_rss_end_mb": [round(kb / 1024, 1) for kb in rss_end],
        },
    )


if __name__ == "__main__":
    main()
