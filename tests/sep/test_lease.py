"""Lease application end to end: «В собственности» → submit → number → lessee's code by letter →
confirm as lessee → «В лизинге»."""

from __future__ import annotations

import pytest
from sqlalchemy import select

from integrations.errors import PermanentError
from models.db import session_scope
from models.sep import APPLIED, LEASED, OWNED, SepAssetStatus
from models.sep_codes import SepConfirmationCode
from tasks.sep.actions import lease_candidates
from tests.sep.conftest import EPTS, ORG, intake, read_letter, requests_of, run_due, sep
from tests.sep.flows import call, lease, own_vehicle


def _statuses() -> list[tuple[str, str]]:
    with session_scope() as session:
        rows = session.scalars(select(SepAssetStatus).order_by(SepAssetStatus.period, SepAssetStatus.id))
        return [(r.epts, r.status) for r in rows]


def test_lease_application_through_every_status(sep_box, master) -> None:
    with pytest.raises(PermanentError, match="only vehicles «В собственности» can be leased"):
        call("sep.submit_lease_application", lease_contract="ДЛ-1/1")
    own_vehicle(sep_box)
    with session_scope() as session:
        [candidate] = lease_candidates(session, ORG)
        assert (candidate.contract.number, candidate.ready, candidate.statuses) == (
            "ДЛ-1/1",
            True,
            {EPTS: OWNED},
        )

    answer = call("sep.submit_lease_application", lease_contract="ДЛ-1/1", source="ops")
    assert answer["created"] is True
    assert lease().status == "Отправляется"
    assert call("sep.submit_lease_application", lease_contract="ДЛ-1/1")["created"] is False
    run_due()
    row = lease()
    assert (row.status, row.request_status, row.notification_email) == (
        "Зарегистрировано", "Получен ответ", "sep@example.ru"
    )  # fmt: skip
    assert (row.lessor_status, row.lessee_status) == ("Confirmed", "NotApplicable")
    number = row.application_number
    assert number is not None

    letter = read_letter(sep(sep_box).mailroom.letters[-1].raw)
    assert letter["subject"] == f"СЭП: заявление № {number} на внесение сведений о лизинге"
    assert sep(sep_box).mailroom.letters[-1].to == "sep@example.ru"
    intake()  # the lessee's code, from our technical mailbox
    run_due()
    assert lease().status == "Зарегистрировано"  # auto-confirmation is off: waits for a person
    assert requests_of("RequestApplicationData")[-1].source.startswith("mail:")  # type: ignore[union-attr]

    call("sep.confirm_lease_application", application_number=number)
    assert lease().status == "Подтверждается"
    run_due()
    row = lease()
    assert (row.status, row.lessee_status, row.last_error) == ("Исполнен", "Confirmed", None)
    assert _statuses() == [(EPTS, OWNED), (EPTS, LEASED)]
    with session_scope() as session:
        code = session.scalars(
            select(SepConfirmationCode).where(SepConfirmationCode.application_number == number)
        ).one()
        assert code.used_at is not None
    entered = read_letter(sep(sep_box).mailroom.letters[-1].raw)
    assert entered["subject"] == f"СЭП: сведения о лизинге внесены, заявление № {number}"
    assert "code" not in entered and entered["epts"] == EPTS
    assert call("sep.submit_lease_application", lease_contract="ДЛ-1/1")["created"] is False
    assert [world.kind for world in sep(sep_box).world.applications.values()] == ["OwnershipChange", "Lease"]


def test_lessee_email_instead_of_the_technical_mailbox(sep_box, master) -> None:
    own_vehicle(sep_box)
    call("sep.submit_lease_application", lease_contract="ДЛ-1/1", use_technical_mailbox=False)
    run_due()
    assert lease().notification_email == "edo@partner.example.ru"
    assert sep(sep_box).mailroom.letters[-1].to == "edo@partner.example.ru"


def test_a_refused_lease_application_shows_the_error_and_may_be_submitted_again(sep_box, master) -> None:
    own_vehicle(sep_box)
    sep(sep_box).knobs.update({"fault": "soap_fault_client", "fault_next": 1})
    call("sep.submit_lease_application", lease_contract="ДЛ-1/1")
    run_due()
    row = lease()
    assert row.status == "Ошибка" and "ValidationError" in (row.last_error or "")
    [refused] = requests_of("SubmitLeaseApplication")
    assert (refused.status, refused.outcome, refused.request_status) == (
        APPLIED,
        "Refused",
        "Ошибка запроса",
    )
    assert call("sep.submit_lease_application", lease_contract="ДЛ-1/1")["created"] is True
    run_due()
    assert lease().status == "Зарегистрировано"


def test_a_lease_the_lessee_does_not_get_in_time(sep_box, master) -> None:
    """SEP refuses the lessee's confirmation after the confirm-by date; the lease waits for another try."""
    own_vehicle(sep_box)
    call("sep.submit_lease_application", lease_contract="ДЛ-1/1")
    run_due()
    number = lease().application_number
    intake()
    run_due()
    sep(sep_box).clock.advance(20 * 86400)
    call("sep.confirm_lease_application", application_number=number)
    run_due()
    row = lease()
    assert row.status == "Зарегистрировано" and "ConfirmationCodeExpired" in (row.last_error or "")
