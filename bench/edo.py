"""``python -m bench.edo``: customers' signed packages through the Synerdocs emulator, end to end.

* ``--packages`` packages (10,000 in the issue; the default is smaller for this shared machine) of
  ``--documents`` documents of ``--size`` bytes each (3 × 300 KB), from ``--customers`` new customers
  (each registered at the operator by the first of its packages), each document with its own
  customer's detached CMS signature. The packages are taken in first (the cabinet's intake, outbox
  rows held); then the clock starts, the outbox is relayed and ``--workers`` solo worker processes run
  ``edo.package.check`` and ``edo.package.send`` for every package. Done when every package is
  ``sent``: packages/s, compared with the no-op Celery rate of the same run (``ops.noop`` on as many
  solo workers).
* The workers' RSS (process and children) when the clock starts, at each tenth of the packages
  sent, and at the end: flat means the files are read one package at a time, never all held.
* Exactly once: ``SendMessage`` calls accepted by the emulator equal the packages, and no package key
  is on more than one message.
* The company's incoming cursor (``edo.fetch`` in this process) reading every message: messages/s,
  each applied once (``routed`` = packages, a second read applies nothing).

The emulator keeps each file once by its SHA-256, so the same three files sent 10,000 times do not
hold 9 GB of its memory; obmen stores them once too (``edo_files``).
"""

from __future__ import annotations

import argparse
import os
import time
from typing import Any

from sqlalchemy import func, select

from bench.common import bench_stores, noop_rate, report, tree_rss_kb


def customers(n: int) -> list[tuple[str, str]]:
    """``n`` sole traders with valid 12-digit ИНН: (ИНН, name)."""
    from stdnum.ru import inn

    found = []
    for i in range(n):
        base = f"7701{i:06d}"
        found.append((base + inn.calc_personal_check_digits(base), f"ИП Бенчмарков{i} Иван Петрович"))
    return found


def seed(packages: int, documents: int, size: int, n_customers: int) -> None:
    """Routing rules, the files and their signatures, and every package taken in (outbox held)."""
    from models.db import session_scope
    from models.edo import store_file
    from models.master import Employee
    from sandbox.synerdocs.signatures import sign_detached
    from tasks.edo import register
    from tasks.edo.register import CustomerIn, DocumentIn, PackageIn

    with session_scope() as session:
        session.add(Employee(id="E1", name="Смирнов", email="smirnov@voek.example"))
        session.flush()
        register.set_rule(session, "tp_application", "Заявка на ТП", "E1", 15)
    files = [os.urandom(size) for _ in range(documents)]
    with session_scope() as session:
        digests = [store_file(session, content) for content in files]
    signed: list[tuple[CustomerIn, list[DocumentIn]]] = []
    for inn, name in customers(n_customers):
        with session_scope() as session:
            docs = [
                DocumentIn(
                    sha256=digest,
                    file_name=f"document-{i}.pdf",
                    title=f"Документ {i}",
                    document_type="tp_application",
                    signature_sha256=store_file(session, sign_detached(name, inn, content)),
                )
                for i, (digest, content) in enumerate(zip(digests, files, strict=True), start=1)
            ]
        signed.append((CustomerIn(inn=inn, name=name), docs))
    for start in range(0, packages, 200):
        with session_scope() as session:
            for i in range(start, min(start + 200, packages)):
                customer, docs = signed[i % len(signed)]
                register.submit_package(
                    session, PackageIn(package_key=f"bench-{i}", customer=customer, documents=docs)
                )


def _count(query: Any) -> int:
    from models.db import session_scope

    with session_scope() as session:
        return int(session.scalar(query) or 0)


def run(args: argparse.Namespace) -> dict[str, Any]:
    from models.edo import ROUTED, SENT, EdoPackage
    from sandbox.harness import SandboxClock
    from sandbox.server import Sandbox
    from sandbox.synerdocs.emulator import SynerdocsEmulator
    from tasks.edo.incoming import fetch
    from tasks.machinery.outbox import relay_all, set_dispatch_mode
    from tests.harness.processes import start_worker

    figures: dict[str, Any] = {
        "packages": args.packages,
        "documents_per_package": args.documents,
        "document_bytes": args.size,
        "customers": args.customers,
    }
    with Sandbox([SynerdocsEmulator(SandboxClock())]) as box:
        from cryptography.fernet import Fernet

        env = {**box.client_settings(), "OBMEN_SYNERDOCS_CREDENTIALS_KEY": Fernet.generate_key().decode()}
        os.environ.update(env)
        from config.settings import get_settings

        get_settings.cache_clear()
        emulator = box.emulator("synerdocs")
        assert isinstance(emulator, SynerdocsEmulator)
        set_dispatch_mode("off")
        started = time.perf_counter()
        seed(args.packages, args.documents, args.size, args.customers)
        figures["intake_s"] = time.perf_counter() - started
        set_dispatch_mode("inline")

        procs = [start_worker(env=env, concurrency=1, pool="solo", queues="edo") for _ in range(args.workers)]
        rss: list[int] = []
        try:
            rss.append(sum(tree_rss_kb(p.proc.pid) for p in procs))
            started = time.perf_counter()
            relay_all(max_batches=10_000)
            sent_query = select(func.count()).where(EdoPackage.status == SENT)
            next_sample = args.packages // 10
            deadline = started + 3600
            while (sent := _count(sent_query)) < args.packages:
                if time.perf_counter() > deadline:
                    raise RuntimeError(f"only {sent} of {args.packages} packages sent in an hour")
                if sent >= next_sample:
                    rss.append(sum(tree_rss_kb(p.proc.pid) for p in procs))
                    next_sample += args.packages // 10
                time.sleep(0.2)
            elapsed = time.perf_counter() - started
            rss.append(sum(tree_rss_kb(p.proc.pid) for p in procs))
        finally:
            for proc in procs:
                proc.stop()
        world = emulator.world
        figures["send_s"] = elapsed
        figures["packages_per_s"] = args.packages / elapsed
        figures["worker_rss_kb_start_tenths_end"] = rss
        figures["send_message_calls"] = world.send_calls
        figures["keys_on_more_than_one_message"] = sum(1 for n in world.custom_fields.values() if n > 1)
        assert world.send_calls == args.packages, world.send_calls

        started = time.perf_counter()
        applied = fetch()
        figures["cursor_s"] = time.perf_counter() - started
        figures["cursor_messages_per_s"] = args.packages / figures["cursor_s"]
        figures["cursor_outcomes"] = dict(applied.outcomes)
        figures["cursor_second_read"] = dict(fetch().outcomes)
        figures["routed"] = _count(select(func.count()).where(EdoPackage.status == ROUTED))
        assert figures["routed"] == args.packages, figures["routed"]
    figures["noop_tasks_per_s"] = noop_rate(5000, args.workers)
    figures["ratio_to_noop"] = figures["packages_per_s"] / figures["noop_tasks_per_s"]
    figures["worker_processes"] = args.workers
    return figures


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--packages", type=int, default=1000)
    parser.add_argument("--documents", type=int, default=3)
    parser.add_argument("--size", type=int, default=300_000)
    parser.add_argument("--customers", type=int, default=50)
    parser.add_argument("--workers", type=int, default=2)
    args = parser.parse_args()
    with bench_stores():
        from workers.app import app  # noqa: F401  (publishing needs the configured app)

        figures = run(args)
    report("edo: signed packages through Synerdocs, the incoming cursor", figures)


if __name__ == "__main__":
    main()
