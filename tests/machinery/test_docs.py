"""README, docs/ and docker-compose.yml stay true to the code."""

from __future__ import annotations

import re
from pathlib import Path

import yaml

import models
from config.settings import Settings
from workers.cli import COMMANDS

ROOT = Path(__file__).resolve().parents[2]


def test_every_setting_is_documented() -> None:
    text = (ROOT / "docs/configuration.md").read_text()
    missing = [
        f"OBMEN_{name.upper()}" for name in Settings.model_fields if f"`OBMEN_{name.upper()}`" not in text
    ]
    assert missing == []


def test_every_task_is_documented(obmen_app) -> None:
    text = (ROOT / "docs/tasks.md").read_text()
    # "test." tasks are declared by tests to exercise the decorators; they are not the product's.
    names = sorted(n for n in obmen_app.tasks if not n.startswith(("celery.", "test.")))
    assert [n for n in names if f"`{n}`" not in text] == []


def test_every_register_is_documented() -> None:
    text = (ROOT / "docs/registers.md").read_text()
    assert [t.name for t in models.metadata.sorted_tables if f"`{t.name}`" not in text] == []


def test_compose_runs_the_obmen_commands() -> None:
    compose = yaml.safe_load((ROOT / "docker-compose.yml").read_text())
    services = compose["services"]
    for name, service in services.items():
        if service.get("image") != "obmen:latest":  # Redis, Postgres, Prometheus, Grafana
            continue
        command = service.get("command")
        assert command and command[0] == "obmen", name
        assert command[1] in COMMANDS, (name, command)
    assert [n for n, s in services.items() if s.get("command", [None, None])[:2] == ["obmen", "beat"]] == [
        "beat"
    ]
    redis_cmd = " ".join(services["redis"]["command"])
    assert "--appendonly yes" in redis_cmd and "--maxmemory-policy noeviction" in redis_cmd
    assert "OBMEN_FLOWER_BASIC_AUTH" in compose["x-obmen"]["environment"]


def test_readme_shows_the_two_commands() -> None:
    text = (ROOT / "README.md").read_text()
    assert "make demo" in text and "make test" in text


def test_every_path_the_docs_name_exists() -> None:
    """A file or folder named in backticks in README.md or docs/ is there (moves update the docs)."""
    pattern = re.compile(
        r"`((?:config|models|integrations|tasks|workers|sandbox|bench|tests|docs)/[\w/.-]*)`"
    )
    named = {
        (doc.name, path)
        for doc in [ROOT / "README.md", *sorted((ROOT / "docs").glob("*.md"))]
        for path in pattern.findall(doc.read_text())
    }
    assert named, "the pattern finds nothing: the test would pass vacuously"
    assert sorted((doc, path) for doc, path in named if not (ROOT / path.rstrip("/")).exists()) == []


def test_tasks_holds_one_package_per_flow_with_the_same_roles() -> None:
    """No flat module in tasks/; every flow package names its modules by the roles in architecture.md."""
    tasks = ROOT / "tasks"
    assert sorted(p.name for p in tasks.glob("*.py")) == ["__init__.py"]
    roles = {"__init__.py", "chain.py", "entries.py", "steps.py", "jobs.py", "queries.py", "clients.py"}
    text = (ROOT / "docs/architecture.md").read_text()
    assert all(f"`{role}`" in text for role in roles - {"__init__.py"})
    flows = sorted(p for p in tasks.iterdir() if p.is_dir() and p.name not in ("machinery", "__pycache__"))
    assert {"mail", "sep", "payments", "acts"} <= {flow.name for flow in flows}
    for flow in flows:
        declares_tasks = any(
            re.search(r"^@(step|entry|shared_task)\(", module.read_text(), re.M)
            for module in flow.glob("*.py")
        )
        if declares_tasks:  # a flow's tasks are named in its chain and declared in its role modules
            modules = {p.name for p in flow.glob("*.py")}
            assert {"__init__.py", "chain.py", "steps.py"} <= modules, flow.name
