"""Steps of the SEP workflows the tests share (plain functions, run in this process)."""

from __future__ import annotations

from typing import Any

from sqlalchemy import select

from models.db import session_scope
from models.mail import OutgoingLetter
from models.sep import SepApplication, SepLeaseApplication
from sandbox.server import Sandbox
from tasks.machinery.master_data import import_master_data
from tasks.machinery.steps import ENTRIES
from tests.sep.conftest import EPTS, VIN, add_vehicle, intake, run_due, start_ownership_change


def call(task_name: str, **kwargs: Any) -> Any:
    """An entry's plain function with validated arguments, as the worker would run it."""
    with session_scope() as session:
        return ENTRIES[task_name].call(session, **kwargs)


def application(number: str) -> SepApplication:
    with session_scope() as session:
        return session.scalars(
            select(SepApplication).where(SepApplication.application_number == number)
        ).one()


def lease(contract: str = "ДЛ-1/1") -> SepLeaseApplication:
    with session_scope() as session:
        return session.scalars(
            select(SepLeaseApplication).where(SepLeaseApplication.lease_contract_number == contract)
        ).one()


def own_vehicle(box: Sandbox) -> str:
    """The whole ownership change of OS-1 to us, letter included; returns the application number."""
    add_vehicle(box)
    number = str(start_ownership_change(box)["application_number"])
    intake()
    run_due()
    call("sep.confirm_ownership_change", application_number=number)
    run_due()
    return number


NEW_LESSEE = "7704211201"
# What registering a counterparty in SEP needs besides (ОГРН, address), as the 1C export gives it.
SEP_FORMS = {
    "counterparties": [
        {
            "inn": "7736050003",
            "kpp": "773601001",
            "name": "ПАО «Партнёр»",
            "email": "edo@partner.example.ru",
            "ogrn": "1027700132195",
            "address": "г. Москва, ул. Партнёрская, д. 1",
        },
        {
            "inn": NEW_LESSEE,
            "kpp": "770401001",
            "name": "ООО «Новый лизингополучатель»",
            "ogrn": "1027739642281",
            "address": "г. Москва, ул. Новая, д. 2",
        },
    ],
    "assets": [
        {
            "inventory_number": "OS-3",
            "name": "Scania S500",
            "epts": "164301000054321",
            "responsible": "E1",
            "organization_inn": "7707083893",
        }
    ],
}
EPTS_2 = "164301000054321"  # OS-3 (SEP_FORMS)


def import_forms(extra: dict[str, Any] | None = None) -> None:
    with session_scope() as session:
        report = import_master_data(session, extra or SEP_FORMS)
        assert report.errors == [], report.errors


def lease_vehicles(box: Sandbox, epts: tuple[str, ...] = (EPTS,)) -> str:
    """Own every vehicle of ``epts`` and lease them all to the lessee under appendix ДЛ-1/1 (its
    vehicles changed with «+» to ``epts``); returns the lease application's number."""
    for one in epts:
        add_vehicle(box, epts=one, vin=VIN if one == EPTS else None)
        number = str(start_ownership_change(box, epts=one)["application_number"])
        intake()
        run_due()
        call("sep.confirm_ownership_change", application_number=number)
        run_due()
    extra = [e for e in epts if e != EPTS]
    if extra:
        call("sep.edit_lease_vehicles", lease_contract="ДЛ-1/1", add=extra)
    call("sep.submit_lease_application", lease_contract="ДЛ-1/1")
    run_due()
    intake()  # the lessee's code from the technical mailbox
    run_due()
    leased = lease().application_number
    assert leased is not None
    call("sep.confirm_lease_application", application_number=leased)
    run_due()
    assert lease().status == "Исполнен"
    return leased


def letters_to(address: str) -> list[OutgoingLetter]:
    with session_scope() as session:
        return list(
            session.scalars(
                select(OutgoingLetter).where(OutgoingLetter.to_address == address).order_by(OutgoingLetter.id)
            )
        )
