"""Ownership change end to end, on the plain functions: SEP's letter → mail intake files the code and
asks for the application's data → a person confirms → «В собственности»."""

from __future__ import annotations

import pytest
from sqlalchemy import select

from integrations.errors import PermanentError
from models.db import session_scope
from models.sep import APPLIED, OWNED, SepApplication, SepAssetStatus, SepExchangeError, SepExchangeHistory
from models.sep_codes import SepConfirmationCode
from tests.sep.conftest import (
    EPTS,
    EPTS_UNKNOWN,
    ORG,
    add_vehicle,
    intake,
    mail_ids,
    read_letter,
    requests_of,
    run_due,
    sep,
    set_env,
    soap_requests,
    start_ownership_change,
)
from tests.sep.flows import application, call

EPTS_OTHER = "164301000077777"


def _errors() -> list[tuple[str, str | None, str | None]]:
    with session_scope() as session:
        return [
            (e.kind, e.code, e.application_number)
            for e in session.scalars(select(SepExchangeError).order_by(SepExchangeError.id))
        ]


def test_letter_code_data_confirmation_owned(sep_box, master) -> None:
    add_vehicle(sep_box)
    started = start_ownership_change(sep_box)
    number = started["application_number"]
    letter = read_letter(sep(sep_box).mailroom.letters[-1].raw)
    assert letter["subject"] == f"СЭП: заявление № {number} на смену собственника"
    assert (letter["code"], letter["epts"], letter["vin"]) == (started["code"], EPTS, started["vin"])

    intake()
    [mail_id] = mail_ids()
    run_due()  # mail.process → sep.request_application_data → submit → poll → apply (and mail.send)
    row = application(number)
    assert (row.kind, row.status, row.our_role, row.our_status) == (
        "OwnershipChange", "Ожидает подтверждения", "NewOwner", "NotApplicable"
    )  # fmt: skip
    assert (row.asset_inventory_number, row.responsible_id, row.source) == ("OS-1", "E1", f"mail:{mail_id}")
    assert row.request_status == "Получен ответ"
    [data] = requests_of()
    assert (data.operation, data.source, data.status) == (
        "RequestApplicationData",
        f"mail:{mail_id}",
        APPLIED,
    )
    # Auto-confirmation is off by default: the application waits for a person. Asking for its data
    # again so soon returns the answer just applied.
    assert call("sep.request_application_data", application_number=number, source="ops")["created"] is False

    assert call("sep.confirm_ownership_change", application_number=number)["created"] is True
    assert call("sep.confirm_ownership_change", application_number=number)["created"] is False  # in flight
    run_due()
    row = application(number)
    assert (row.status, row.our_status, row.last_error) == ("Исполнен", "Confirmed", None)
    with session_scope() as session:
        [status] = session.scalars(select(SepAssetStatus)).all()
        assert (status.asset_inventory_number, status.epts, status.status) == ("OS-1", EPTS, OWNED)
        [code] = session.scalars(select(SepConfirmationCode)).all()
        assert (code.code, code.source_message_id) == (started["code"], mail_id) and code.used_at is not None
        history = session.scalars(select(SepExchangeHistory).order_by(SepExchangeHistory.id)).all()
        assert [h.request_status for h in history] == ["Получен номер очереди", "Получен ответ"] * 2
        assert all(h.exchange_log_id is not None for h in history)
    assert _errors() == []
    assert soap_requests(sep_box) == [
        "RequestApplicationData", "GetQueueResult", "ConfirmOwnershipChange", "GetQueueResult"
    ]  # fmt: skip
    assert sep(sep_box).world.vehicles[EPTS].owner_inn == ORG
    assert {r.status for r in requests_of()} == {APPLIED}


def test_a_wrong_code_is_refused_and_recorded_then_the_letters_code_works(sep_box, master) -> None:
    add_vehicle(sep_box)
    started = start_ownership_change(sep_box)
    number = started["application_number"]
    # The letter went to another mailbox: a person types the code, and types it wrong.
    call("sep.request_application_data", application_number=number, source="ops")
    run_due()
    wrong = "000000" if started["code"] != "000000" else "111111"
    call("sep.confirm_ownership_change", application_number=number, code=wrong)
    run_due()
    row = application(number)
    assert row.status == "Ожидает подтверждения" and row.our_status == "NotApplicable"
    assert row.last_error is not None and "WrongConfirmationCode" in row.last_error
    assert _errors() == [("sep", "WrongConfirmationCode", number)]
    [refused] = requests_of("ConfirmOwnershipChange")
    assert (refused.status, refused.outcome, refused.request_status) == (APPLIED, "Error", "Получен ответ")
    with session_scope() as session:
        [typed] = session.scalars(select(SepConfirmationCode)).all()
        assert typed.entered_by_hand and typed.refused_at is not None
        assert typed.refusal is not None and typed.refusal.startswith("WrongConfirmationCode")
    with pytest.raises(PermanentError, match="enter the one from the letter by hand"):
        call(
            "sep.confirm_ownership_change", application_number=number
        )  # the refused code is not offered again

    intake()  # the letter was in our mailbox after all
    run_due()
    call("sep.confirm_ownership_change", application_number=number)
    run_due()
    assert application(number).status == "Исполнен"
    with session_scope() as session:
        codes = {c.code: c for c in session.scalars(select(SepConfirmationCode))}
    assert codes[started["code"]].used_at is not None and not codes[started["code"]].entered_by_hand


def test_an_expired_code_is_refused(sep_box, master) -> None:
    add_vehicle(sep_box)
    number = start_ownership_change(sep_box, confirm_by_days=-1)["application_number"]
    intake()
    run_due()
    call("sep.confirm_ownership_change", application_number=number)
    run_due()
    assert _errors() == [("sep", "ConfirmationCodeExpired", number)]
    with session_scope() as session:
        code = session.scalars(select(SepConfirmationCode)).one()
        assert code.used_at is None and code.refusal is not None and "ConfirmationCodeExpired" in code.refusal
        assert session.scalars(select(SepAssetStatus)).all() == []


def test_confirming_without_any_code_is_a_clear_error(sep_box, master) -> None:
    with pytest.raises(PermanentError, match="enter the one from the letter by hand"):
        call("sep.confirm_ownership_change", application_number="2026-424242")
    assert requests_of() == []


def test_with_auto_confirm_a_known_asset_is_confirmed_when_its_letter_arrives(
    sep_box, master, monkeypatch
) -> None:
    set_env(monkeypatch, OBMEN_SEP_AUTO_CONFIRM="true")
    add_vehicle(sep_box)
    number = start_ownership_change(sep_box)["application_number"]
    intake()
    run_due()
    [mail_id] = mail_ids()
    assert [(r.operation, r.source, r.status) for r in requests_of()] == [
        ("RequestApplicationData", f"mail:{mail_id}", APPLIED),
        ("ConfirmOwnershipChange", "auto", APPLIED),
    ]
    assert application(number).status == "Исполнен"


def test_with_auto_confirm_an_unknown_vehicle_still_waits_for_a_person(sep_box, master, monkeypatch) -> None:
    set_env(monkeypatch, OBMEN_SEP_AUTO_CONFIRM="true")
    add_vehicle(sep_box, epts=EPTS_UNKNOWN, vin=None)
    number = start_ownership_change(sep_box, epts=EPTS_UNKNOWN)["application_number"]
    intake()
    run_due()
    row = application(number)
    assert (row.asset_inventory_number, row.responsible_id) == (None, "E2")  # the SEP-responsible
    assert [r.operation for r in requests_of()] == ["RequestApplicationData"]


def test_refresh_asks_again_even_when_fresh(sep_box, master) -> None:
    add_vehicle(sep_box)
    number = start_ownership_change(sep_box)["application_number"]
    call("sep.request_application_data", application_number=number)
    run_due()
    assert call("sep.request_application_data", application_number=number)["created"] is False
    assert call("sep.request_application_data", application_number=number, refresh=True)["created"] is True
    run_due()
    assert [r.status for r in requests_of()] == [APPLIED, APPLIED]


def test_the_periodic_request_keeps_the_applications_current(sep_box, master) -> None:
    add_vehicle(sep_box)
    add_vehicle(sep_box, epts=EPTS_OTHER, vin=None)
    first = start_ownership_change(sep_box)["application_number"]
    second = start_ownership_change(sep_box, epts=EPTS_OTHER)["application_number"]
    [answer] = call("sep.request_applications", source="beat")
    assert answer["created"] is True
    assert call("sep.request_applications", source="beat")[0]["created"] is False  # one per period at a time
    run_due()
    with session_scope() as session:
        rows = session.scalars(select(SepApplication).order_by(SepApplication.application_number)).all()
        assert [(r.application_number, r.our_status) for r in rows] == [
            (first, "NotApplicable"), (second, "NotApplicable")
        ]  # fmt: skip
