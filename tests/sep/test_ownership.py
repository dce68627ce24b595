"""Ownership change end to end, on the plain functions: letter → code → data → confirmation → «В собственности»."""

from __future__ import annotations

import pytest
from sqlalchemy import select

from integrations.errors import PermanentError
from models.db import session_scope
from models.sep import OWNED, SepApplication, SepAssetStatus, SepExchangeError, SepExchangeHistory
from models.sep_codes import SepConfirmationCode
from tasks.sep.entries import confirm_ownership_change, request_application_data
from tests.sep.conftest import (
    EPTS,
    ORG,
    add_vehicle,
    intake,
    requests_of,
    run_due,
    sep,
    soap_requests,
    start_ownership_change,
)


def _ask_data(number: str, **more: object) -> dict:
    with session_scope() as session:
        args = request_application_data.args_model.model_validate({"application_number": number, **more})
        return request_application_data.plain(session, args)


def _confirm(number: str, **more: object) -> dict:
    with session_scope() as session:
        args = confirm_ownership_change.args_model.model_validate({"application_number": number, **more})
        return confirm_ownership_change.plain(session, args)


def _application(number: str) -> SepApplication:
    with session_scope() as session:
        return session.scalars(
            select(SepApplication).where(SepApplication.application_number == number)
        ).one()


def test_letter_code_data_confirmation_owned(sep_box, master) -> None:  # type: ignore[no-untyped-def]
    add_vehicle(sep_box)
    started = start_ownership_change(sep_box)
    number = started["application_number"]
    letter = intake(sep_box)
    assert letter["subject"] == f"СЭП: заявление № {number} на смену собственника"
    assert letter["code"] == started["code"]

    answer = _ask_data(number, source="mail:1000")
    assert answer["created"] is True
    assert _ask_data(number, source="mail:1000")["created"] is False  # one request while it is on its way
    run_due()
    row = _application(number)
    assert (row.kind, row.status, row.our_role, row.our_status) == (
        "OwnershipChange", "Ожидает подтверждения", "NewOwner", "NotApplicable"
    )  # fmt: skip
    assert (row.asset_inventory_number, row.responsible_id, row.source) == ("OS-1", "E1", "mail:1000")
    assert row.request_status == "Получен ответ"
    # Auto-confirmation is off by default: the application waits for a person.
    assert [r.operation for r in requests_of()] == ["RequestApplicationData"]
    assert _ask_data(number)["created"] is False  # answered a moment ago: fresh enough

    assert _confirm(number)["created"] is True
    run_due()
    row = _application(number)
    assert (row.status, row.our_status, row.last_error) == ("Исполнен", "Confirmed", None)
    with session_scope() as session:
        [status] = session.scalars(select(SepAssetStatus)).all()
        assert (status.asset_inventory_number, status.epts, status.status) == ("OS-1", EPTS, OWNED)
        [code] = session.scalars(select(SepConfirmationCode)).all()
        assert code.used_at is not None
        history = session.scalars(select(SepExchangeHistory).order_by(SepExchangeHistory.id)).all()
        assert {h.request_status for h in history} == {"Получен номер очереди", "Получен ответ"}
        assert session.scalars(select(SepExchangeError)).all() == []
    assert soap_requests(sep_box) == [
        "RequestApplicationData", "GetQueueResult", "ConfirmOwnershipChange", "GetQueueResult"
    ]  # fmt: skip
    assert sep(sep_box).world.vehicles[EPTS].owner_inn == ORG
    assert {r.status for r in requests_of()} == {"applied"}


def _errors() -> list[tuple[str, str | None, str | None]]:
    with session_scope() as session:
        return [
            (e.kind, e.code, e.application_number)
            for e in session.scalars(select(SepExchangeError).order_by(SepExchangeError.id))
        ]


def test_a_wrong_code_is_refused_and_recorded_then_the_right_one_works(sep_box, master) -> None:  # type: ignore[no-untyped-def]
    add_vehicle(sep_box)
    started = start_ownership_change(sep_box)
    number = started["application_number"]
    _ask_data(number)
    run_due()
    # The letter went to another mailbox: a person types the code, and types it wrong.
    _confirm(number, code="000000" if started["code"] != "000000" else "111111")
    run_due()
    row = _application(number)
    assert row.status == "Ожидает подтверждения" and row.our_status == "NotApplicable"
    assert row.last_error is not None and "WrongConfirmationCode" in row.last_error
    assert _errors() == [("sep", "WrongConfirmationCode", number)]
    [refused] = requests_of("ConfirmOwnershipChange")
    assert (refused.status, refused.outcome, refused.request_status) == ("applied", "Error", "Получен ответ")

    with session_scope() as session:
        [wrong] = session.scalars(select(SepConfirmationCode)).all()
        assert wrong.entered_by_hand and wrong.refused_at is not None
        assert wrong.refusal is not None and wrong.refusal.startswith("WrongConfirmationCode")
    with pytest.raises(PermanentError, match="enter the one from the letter by hand"):
        _confirm(number)  # the refused code is not offered again

    intake(sep_box)  # the letter turns up after all
    _confirm(number)
    run_due()
    assert _application(number).status == "Исполнен"
    with session_scope() as session:
        codes = {c.code: c for c in session.scalars(select(SepConfirmationCode))}
    assert codes[started["code"]].used_at is not None and not codes[started["code"]].entered_by_hand


def test_an_expired_code_is_refused(sep_box, master) -> None:  # type: ignore[no-untyped-def]
    add_vehicle(sep_box)
    number = start_ownership_change(sep_box, confirm_by_days=-1)["application_number"]
    intake(sep_box)
    _confirm(number)
    run_due()
    assert _errors() == [("sep", "ConfirmationCodeExpired", number)]
    with session_scope() as session:
        assert session.scalars(select(SepConfirmationCode.used_at)).one() is None
        assert session.scalars(select(SepAssetStatus)).all() == []


def test_confirming_without_any_code_is_a_clear_error(sep_box, master) -> None:  # type: ignore[no-untyped-def]
    with pytest.raises(PermanentError, match="enter the one from the letter by hand"):
        _confirm("2026-424242")
    assert requests_of() == []


def test_with_auto_confirm_a_known_asset_is_confirmed_when_its_data_arrives(
    sep_box, master, monkeypatch
) -> None:  # type: ignore[no-untyped-def]
    from tests.sep.conftest import set_env

    set_env(monkeypatch, OBMEN_SEP_AUTO_CONFIRM="true")
    add_vehicle(sep_box)
    number = start_ownership_change(sep_box)["application_number"]
    intake(sep_box)
    _ask_data(number, source="mail:1000")
    run_due()
    assert [(r.operation, r.source, r.status) for r in requests_of()] == [
        ("RequestApplicationData", "mail:1000", "applied"),
        ("ConfirmOwnershipChange", "auto", "applied"),
    ]
    assert _application(number).status == "Исполнен"


def test_with_auto_confirm_an_unknown_vehicle_still_waits_for_a_person(sep_box, master, monkeypatch) -> None:  # type: ignore[no-untyped-def]
    from tests.sep.conftest import EPTS_UNKNOWN, set_env

    set_env(monkeypatch, OBMEN_SEP_AUTO_CONFIRM="true")
    add_vehicle(sep_box, epts=EPTS_UNKNOWN, vin=None)
    number = start_ownership_change(sep_box, epts=EPTS_UNKNOWN)["application_number"]
    intake(sep_box)
    _ask_data(number)
    run_due()
    row = _application(number)
    assert (row.asset_inventory_number, row.responsible_id) == (None, "E2")  # the SEP-responsible
    assert [r.operation for r in requests_of()] == ["RequestApplicationData"]


def test_refresh_asks_again_even_when_fresh(sep_box, master) -> None:  # type: ignore[no-untyped-def]
    add_vehicle(sep_box)
    number = start_ownership_change(sep_box)["application_number"]
    _ask_data(number)
    run_due()
    assert _ask_data(number)["created"] is False
    assert _ask_data(number, refresh=True)["created"] is True
    run_due()
    assert [r.status for r in requests_of()] == ["applied", "applied"]


def test_the_periodic_request_keeps_the_applications_current(sep_box, master) -> None:  # type: ignore[no-untyped-def]
    from tasks.sep.entries import request_applications

    add_vehicle(sep_box)
    add_vehicle(sep_box, epts=EPTS_UNKNOWN_2, vin=None)
    first = start_ownership_change(sep_box)["application_number"]
    second = start_ownership_change(sep_box, epts=EPTS_UNKNOWN_2)["application_number"]
    with session_scope() as session:
        args = request_applications.args_model.model_validate({"source": "beat"})
        [answer] = request_applications.plain(session, args)
    assert answer["created"] is True
    run_due()
    with session_scope() as session:
        rows = session.scalars(select(SepApplication).order_by(SepApplication.application_number)).all()
        assert [(r.application_number, r.our_status) for r in rows] == [
            (first, "NotApplicable"), (second, "NotApplicable")
        ]  # fmt: skip


EPTS_UNKNOWN_2 = "164301000077777"
