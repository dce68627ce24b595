"""The SEP actions over HTTP (write scope): the same entries as ``obmen sep``, through the real gateway,
with the SEP emulator answering: ownership change and lease end to end, each answer a 202 with its
business key, a repeat answered with the same request, refusals as problem documents."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import httpx
import pytest

from models.sep import APPLIED
from sandbox.server import Sandbox
from tasks.machinery.outbox import set_dispatch_mode
from tests.harness.gateway import GatewayThread
from tests.sep.conftest import (
    EPTS,
    ORG,
    add_vehicle,
    intake,
    read_letter,
    requests_of,
    run_due,
    sep,
    start_ownership_change,
)
from tests.sep.flows import EPTS_2, NEW_LESSEE, application, import_forms, lease, lease_vehicles

WRITE = {"Authorization": "Bearer test-write-token"}
READ = {"Authorization": "Bearer test-read-token"}


@pytest.fixture
def gw(sep_box: Sandbox) -> Iterator[GatewayThread]:
    with GatewayThread() as gateway:
        # The steps the answers start are run by run_due() in this process, not by a worker.
        set_dispatch_mode("off")
        yield gateway


def post(
    gw: GatewayThread, path: str, body: dict[str, Any], headers: dict[str, str] = WRITE
) -> httpx.Response:
    return httpx.post(gw.url + "/sep" + path, json=body, headers=headers, timeout=30)


def accepted(response: httpx.Response) -> dict[str, Any]:
    assert response.status_code == 202, response.text
    answer: dict[str, Any] = response.json()
    return answer


def test_ownership_change_and_lease_over_http(gw: GatewayThread, sep_box: Sandbox, master: None) -> None:
    add_vehicle(sep_box)
    number = str(start_ownership_change(sep_box)["application_number"])
    intake()  # the letter's code is filed; mail intake asks for the application's data itself
    run_due()

    data = accepted(post(gw, "/application-data-requests", {"application_number": number}))
    assert (data["created"], data["business_key"]) == (False, f"application-data:{number}")  # fresh
    refreshed = accepted(
        post(gw, "/application-data-requests", {"application_number": number, "refresh": True})
    )
    assert refreshed["created"] is True
    run_due()

    body = {"application_number": number, "source": "console"}
    first = accepted(post(gw, "/ownership-confirmations", body))
    again = accepted(post(gw, "/ownership-confirmations", body))
    assert first["business_key"] == f"confirm-ownership:{number}" and first["created"] is True
    assert (again["request_id"], again["created"]) == (first["request_id"], False)
    run_due()
    assert application(number).status == "Исполнен"
    assert requests_of("ConfirmOwnershipChange")[-1].source == "console"

    submitted = accepted(post(gw, "/lease-submissions", {"lease_contract": "ДЛ-1/1"}))
    assert (submitted["business_key"], submitted["created"]) == ("lease:ДЛ-1/1", True)
    assert submitted["lease_application_id"] == lease().id
    run_due()
    lease_number = lease().application_number
    assert lease_number is not None
    code = read_letter(sep(sep_box).mailroom.letters[-1].raw)["code"]
    confirmed = accepted(post(gw, "/lease-confirmations", {"application_number": lease_number, "code": code}))
    assert confirmed["business_key"] == f"confirm-lease:{lease_number}"
    run_due()
    assert (lease().status, lease().lessee_status) == ("Исполнен", "Confirmed")


def test_applications_of_a_period(gw: GatewayThread, sep_box: Sandbox, master: None) -> None:
    body = {"organization_inn": ORG, "period_from": "2026-11-01", "period_to": "2026-11-30"}
    [started] = accepted(post(gw, "/application-requests", body))["requests"]
    assert started == {
        "request_id": started["request_id"],
        "business_key": f"applications:{ORG}:2026-11-01:2026-11-30",
        "status": "pending",
        "created": True,
        "lease_application_id": None,
    }
    [again] = accepted(post(gw, "/application-requests", body))["requests"]
    assert (again["request_id"], again["created"]) == (started["request_id"], False)
    run_due()
    assert [r.status for r in requests_of("RequestApplications")] == [APPLIED]


def test_refusals_are_problems_and_start_nothing(gw: GatewayThread, sep_box: Sandbox, master: None) -> None:
    read_only = post(gw, "/ownership-confirmations", {"application_number": "2026-1"}, headers=READ)
    assert read_only.status_code == 403
    assert read_only.headers["content-type"] == "application/problem+json"
    assert read_only.json()["type"] == "urn:obmen:problem:forbidden"

    backwards = post(gw, "/application-requests", {"period_from": "2026-12-01", "period_to": "2026-11-01"})
    assert backwards.status_code == 422
    assert "period_from is after period_to" in backwards.json()["errors"][0]["message"]
    bad = post(gw, "/ownership-confirmations", {"application_number": "2026 1", "code": "12", "x": 1})
    assert bad.status_code == 422
    assert sorted(e["field"] for e in bad.json()["errors"]) == ["code", "x"]

    no_code = post(gw, "/ownership-confirmations", {"application_number": "2026-424242"})
    assert no_code.status_code == 409
    assert no_code.json()["type"] == "urn:obmen:problem:conflict"
    assert "enter the one from the letter by hand" in no_code.json()["detail"]
    not_owned = post(gw, "/lease-submissions", {"lease_contract": "ДЛ-1/1"})
    assert not_owned.status_code == 409 and "can be leased" in not_owned.json()["detail"]
    assert requests_of() == []


def test_counterparties_lease_vehicles_and_lease_changes_over_http(
    gw: GatewayThread, sep_box: Sandbox, master: None
) -> None:
    import_forms()
    registered = accepted(post(gw, "/counterparty-registrations", {"inn": NEW_LESSEE}))
    assert (registered["business_key"], registered["counterparty_status"]) == (
        f"counterparty-find:{NEW_LESSEE}", "Проверяется"
    )  # fmt: skip
    run_due()
    listed = httpx.get(gw.url + "/sep/counterparties", headers=READ).json()
    assert [(c["inn"], c["status"]) for c in listed["items"]] == [(NEW_LESSEE, "Зарегистрирован")]

    edited = post(gw, "/lease-vehicles", {"lease_contract": "ДЛ-1/1", "add": [EPTS_2]})
    assert edited.status_code == 200 and edited.json()["epts"] == [EPTS, EPTS_2]
    assert edited.json()["status"] == "Черновик"

    assert post(gw, "/lease-vehicles", {"lease_contract": "ДЛ-1/1", "remove": [EPTS_2]}).json()["epts"] == [
        EPTS
    ]
    lease_vehicles(sep_box)
    after = post(gw, "/lease-vehicles", {"lease_contract": "ДЛ-1/1", "add": [EPTS_2]})
    assert after.status_code == 409 and "only before it is submitted" in after.json()["detail"]

    body = {"change_number": "Д-1", "kind": "LesseeChange", "epts": [EPTS], "new_lessee_inn": NEW_LESSEE}
    drafted = accepted(post(gw, "/lease-changes", {**body, "draft": True}))
    assert (drafted["request_id"], drafted["lease_change_status"]) == (None, "Черновик")
    submitted = accepted(post(gw, "/lease-changes", body))
    assert (submitted["business_key"], submitted["lease_change_status"]) == (
        "lease-change:Д-1",
        "Отправляется",
    )
    run_due()
    [item] = httpx.get(gw.url + "/sep/lease-changes", headers=READ).json()["items"]
    assert item["status"] == "Зарегистрировано"
    codes = sep(sep_box).world.applications[item["application_number"]].codes
    confirmed = post(
        gw,
        "/lease-change-confirmations",
        {"change_number": "Д-1", "lessee_code": codes["Lessee"], "new_lessee_code": codes["NewLessee"]},
    )
    assert accepted(confirmed)["business_key"] == f"confirm-lease-change:{item['application_number']}"
    run_due()
    [item] = httpx.get(gw.url + "/sep/lease-changes", headers=READ).json()["items"]
    assert (item["status"], item["new_lessee_inn"]) == ("Исполнен", NEW_LESSEE)


def test_bad_input_to_the_new_routes_is_a_problem_and_changes_nothing(
    gw: GatewayThread, sep_box: Sandbox, master: None
) -> None:
    import_forms()
    assert post(gw, "/counterparty-registrations", {"inn": NEW_LESSEE}, headers=READ).status_code == 403
    bad_inn = post(gw, "/counterparty-registrations", {"inn": "7704211202"})
    assert bad_inn.status_code == 422 and "checksum" in bad_inn.json()["errors"][0]["message"]
    no_form = post(gw, "/counterparty-registrations", {"inn": "500100732259"})
    assert no_form.status_code == 409 and "no ogrn and no address in master data" in no_form.json()["detail"]
    bad_kind = post(gw, "/lease-changes", {"change_number": "Д-1", "kind": "Sale", "epts": [EPTS]})
    assert bad_kind.status_code == 422 and bad_kind.json()["errors"][0]["field"] == "kind"
    too_long = post(gw, "/lease-changes", {"change_number": "Д-1", "kind": "LeaseEnd", "epts": [EPTS + "0"]})
    assert too_long.status_code == 422
    not_leased = post(gw, "/lease-changes", {"change_number": "Д-1", "kind": "LeaseEnd", "epts": [EPTS]})
    assert not_leased.status_code == 409 and "only vehicles «В лизинге»" in not_leased.json()["detail"]
    unknown = post(gw, "/lease-change-confirmations", {"change_number": "Д-1", "lessee_code": "123456"})
    assert unknown.status_code == 409 and "no lease change № Д-1" in unknown.json()["detail"]
    bad_code = post(gw, "/lease-change-confirmations", {"change_number": "Д-1", "lessee_code": "12"})
    assert bad_code.status_code == 422
    bad_vehicle = post(gw, "/lease-vehicles", {"lease_contract": "ДЛ-1/1", "add": ["164301000077777"]})
    assert bad_vehicle.status_code == 409 and "no asset with ЭПТС" in bad_vehicle.json()["detail"]
    assert requests_of() == [] and httpx.get(gw.url + "/sep/lease-changes", headers=READ).json()["count"] == 0
    assert httpx.get(gw.url + "/sep/counterparties", headers=READ).json()["count"] == 0
