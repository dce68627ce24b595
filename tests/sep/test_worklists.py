"""The workstation's work lists over the gateway (JSON, read scope) and as ``obmen sep`` tables."""

from __future__ import annotations

import json
from collections.abc import Iterator

import httpx
import pytest
from click.testing import CliRunner

from models.sep import QUEUED
from sandbox.server import Sandbox
from tasks.machinery.outbox import set_dispatch_mode
from tests.harness.gateway import GatewayThread
from tests.harness.processes import obmen
from tests.sep.conftest import (
    EPTS,
    EPTS_UNKNOWN,
    VIN,
    add_vehicle,
    intake,
    requests_of,
    run_due,
    sep,
    start_ownership_change,
)
from tests.sep.flows import call
from workers.cli import cli

READ = {"Authorization": "Bearer test-read-token"}


@pytest.fixture
def gateway(sep_box: Sandbox) -> Iterator[GatewayThread]:
    with GatewayThread() as gw:
        set_dispatch_mode("off")  # the gateway publishes in the background; here the test runs the steps
        yield gw


def _scene(box: Sandbox) -> tuple[str, str]:
    """Two ownership changes to us: one of a known asset waiting for confirmation, one refused."""
    add_vehicle(box)
    add_vehicle(box, epts=EPTS_UNKNOWN, vin=None)
    known = start_ownership_change(box)["application_number"]
    other = start_ownership_change(box, epts=EPTS_UNKNOWN)["application_number"]
    intake()
    run_due()
    sep(box).knobs.update({"extra": {"never_ready": True}})
    call("sep.confirm_ownership_change", application_number=other, code="999999")
    run_due(until=lambda: requests_of("ConfirmOwnershipChange")[0].status == QUEUED)
    return known, other


def test_work_lists_over_the_gateway(sep_box: Sandbox, master: None, gateway: GatewayThread) -> None:
    known, other = _scene(sep_box)
    assert httpx.get(gateway.url + "/sep").status_code == 401
    counts = httpx.get(gateway.url + "/sep", headers=READ).json()
    assert counts == {"letters": 2, "ownership_changes": 2, "lease_applications": 0, "queue": 1, "errors": 0}

    changes = httpx.get(gateway.url + "/sep/ownership-changes", headers=READ).json()
    assert changes["count"] == 2
    by_number = {i["application_number"]: i for i in changes["items"]}
    assert by_number[known]["asset"] == "Scania R450" and by_number[known]["responsible"] == "Иванова Анна"
    assert by_number[known]["code"] is not None and by_number[known]["our_status"] == "NotApplicable"
    assert by_number[other]["responsible"] == "Петров Пётр"  # the SEP-responsible: no asset matched
    for query, expected in [
        ({"responsible": "E1"}, [known]),
        ({"asset": "OS-1"}, [known]),
        ({"vin": VIN.lower()}, [known]),
        ({"epts": EPTS_UNKNOWN}, [other]),
        ({"epts": EPTS}, [known]),
    ]:
        found = httpx.get(gateway.url + "/sep/ownership-changes", params=query, headers=READ).json()
        assert [i["application_number"] for i in found["items"]] == expected, query

    [open_request] = httpx.get(gateway.url + "/sep/queue", headers=READ).json()["items"]
    assert (open_request["operation"], open_request["status"], open_request["request_status"]) == (
        "ConfirmOwnershipChange", "queued", "Получен номер очереди"
    )  # fmt: skip
    letters = httpx.get(gateway.url + "/sep/letters", headers=READ).json()
    assert {i["application_number"] for i in letters["items"]} == {known, other}
    candidates = httpx.get(gateway.url + "/sep/lease-candidates", headers=READ).json()
    assert candidates["items"][0]["lease_contract"] == "ДЛ-1/1" and candidates["items"][0]["ready"] is False


def test_work_lists_as_tables_and_actions_from_the_command_line(sep_box: Sandbox, master: None) -> None:
    add_vehicle(sep_box)
    number = start_ownership_change(sep_box)["application_number"]
    intake()
    refreshed = obmen("sep", "refresh", number, env=sep_box.client_settings())  # the real command, once
    assert refreshed.returncode == 0, refreshed.stderr
    assert json.loads(refreshed.stdout.strip().splitlines()[-1])["created"] is True

    runner = CliRunner()
    queue = runner.invoke(cli, ["sep", "queue"])
    assert queue.exit_code == 0, queue.output
    assert queue.output.startswith("Очередь (open queue numbers): 1\n")
    assert "RequestApplicationData" in queue.output and "pending" in queue.output
    summary = runner.invoke(cli, ["sep", "summary"]).output.splitlines()
    assert summary[0].split() == ["letters", "ownership_changes", "lease_applications", "queue", "errors"]
    assert summary[2].split() == ["1", "0", "0", "1", "0"]
    counts = json.loads(runner.invoke(cli, ["sep", "summary", "--json"]).output)
    assert counts == {"letters": 1, "ownership_changes": 0, "lease_applications": 0, "queue": 1, "errors": 0}
    assert json.loads(runner.invoke(cli, ["sep", "queue", "--json", "--offset", "1"]).output)["items"] == []
    refused = runner.invoke(cli, ["sep", "confirm-lease", "2026-777777"])
    assert refused.exit_code != 0 and "no lease application of ours has SEP number" in refused.output
    listed = json.loads(runner.invoke(cli, ["sep", "letters", "--json"]).output)
    [unread] = listed["items"]  # stored by mail intake, not yet read
    assert unread["status"] == "new" and number in unread["subject"]
