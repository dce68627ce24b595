"""``python -m bench.noop``: the raw Celery no-op rate on this machine, the denominator of every benchmark."""

from __future__ import annotations

import argparse

from bench.common import bench_stores, noop_rate, report


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("-n", type=int, default=5000)
    parser.add_argument("--workers", type=int, default=2)
    args = parser.parse_args()
    with bench_stores():
        rate = noop_rate(args.n, args.workers)
    report("celery no-op", {"tasks": args.n, "worker_processes": args.workers, "noop_tasks_per_s": rate})


if __name__ == "__main__":
    main()
