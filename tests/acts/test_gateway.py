"""The acts API over real HTTP, and ``obmen acts …`` over the same register."""

from __future__ import annotations

import json
from collections.abc import Iterator
from typing import Any

import httpx
import pytest
from sqlalchemy import select

from models.acts import ActDeadline, ActFormRequest
from models.db import session_scope
from tasks.machinery.outbox import set_dispatch_mode
from tests.acts.support import UL_INN, UL_KPP
from tests.harness.gateway import GatewayThread
from tests.harness.processes import obmen

WRITE = {"Authorization": "Bearer test-write-token"}
READ = {"Authorization": "Bearer test-read-token"}
PDF = ("act.pdf", b"%PDF-1.4 act", "application/pdf")
SCAN = ("scan.pdf", b"%PDF-1.4 scan", "application/pdf")


@pytest.fixture
def gw(obmen_app: Any) -> Iterator[GatewayThread]:
    with GatewayThread() as gateway:
        set_dispatch_mode("off")
        yield gateway
    set_dispatch_mode("inline")


def post_act(gw: GatewayThread, headers: dict[str, str] = WRITE, **fields: Any) -> httpx.Response:
    data: dict[str, Any] = {
        "number": "А-1",
        "deal_id": "101",
        "company_id": "55",
        "act_type": "paper_ul",
        "counterparty_inn": UL_INN,
        "counterparty_kpp": UL_KPP,
        "products": ["Экспертиза", "Перевод"],
        "amount": "12500.50",
    }
    data.update(fields)
    return httpx.post(gw.url + "/acts", data=data, files={"file": PDF}, headers=headers)


def status(gw: GatewayThread, act_id: int, value: str, scan: bool = False) -> httpx.Response:
    return httpx.post(
        f"{gw.url}/acts/{act_id}/status",
        data={"status": value},
        files={"file": SCAN} if scan else None,
        headers=WRITE,
    )


def test_acts_are_created_with_their_file_and_read_back(gw: GatewayThread) -> None:
    created = post_act(gw)
    assert created.status_code == 201, created.text
    body = created.json()
    assert (body["number"], body["status"], body["act_type_name"]) == (
        "А-1",
        "Создан",
        "Бумажный акт для юридических лиц",
    )
    assert body["products"] == ["Экспертиза", "Перевод"] and body["amount"] == "12500.50"
    [file] = body["files"]
    assert (file["kind"], file["name"], file["size"]) == ("act", "act.pdf", len(PDF[1]))
    download = httpx.get(f"{gw.url}/acts/{body['id']}/files/{file['id']}", headers=READ)
    assert download.content == PDF[1] and download.headers["content-type"] == "application/pdf"

    again = post_act(gw)  # a robot repeating its call
    assert again.status_code == 200 and again.json()["id"] == body["id"]
    conflict = post_act(gw, deal_id="202")
    assert conflict.status_code == 409 and "already belongs to deal 101" in conflict.text


@pytest.mark.parametrize(
    ("headers", "code"),
    [({}, 401), ({"Authorization": "Bearer nope"}, 401), (READ, 403), (WRITE, 201)],
)
def test_writing_takes_a_write_token(gw: GatewayThread, headers: dict[str, str], code: int) -> None:
    assert post_act(gw, headers=headers).status_code == code


def test_bad_acts_get_a_clear_error(gw: GatewayThread) -> None:
    bad = post_act(gw, counterparty_inn="7728168972", act_type="electronic_ul")
    assert bad.status_code == 422
    assert bad.headers["content-type"] == "application/problem+json"
    problem = bad.json()
    assert problem["type"] == "urn:obmen:problem:validation"
    assert [e["field"] for e in problem["errors"]] == ["counterparty_inn"]
    assert "checksum" in problem["errors"][0]["message"]
    missing_file = httpx.post(
        gw.url + "/acts", data={"number": "А-9", "deal_id": "1", "act_type": "paper_ul"}, headers=WRITE
    )
    assert missing_file.status_code == 422
    empty = httpx.post(
        gw.url + "/acts",
        data={"number": "А-9", "deal_id": "1", "act_type": "paper_ul"},
        files={"file": ("empty.pdf", b"", "application/pdf")},
        headers=WRITE,
    )
    assert empty.status_code == 422 and "is empty" in empty.text
    huge = httpx.post(
        gw.url + "/acts",
        data={"number": "А-9", "deal_id": "1", "act_type": "paper_ul"},
        files={"file": ("big.pdf", b"0" * 1_100_000, "application/pdf")},
        headers=WRITE,
    )
    assert huge.status_code == 413


def test_the_paper_steps_over_http(gw: GatewayThread) -> None:
    act_id = post_act(gw).json()["id"]
    skipped = status(gw, act_id, "Акт направлен заявителю")
    assert skipped.status_code == 409
    assert "allowed: «Подписан с нашей стороны»" in skipped.json()["detail"]
    no_scan = status(gw, act_id, "Подписан с нашей стороны")
    assert no_scan.status_code == 422 and "needs the scan" in no_scan.text
    assert (
        status(gw, act_id, "Подписан с нашей стороны", scan=True).json()["status"]
        == "Подписан с нашей стороны"
    )
    sent = status(gw, act_id, "Акт направлен заявителю").json()
    assert sent["status"] == "Акт направлен заявителю" and sent["signature_due_at"] and not sent["overdue"]
    signed = status(gw, act_id, "Акт получен и подписан", scan=True).json()
    assert signed["status"] == "Акт получен и подписан" and signed["deadline"] == "cancelled"
    assert [h["to"] for h in signed["history"]] == [
        "Создан",
        "Подписан с нашей стороны",
        "Акт направлен заявителю",
        "Акт получен и подписан",
    ]
    assert status(gw, act_id, "Непонятный").status_code == 422
    assert status(gw, 424242, "Отказ от подписания").status_code == 404


def test_lists_filters_company_acts_and_deals_without_acts(gw: GatewayThread) -> None:
    first = post_act(gw, number="А-1").json()["id"]
    post_act(gw, number="А-2", deal_id="102", company_id="56")
    post_act(
        gw,
        number="Э-3",
        deal_id="103",
        act_type="electronic_ul",
        exchange_method="edo",
        edo_id="2BE1",
        edo_operator="СБИС",
    )
    status(gw, first, "Подписан с нашей стороны", scan=True)
    status(gw, first, "Акт направлен заявителю")
    with session_scope() as s:
        deadline = s.scalars(select(ActDeadline)).one()
        deadline.due_at = deadline.due_at.replace(year=2000)  # long overdue

    everything = httpx.get(gw.url + "/acts", headers=READ).json()
    assert everything["total"] == 3 and [a["number"] for a in everything["acts"]] == ["Э-3", "А-2", "А-1"]
    by_status = httpx.get(gw.url + "/acts", params={"status": "Акт направлен заявителю"}, headers=READ).json()
    assert [a["number"] for a in by_status["acts"]] == ["А-1"]
    overdue = httpx.get(gw.url + "/acts", params={"overdue": "true"}, headers=READ).json()
    assert [a["number"] for a in overdue["acts"]] == ["А-1"] and overdue["acts"][0]["overdue"]
    electronic = httpx.get(gw.url + "/acts", params={"act_type": "electronic_ul"}, headers=READ).json()
    assert [(a["number"], a["edo_id"]) for a in electronic["acts"]] == [("Э-3", "2BE1")]
    paged = httpx.get(gw.url + "/acts", params={"limit": 1, "offset": 1}, headers=READ).json()
    assert paged["total"] == 3 and [a["number"] for a in paged["acts"]] == ["А-2"]
    assert httpx.get(gw.url + "/acts", params={"status": "nope"}, headers=READ).status_code == 422
    assert httpx.get(gw.url + "/acts").status_code == 401

    company = httpx.get(gw.url + "/companies/56/acts", headers=READ).json()
    assert [a["number"] for a in company["acts"]] == ["А-2"]

    accepted = httpx.post(gw.url + "/deals/104/form-letter", headers=WRITE)
    assert accepted.status_code == 202 and accepted.json()["form_request_id"]
    without = httpx.get(gw.url + "/deals/without-acts", headers=READ).json()
    assert [(d["deal_id"], d["form"]) for d in without["deals"]] == [(104, "to_send")]
    with session_scope() as s:
        assert s.scalars(select(ActFormRequest.requested_by)).all() == ["manager"]


def test_the_cli_lists_and_moves_acts(gw: GatewayThread, tmp_path: Any) -> None:
    act_id = post_act(gw).json()["id"]
    scan = tmp_path / "scan.pdf"
    scan.write_bytes(b"%PDF-1.4 scan")
    moved = obmen("acts", "set-status", str(act_id), "Подписан с нашей стороны", "--file", str(scan))
    assert moved.returncode == 0, moved.stderr
    assert json.loads(moved.stdout) == {"act_id": act_id, "status": "Подписан с нашей стороны"}
    illegal = obmen("acts", "set-status", str(act_id), "Акт получен и подписан")
    assert illegal.returncode != 0 and "cannot move it" in illegal.stderr
    table = obmen("acts", "list", "--status", "Подписан с нашей стороны")
    assert "1 in all" in table.stdout and "А-1" in table.stdout
    shown = json.loads(obmen("acts", "show", str(act_id)).stdout)
    assert [f["kind"] for f in shown["files"]] == ["act", "signed_by_us"]
