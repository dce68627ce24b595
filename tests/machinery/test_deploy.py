"""docker-compose.yml, the image and the installs: valid, probed, pinned — read as files, since no
Docker engine runs here. The probes themselves run for real."""

from __future__ import annotations

import json
import re
import tomllib
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import jsonschema
import pytest
import redis
import yaml

from config.celery import BEAT_LOCK_KEY, celery_config
from config.settings import Settings
from tests.harness.processes import obmen
from workers.cli.processes import healthcheck

ROOT = Path(__file__).resolve().parents[2]
COMPOSE: dict[str, Any] = yaml.safe_load((ROOT / "docker-compose.yml").read_text())
SERVICES: dict[str, dict[str, Any]] = COMPOSE["services"]
OBMEN_IMAGE = "obmen:latest"


@pytest.fixture(autouse=True)
def clean_stores() -> Iterator[None]:
    """These tests write no register: only the broker is emptied (the beat probe reads its lock)."""
    from config.settings import get_settings

    redis.Redis.from_url(get_settings().broker_url).flushdb()
    yield


def _validator() -> jsonschema.Draft7Validator:
    schema = json.loads((ROOT / "tests/data/compose-spec.json").read_text())
    return jsonschema.Draft7Validator(schema)


def test_the_compose_file_follows_the_compose_schema() -> None:
    validator = _validator()
    assert [error.message for error in validator.iter_errors(COMPOSE)] == []
    # The schema is strict enough to catch a slip: a misspelt key, a grace period that is no duration.
    slipped = yaml.safe_load((ROOT / "docker-compose.yml").read_text())
    slipped["services"]["beat"]["healthchek"] = slipped["services"]["beat"].pop("healthcheck")
    slipped["services"]["worker-ops"]["stop_grace_period"] = 45
    assert len(list(validator.iter_errors(slipped))) == 2


def _seconds(duration: str) -> float:
    units = {"h": 3600, "m": 60, "s": 1, "ms": 0.001}
    parts = re.findall(r"(\d+(?:\.\d+)?)(ms|h|m|s)", duration)
    assert parts and "".join(n + u for n, u in parts) == duration, duration
    return sum(float(n) * units[u] for n, u in parts)


def test_every_long_running_service_has_a_healthcheck_obmen_can_run() -> None:
    for name, service in SERVICES.items():
        check = service.get("healthcheck") or {}
        if service.get("restart") == "no":  # the one-shot migration: nothing to probe
            assert check == {"disable": True} and name == "migrate"
            continue
        assert check.get("test"), name
        if service.get("image") == OBMEN_IMAGE:
            test = check["test"]
            assert test[:3] == ["CMD", "obmen", "healthcheck"], name
            healthcheck.make_context("healthcheck", list(test[3:]))  # options the command takes


def _environment(service: dict[str, Any]) -> dict[str, str]:
    return {key: str(value) for key, value in service["environment"].items()}


def _workers() -> dict[str, dict[str, Any]]:
    return {n: s for n, s in SERVICES.items() if s.get("command", [None, None])[:2] == ["obmen", "worker"]}


def test_workers_are_probed_by_their_ready_file_and_outlive_their_soft_shutdown() -> None:
    soft_shutdown = celery_config(Settings())["worker_soft_shutdown_timeout"]
    scraped = yaml.safe_load((ROOT / "deploy/prometheus/prometheus.yml").read_text())
    targets = {
        job["job_name"]: {t for c in job["static_configs"] for t in c["targets"]}
        for job in scraped["scrape_configs"]
    }
    workers = _workers()
    assert len(workers) >= 4
    for name, service in workers.items():
        env = _environment(service)
        assert _seconds(service["stop_grace_period"]) > soft_shutdown + 10, name
        test = service["healthcheck"]["test"]
        assert test[test.index("--ready-file") + 1] == env["OBMEN_WORKER_READY_FILE"], name
        assert f"{name}:{env['OBMEN_WORKER_METRICS_PORT']}" in targets["obmen-workers"], name
    assert targets["obmen-workers"] == {f"{n}:9808" for n in workers}
    assert targets["obmen-gateway"] == {"gateway:8000"}


def test_the_sandbox_and_monitoring_start_only_when_their_profile_is_named() -> None:
    profiles = {name: service.get("profiles") for name, service in SERVICES.items() if "profiles" in service}
    assert profiles == {"sandbox": ["sandbox"], "prometheus": ["monitoring"], "grafana": ["monitoring"]}
    # What the profile-less services need is never a profiled one.
    for name, service in SERVICES.items():
        if "profiles" not in service:
            assert not set(service.get("depends_on") or {}) & set(profiles), name


def test_no_production_url_defaults_to_an_emulator() -> None:
    env = COMPOSE["x-obmen"]["environment"]
    text = (ROOT / "docker-compose.yml").read_text()
    defaults = re.findall(r"\$\{(\w+):-([^}]*)\}", text)
    assert [(name, value) for name, value in defaults if "sandbox" in value or "8700" in value] == []
    for name in ("SEP", "SBIS", "BITRIX24_WEBHOOK", "IMAP", "SMTP"):
        assert str(env[f"OBMEN_{name}_URL"]).startswith(f"${{OBMEN_{name}_URL:?set OBMEN_{name}_URL"), name
    # The trial file sets every variable compose requires.
    required = set(re.findall(r"\$\{(\w+):\?", text))
    given = {
        line.split("=", 1)[0]
        for line in (ROOT / "deploy/sandbox.env").read_text().splitlines()
        if line and not line.startswith("#")
    }
    assert required <= given
    # Nor in the settings: no address of an external system has a default.
    urls = [name for name in Settings.model_fields if name.endswith("_url")]
    assert {"sep_url", "sbis_url", "synerdocs_url", "onec_url"} <= set(urls)
    for name in urls:
        default = Settings.model_fields[name].default
        assert default is None or name in ("database_url", "broker_url", "acts_public_url"), name


def _pinned() -> dict[str, str]:
    lines = (ROOT / "constraints.txt").read_text().splitlines()
    pins = dict(line.split("==", 1) for line in lines if line and not line.startswith("#"))
    return {re.sub(r"[-_.]+", "-", name).lower(): version for name, version in pins.items()}


def test_installs_take_the_pinned_versions() -> None:
    project = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]
    declared = [*project["dependencies"], *project["optional-dependencies"]["dev"]]
    names = {re.sub(r"[-_.]+", "-", re.split(r"[\[<>=!~ ;]", d, maxsplit=1)[0]).lower() for d in declared}
    assert sorted(names - set(_pinned())) == []
    dockerfile = (ROOT / "Dockerfile").read_text()
    assert "-c constraints.txt ." in dockerfile
    assert re.search(r"^HEALTHCHECK .*CMD \[\"obmen\", \"healthcheck\"\]", dockerfile, re.M)
    assert len(re.findall(r"^FROM ", dockerfile, re.M)) == 2
    makefile = (ROOT / "Makefile").read_text()
    assert "install --quiet -c $(CONSTRAINTS) -e '.[dev]'" in makefile
    assert re.search(r"^lock:", makefile, re.M) and "pip freeze --exclude obmen" in makefile


@pytest.fixture
def broker() -> redis.Redis:
    from config.settings import get_settings

    return redis.Redis.from_url(get_settings().broker_url)


def test_the_beat_probe_looks_for_the_lock_the_active_beat_holds(broker: redis.Redis) -> None:
    from config.settings import get_settings
    from workers.cli.probes import beat_holds_lock

    down = beat_holds_lock(get_settings().broker_url)
    assert down == f"no beat holds {BEAT_LOCK_KEY} (beat is down or stuck)"
    broker.set(BEAT_LOCK_KEY, "beat-host", ex=60)
    up = obmen("healthcheck", "--beat")
    assert (up.returncode, up.stdout.strip()) == (0, "healthy")


def test_the_default_probe_asks_the_stores_and_names_the_one_that_does_not_answer() -> None:
    from workers.cli.probes import stores_answer

    assert stores_answer(Settings()) is None
    away = stores_answer(Settings(broker_url="redis://127.0.0.1:1/0"))
    assert away is not None and away.startswith("OBMEN_BROKER_URL does not answer")
