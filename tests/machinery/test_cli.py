"""The ``obmen`` command as an operator meets it: versions, lists, re-drive, the schema, failures."""

from __future__ import annotations

import json

import click
import pytest
import redis
from click.testing import CliRunner
from sqlalchemy import create_engine, select, text

from config.settings import Settings
from models.base import utcnow
from models.canary import Canary
from models.db import session_scope
from models.outbox import Outbox
from tests.harness.processes import obmen
from workers.cli import LazyGroup, cli
from workers.cli.output import DEFAULT_LIMIT, friendly

LISTS = {
    ("sep", "letters"),
    ("sep", "ownership"),
    ("sep", "lease"),
    ("sep", "lease-candidates"),
    ("sep", "queue"),
    ("sep", "errors"),
    ("sep", "lease-changes"),
    ("sep", "counterparties"),
    ("acts", "list"),
    ("acts", "company"),
    ("acts", "deals-without-acts"),
    ("edo", "incoming"),
    ("edo", "overdue"),
    ("edo", "packages"),
}
REPORTS = {("sep", "summary"), ("redrive",)}


def _leaves(group: click.Group, path: tuple[str, ...] = ()) -> dict[tuple[str, ...], click.Command]:
    ctx = click.Context(group)
    found: dict[tuple[str, ...], click.Command] = {}
    for name in group.list_commands(ctx):
        command = group.get_command(ctx, name)
        assert command is not None
        if isinstance(command, click.Group):
            found.update(_leaves(command, (*path, name)))
        else:
            found[(*path, name)] = command
    return found


def test_every_list_pages_the_same_way_and_every_list_and_report_speaks_json() -> None:
    commands = _leaves(cli)
    assert set(commands) >= LISTS | REPORTS
    for path, command in commands.items():
        options = {p.name: p for p in command.params if isinstance(p, click.Option)}
        if path in LISTS or "limit" in options:
            assert (options["limit"].default, options["offset"].default) == (DEFAULT_LIMIT, 0), path
        if path in LISTS | REPORTS:
            assert "--json" in options["as_json"].opts, path


def test_version() -> None:
    result = CliRunner().invoke(cli, ["--version"])
    assert result.exit_code == 0 and result.output.startswith("obmen ")


def _park(count: int) -> list[int]:
    with session_scope() as s:
        rows = [Canary(parked_at=utcnow(), last_error="drill: parked") for _ in range(count)]
        s.add_all(rows)
        s.flush()
        return [row.id for row in rows]


def _parked_ids() -> list[int]:
    with session_scope() as s:
        return list(s.scalars(select(Canary.id).where(Canary.parked_at.is_not(None)).order_by(Canary.id)))


def test_redrive_shows_first_and_acts_only_when_told(obmen_app) -> None:
    runner = CliRunner()
    unknown = runner.invoke(cli, ["redrive", "--register", "canary"])
    assert unknown.exit_code == 2 and "registers: " in unknown.output and "canaries" in unknown.output

    ids = _park(3)
    dry = runner.invoke(cli, ["redrive", "--register", "canaries", "--dry-run", "--json"])
    assert dry.exit_code == 0, dry.output
    assert [row["id"] for row in json.loads(dry.stdout)["parked"]] == ids
    asked = runner.invoke(cli, ["redrive", "--register", "canaries"])  # no terminal to ask on
    assert asked.exit_code == 2 and "pass --all" in asked.output
    assert "drill: parked" in asked.stdout  # what it would re-drive was shown
    assert _parked_ids() == ids

    one = runner.invoke(cli, ["redrive", "--register", "canaries", "--id", str(ids[0])])
    assert one.exit_code == 0, one.output
    assert _parked_ids() == ids[1:]
    every = runner.invoke(cli, ["redrive", "--register", "canaries", "--all"])
    assert every.exit_code == 0, every.output
    assert json.loads(every.stdout.strip().splitlines()[-1])["redriven"] == ids[1:]
    assert "re-driving canaries: 2/2" in every.stderr  # plain progress lines off a terminal
    assert _parked_ids() == []
    with session_scope() as s:
        assert s.scalar(select(Outbox.id).where(Outbox.published_at.is_(None))) is None


def test_sweep_shows_its_progress_as_plain_lines_off_a_terminal(obmen_app) -> None:
    from tasks.machinery.steps import STEPS

    swept = obmen("sweep")
    assert swept.returncode == 0, swept.stderr
    assert json.loads(swept.stdout.strip().splitlines()[-1]) == {}
    label = "sweeping the steps: "
    shown = [
        line.removeprefix(label).split("/") for line in swept.stderr.splitlines() if line.startswith(label)
    ]
    done = [int(d) for d, _ in shown]
    assert {int(t) for _, t in shown} == {len(STEPS)}
    assert done == sorted(set(done)) and done[-1] == len(STEPS) and len(done) > 1


def test_db_current_history_and_offline_sql() -> None:
    from alembic.script import ScriptDirectory

    from models.migrate import alembic_config

    head = ScriptDirectory.from_config(alembic_config()).get_current_head()
    runner = CliRunner()
    current = runner.invoke(cli, ["db", "current"])
    assert current.exit_code == 0 and f"Rev: {head} (head)" in current.output
    history = runner.invoke(cli, ["db", "history"])
    assert history.exit_code == 0 and f"{head} (head) (current)" in history.output
    sql = runner.invoke(cli, ["db", "upgrade", "--sql"])
    assert sql.exit_code == 0 and "CREATE TABLE canaries" in sql.output
    assert sql.output.rstrip().endswith("COMMIT;")
    assert "refuses" not in sql.output


def test_a_store_that_does_not_answer_is_one_line_naming_its_setting() -> None:
    env = {"OBMEN_DATABASE_URL": "postgresql://obmen:s3cret@127.0.0.1:1/obmen"}
    failed = obmen("sep", "summary", env=env)
    assert failed.returncode == 1
    [line] = failed.stderr.strip().splitlines()
    assert line.startswith("Error: the register store does not answer (OBMEN_DATABASE_URL=")
    assert "obmen:***@127.0.0.1:1" in line and "s3cret" not in line


def test_debug_shows_the_traceback_instead() -> None:
    @click.group(cls=LazyGroup)
    @click.option("--debug", is_flag=True)
    def group(debug: bool) -> None:
        pass

    @group.command()
    def ping() -> None:
        redis.Redis.from_url("redis://127.0.0.1:1/0").ping()

    runner = CliRunner()
    brief = runner.invoke(group, ["ping"])
    assert brief.exit_code == 1 and brief.output.startswith(
        "Error: the broker does not answer (OBMEN_BROKER_URL="
    )
    assert "Traceback" not in brief.output
    debug = runner.invoke(group, ["--debug", "ping"])
    assert isinstance(debug.exception, redis.ConnectionError)


def test_bad_settings_and_an_absent_broker_name_their_setting() -> None:
    with pytest.raises(Exception) as bad:
        Settings(max_attempts="many")
    assert friendly(bad.value) == (
        "OBMEN_MAX_ATTEMPTS: Input should be a valid integer, unable to parse string as an integer"
    )
    with pytest.raises(redis.ConnectionError) as away:
        redis.Redis.from_url("redis://127.0.0.1:1/0").ping()
    assert (friendly(away.value) or "").startswith("the broker does not answer (OBMEN_BROKER_URL=redis://")
    with pytest.raises(Exception) as closed:
        create_engine("postgresql+psycopg://u@127.0.0.1:1/x").connect().execute(text("SELECT 1"))
    assert (friendly(closed.value) or "").startswith(
        "the register store does not answer (OBMEN_DATABASE_URL="
    )


def test_option_values_are_english_codes_or_the_russian_labels() -> None:
    from models.acts import ACT_STATUSES, ACT_TYPES, SENT
    from workers.cli.acts import STATUS, TYPE

    assert sorted(STATUS.labels.values()) == sorted(ACT_STATUSES)
    assert STATUS.convert("sent", None, None) == STATUS.convert(SENT, None, None) == SENT
    assert (
        TYPE.convert(ACT_TYPES["paper_ip"], None, None) == TYPE.convert("PAPER_IP", None, None) == "paper_ip"
    )
    from models.sep import LEASE_EXECUTED
    from workers.cli.sep import LEASE_STATUS

    assert (
        LEASE_STATUS.convert("executed", None, None)
        == LEASE_STATUS.convert("Исполнен", None, None)
        == LEASE_EXECUTED
    )
    refused = CliRunner().invoke(cli, ["acts", "list", "--status", "lost"])
    assert refused.exit_code == 2 and "sent (Акт направлен заявителю)" in refused.output
