"""Steps of the SEP workflows the tests share (plain functions, run in this process)."""

from __future__ import annotations

from typing import Any

from sqlalchemy import select

from models.db import session_scope
from models.sep import SepApplication, SepLeaseApplication
from sandbox.server import Sandbox
from tasks.machinery.steps import ENTRIES
from tests.sep.conftest import add_vehicle, intake, run_due, start_ownership_change


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
