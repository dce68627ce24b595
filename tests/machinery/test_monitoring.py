"""Metrics, alerts and the dashboard: a real worker's task metrics, the rules checked by promtool,
and every expression naming a metric obmen exports."""

from __future__ import annotations

import json
import re
import subprocess
from pathlib import Path

import httpx
import pytest
import yaml
from prometheus_client.parser import text_string_to_metric_families

from models.canary import Canary
from models.db import session_scope
from models.dead_letters import DeadLetter
from models.gauges import GAUGES
from tasks.machinery.canary import start_canary
from tasks.machinery.outbox import relay, set_dispatch_mode
from tests.harness.processes import free_port, obmen, start_worker
from tests.harness.waiting import wait_for
from tests.services import PROMETHEUS_PACKAGE, promtool_binary
from workers.cli.probes import file_is_fresh
from workers.metrics import TaskMetrics

ROOT = Path(__file__).resolve().parents[2]
PROMETHEUS = ROOT / "deploy/prometheus"
DASHBOARD = ROOT / "deploy/grafana/dashboards/obmen.json"
# Series Prometheus makes itself for every target.
PROMETHEUS_OWN = {"up"}


def _scrape(url: str) -> dict[tuple[str, tuple[tuple[str, str], ...]], float]:
    samples = {}
    for family in text_string_to_metric_families(httpx.get(url, timeout=5).text):
        for sample in family.samples:
            samples[(sample.name, tuple(sorted(sample.labels.items())))] = sample.value
    return samples


def test_a_worker_counts_every_outcome_of_its_tasks(obmen_app) -> None:
    set_dispatch_mode("off")
    with session_scope() as s:
        canaries = [
            start_canary(s).id,
            start_canary(s, fault="transient", fault_times=1).id,  # a retry, then done
            start_canary(s, fault="permanent").id,  # parked
        ]
    obmen_app.send_task("ops.canary.run", kwargs={"id": "not a row id"})  # a dead letter
    relay()
    port = free_port()
    worker = start_worker(env={"OBMEN_WORKER_METRICS_PORT": str(port)}, queues="ops", concurrency=2)
    ready_file = worker.ready_file
    assert ready_file is not None
    try:
        task = (("task", "ops.canary.run"),)

        def counted() -> dict[tuple[str, tuple[tuple[str, str], ...]], float] | None:
            samples = _scrape(f"http://127.0.0.1:{port}/metrics")
            done = samples.get(("obmen_task_succeeded_total", task), 0) + samples.get(
                ("obmen_task_retried_total", task), 0
            )
            return samples if done >= 5 else None

        samples = wait_for(counted, timeout=30, what="five runs of ops.canary.run counted")
        assert samples[("obmen_task_started_total", task)] == 5
        assert samples[("obmen_task_succeeded_total", task)] == 4  # done, done, parked, rejected
        assert samples[("obmen_task_retried_total", task)] == 1
        assert samples[("obmen_task_parked_total", task)] == 1
        assert samples[("obmen_task_rejected_total", task)] == 1
        assert samples.get(("obmen_task_failed_total", task), 0) == 0
        assert samples[("obmen_task_runtime_seconds_count", task)] == 5
        waited = samples[("obmen_task_queue_wait_seconds_count", (("queue", "ops"), *task))]
        assert waited == 5  # every message came from an obmen publisher, the retry included
        with session_scope() as s:
            statuses = sorted((s.get(Canary, cid) or Canary()).status for cid in canaries)
            assert statuses == ["done", "done", "pending"]
            assert s.query(DeadLetter).count() == 1

        # The ready file is touched at every heartbeat of the main loop, and probes fresh.
        first = ready_file.stat().st_mtime
        wait_for(lambda: ready_file.stat().st_mtime > first, timeout=10, what="a heartbeat")
        probed = obmen("healthcheck", "--ready-file", str(ready_file))
        assert (probed.returncode, probed.stdout.strip()) == (0, "healthy"), probed.stderr
    finally:
        worker.stop()
    # A stopped worker removes it: the probe says so.
    assert (
        file_is_fresh(str(ready_file), 30)
        == f"{ready_file} does not exist (the worker is not ready yet, or has stopped)"
    )


def _promtool() -> str:
    binary = promtool_binary()
    if binary is None:
        pytest.fail(
            f"promtool is missing: `python -m tests.services` installs Debian's {PROMETHEUS_PACKAGE} "
            "as root (make test does), or `apt-get install prometheus`"
        )
    return binary


def test_alert_rules_pass_promtool_and_their_unit_tests() -> None:
    promtool = _promtool()
    checked = subprocess.run(
        [promtool, "check", "rules", "alerts.yml"],
        cwd=PROMETHEUS,
        capture_output=True,
        text=True,
        check=False,
    )
    assert checked.returncode == 0, checked.stdout + checked.stderr
    tested = subprocess.run(
        [promtool, "test", "rules", "alerts_test.yml"],
        cwd=PROMETHEUS,
        capture_output=True,
        text=True,
        check=False,
    )
    assert tested.returncode == 0, tested.stdout + tested.stderr


def _exported() -> set[str]:
    """The names of every series obmen exports: register gauges and the workers' task families."""
    names = {gauge.name for gauge in GAUGES}
    for family in TaskMetrics().families():
        for described in family.describe():
            if described.type == "counter":
                names.add(described.name + "_total")
            elif described.type == "histogram":
                names |= {described.name + suffix for suffix in ("_bucket", "_sum", "_count")}
    return names


def _metric_names(expression: str) -> set[str]:
    without_strings = re.sub(r'"[^"]*"', "", expression)
    return set(re.findall(r"\b(obmen_[a-z0-9_]+|up)\b", without_strings))


def _dashboard_expressions() -> list[str]:
    dashboard = json.loads(DASHBOARD.read_text())
    return [target["expr"] for panel in dashboard["panels"] for target in panel.get("targets", [])]


def _alert_expressions() -> dict[str, str]:
    rules = yaml.safe_load((PROMETHEUS / "alerts.yml").read_text())
    return {rule["alert"]: rule["expr"] for group in rules["groups"] for rule in group["rules"]}


def test_every_expression_names_a_metric_obmen_exports() -> None:
    exported = _exported() | PROMETHEUS_OWN
    expressions = _dashboard_expressions() + list(_alert_expressions().values())
    assert len(expressions) > 20
    unknown = {
        (expression, name)
        for expression in expressions
        for name in _metric_names(expression)
        if name not in exported
    }
    assert unknown == set()
    assert all(_metric_names(expression) for expression in expressions)


def test_every_alert_is_explained_in_operations_md() -> None:
    text = (ROOT / "docs/operations.md").read_text()
    missing = [name for name in _alert_expressions() if f"#### {name}" not in text]
    assert missing == []
