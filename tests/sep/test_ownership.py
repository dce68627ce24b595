"""Ownership change end to end, on the plain functions: letter → code → data → confirmation → «В собственности»."""

from __future__ import annotations

from sqlalchemy import select

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
