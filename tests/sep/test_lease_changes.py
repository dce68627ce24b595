"""Lease changes (the seed's «Развитие» 2 and 3) against the emulator: termination when the vehicle is
taken back, перенаём to a registered new lessee, end of lease for several vehicles — each submitted,
confirmed with the parties' codes, and applied to the asset statuses with their period."""

from __future__ import annotations

import pytest
from pydantic import ValidationError
from sqlalchemy import select

from integrations.errors import PermanentError
from models.db import session_scope
from models.sep import LEASED, OWNED, TRANSFERRED, SepAssetStatus, SepLeaseChange
from tasks.sep.lease_changes import current_lessee
from tests.sep.conftest import EPTS, LESSEE, ORG, run_due, sep
from tests.sep.flows import EPTS_2, NEW_LESSEE, call, import_forms, lease_vehicles, letters_to


def change(number: str) -> SepLeaseChange:
    with session_scope() as session:
        return session.scalars(select(SepLeaseChange).where(SepLeaseChange.change_number == number)).one()


def statuses(epts: str) -> list[str]:
    with session_scope() as session:
        rows = session.scalars(
            select(SepAssetStatus)
            .where(SepAssetStatus.epts == epts)
            .order_by(SepAssetStatus.period, SepAssetStatus.id)
        )
        return [r.status for r in rows]


def codes(box, number: str) -> dict[str, str]:
    return dict(sep(box).world.applications[number].codes)


def test_termination_takes_the_vehicle_back_with_the_lessees_code(sep_box, master) -> None:
    import_forms()
    lease_vehicles(sep_box)
    drafted = call(
        "sep.submit_lease_change", change_number="РС-1", kind="Termination", epts=[EPTS], draft=True
    )
    assert (drafted["request_id"], drafted["lease_change_status"]) == (None, "Черновик")
    with pytest.raises(PermanentError, match="is «Черновик»: only a registered one"):
        call("sep.confirm_lease_change", change_number="РС-1", codes={"Lessee": "123456"})
    answer = call("sep.submit_lease_change", change_number="РС-1", kind="Termination", epts=[EPTS])
    assert (answer["created"], answer["lease_change_status"]) == (True, "Отправляется")
    assert (
        call("sep.submit_lease_change", change_number="РС-1", kind="Termination", epts=[EPTS])["created"]
        is False
    )
    run_due()
    row = change("РС-1")
    assert (row.status, row.lessee_inn, row.kind) == ("Зарегистрировано", LESSEE, "Termination")
    number = row.application_number
    assert number is not None and set(codes(sep_box, number)) == {"Lessee"}

    call("sep.confirm_lease_change", change_number="РС-1", codes={"Lessee": "000000"})
    run_due()
    row = change("РС-1")
    assert row.status == "Зарегистрировано" and "WrongConfirmationCode" in (row.last_error or "")
    [failed] = [x for x in letters_to("anna@example.ru") if "ConfirmLeaseChange" in x.subject]
    assert "WrongConfirmationCode" in failed.text_body  # to the asset's responsible

    call("sep.confirm_lease_change", change_number="РС-1", codes={"Lessee": codes(sep_box, number)["Lessee"]})
    run_due()
    assert change("РС-1").status == "Исполнен"
    assert statuses(EPTS) == [OWNED, LEASED, OWNED]
    assert sep(sep_box).world.vehicles[EPTS].leased_to is None
    executed = [
        x for x in letters_to("anna@example.ru") if x.subject == f"СЭП: заявление № {number} исполнено"
    ]
    assert len(executed) == 1


def test_change_of_lessee_then_end_of_lease_for_two_vehicles(sep_box, master) -> None:
    import_forms()
    lease_vehicles(sep_box, (EPTS, EPTS_2))
    with pytest.raises(PermanentError, match="register it first"):
        call(
            "sep.submit_lease_change",
            change_number="П-1",
            kind="LesseeChange",
            epts=[EPTS, EPTS_2],
            new_lessee_inn=NEW_LESSEE,
        )
    call("sep.register_counterparty", inn=NEW_LESSEE)
    run_due()
    call(
        "sep.submit_lease_change",
        change_number="П-1",
        kind="LesseeChange",
        epts=[EPTS, EPTS_2],
        new_lessee_inn=NEW_LESSEE,
    )
    run_due()
    number = change("П-1").application_number
    assert number is not None
    both = codes(sep_box, number)
    assert set(both) == {"Lessee", "NewLessee"}
    with pytest.raises(PermanentError, match="of each party by role"):
        call("sep.confirm_lease_change", change_number="П-1")
    call("sep.confirm_lease_change", change_number="П-1", codes=both)
    run_due()
    assert change("П-1").status == "Исполнен"
    with session_scope() as session:
        assert {current_lessee(session, e) for e in (EPTS, EPTS_2)} == {NEW_LESSEE}
    assert statuses(EPTS_2) == [OWNED, LEASED, LEASED]

    call("sep.submit_lease_change", change_number="ОК-1", kind="LeaseEnd", epts=[EPTS, EPTS_2])
    run_due()
    row = change("ОК-1")
    assert (row.lessee_inn, row.status) == (NEW_LESSEE, "Зарегистрировано")
    assert row.application_number is not None
    # One party left to confirm: the code from the register (mail intake files it) would do; here by hand.
    call("sep.confirm_lease_change", change_number="ОК-1", codes=codes(sep_box, row.application_number))
    run_due()
    assert change("ОК-1").status == "Исполнен"
    assert statuses(EPTS) == statuses(EPTS_2) == [OWNED, LEASED, LEASED, TRANSFERRED]
    world = sep(sep_box).world.vehicles
    assert {(world[e].owner_inn, world[e].leased_to) for e in (EPTS, EPTS_2)} == {(NEW_LESSEE, None)}


def test_bad_lease_changes_are_refused_with_what_is_wrong(sep_box, master) -> None:
    import_forms()
    with pytest.raises(PermanentError, match="only vehicles «В лизинге»"):
        call("sep.submit_lease_change", change_number="X-1", kind="Termination", epts=[EPTS])
    with pytest.raises(ValidationError, match="ЭПТС number has 15 digits"):
        call("sep.submit_lease_change", change_number="X-1", kind="Termination", epts=["123"])
    with pytest.raises(ValidationError, match="kind"):
        call("sep.submit_lease_change", change_number="X-1", kind="Sale", epts=[EPTS])
    with pytest.raises(ValidationError, match="epts"):
        call("sep.submit_lease_change", change_number="X-1", kind="Termination", epts=[])
    lease_vehicles(sep_box)
    with pytest.raises(PermanentError, match="needs new_lessee_inn"):
        call("sep.submit_lease_change", change_number="X-1", kind="LesseeChange", epts=[EPTS])
    with pytest.raises(PermanentError, match="is the lessee already"):
        call(
            "sep.submit_lease_change",
            change_number="X-1",
            kind="LesseeChange",
            epts=[EPTS],
            new_lessee_inn=LESSEE,
        )
    with pytest.raises(PermanentError, match="not LeaseEnd"):
        call(
            "sep.submit_lease_change",
            change_number="X-1",
            kind="LeaseEnd",
            epts=[EPTS],
            new_lessee_inn=NEW_LESSEE,
        )
    with pytest.raises(PermanentError, match="listed twice"):
        call("sep.submit_lease_change", change_number="X-1", kind="LeaseEnd", epts=[EPTS, EPTS])
    with pytest.raises(PermanentError, match="no lease change № Y-1"):
        call("sep.confirm_lease_change", change_number="Y-1", codes={"Lessee": "123456"})
    with session_scope() as session:
        assert session.scalars(select(SepLeaseChange)).all() == []
    # SEP's own refusal (our registers were stale: SEP took the vehicle off lease meanwhile).
    sep(sep_box).world.vehicles[EPTS].leased_to = None
    call("sep.submit_lease_change", change_number="X-1", kind="LeaseEnd", epts=[EPTS])
    run_due()
    row = change("X-1")
    assert row.status == "Ошибка" and (row.last_error or "").startswith("VehicleNotLeased")
    assert row.organization_inn == ORG
