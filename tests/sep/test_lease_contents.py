"""What a lease application holds: the appendix's vehicles changed with «+»/«−» before it is submitted,
and the lease term taken from the payment schedule, as SEP receives them."""

from __future__ import annotations

from datetime import date

import pytest
from pydantic import ValidationError

from integrations.errors import PermanentError
from models.db import session_scope
from tasks.sep.actions import lease_candidates
from tests.sep.conftest import EPTS, ORG, run_due, sep
from tests.sep.flows import EPTS_2, call, import_forms, lease, own_vehicle


def test_vehicles_added_and_removed_before_submitting_are_what_sep_gets(sep_box, master) -> None:
    import_forms()
    with pytest.raises(PermanentError, match="no asset with ЭПТС 164301000077777 in master data"):
        call("sep.edit_lease_vehicles", lease_contract="ДЛ-1/1", add=["164301000077777"])
    with pytest.raises(PermanentError, match=f"{EPTS_2} is not in the list"):
        call("sep.edit_lease_vehicles", lease_contract="ДЛ-1/1", remove=[EPTS_2])
    with pytest.raises(PermanentError, match="leaves none"):
        call("sep.edit_lease_vehicles", lease_contract="ДЛ-1/1", remove=[EPTS])
    with pytest.raises(PermanentError, match="say which ЭПТС"):
        call("sep.edit_lease_vehicles", lease_contract="ДЛ-1/1")
    with pytest.raises(PermanentError, match="no lease contract appendix № ДЛ-9"):
        call("sep.edit_lease_vehicles", lease_contract="ДЛ-9", add=[EPTS_2])
    with pytest.raises(ValidationError, match="15 digits"):
        call("sep.edit_lease_vehicles", lease_contract="ДЛ-1/1", add=["16430100"])

    assert call("sep.edit_lease_vehicles", lease_contract="ДЛ-1/1", add=[EPTS_2]) == {
        "lease_application_id": lease().id, "status": "Черновик", "epts": [EPTS, EPTS_2]
    }  # fmt: skip
    with pytest.raises(PermanentError, match="is in the list already"):
        call("sep.edit_lease_vehicles", lease_contract="ДЛ-1/1", add=[EPTS_2])
    assert call("sep.edit_lease_vehicles", lease_contract="ДЛ-1/1", remove=[EPTS_2])["epts"] == [EPTS]
    call("sep.edit_lease_vehicles", lease_contract="ДЛ-1/1", add=[EPTS_2])
    call("sep.edit_lease_vehicles", lease_contract="ДЛ-1/1", remove=[EPTS])
    own_vehicle(sep_box)
    with session_scope() as session:  # a draft is still a candidate, judged by its own vehicles
        [candidate] = lease_candidates(session, ORG)
        assert (candidate.ready, list(candidate.statuses)) == (False, [EPTS_2])
    call("sep.edit_lease_vehicles", lease_contract="ДЛ-1/1", add=[EPTS], remove=[EPTS_2])
    call("sep.submit_lease_application", lease_contract="ДЛ-1/1")
    with pytest.raises(PermanentError, match="is «Отправляется»: its vehicles can be changed only before"):
        call("sep.edit_lease_vehicles", lease_contract="ДЛ-1/1", add=[EPTS_2])
    run_due()
    [submitted] = [a for a in sep(sep_box).world.applications.values() if a.kind == "Lease"]
    assert [v.epts for v in submitted.vehicles] == [EPTS] == lease().epts


def test_the_lease_term_is_the_last_date_of_the_payment_schedule_on_the_wire(sep_box, master) -> None:
    import_forms(
        {
            "lease_contracts": [
                {
                    "number": "ДЛ-2/1",
                    "date": "2026-11-15",
                    "document_name": "Приложение 2",
                    "lessee_inn": "7736050003",
                    "epts": [EPTS],
                    "organization_inn": ORG,
                    "payment_schedule": [
                        {"date": "2027-01-15", "amount": "100000.00"},
                        {"date": "2030-06-15", "amount": "100000.00"},
                        {"date": "2028-03-15", "amount": "100000.00"},
                    ],
                }
            ]
        }
    )
    own_vehicle(sep_box)
    call("sep.submit_lease_application", lease_contract="ДЛ-2/1")
    run_due()
    assert lease("ДЛ-2/1").lease_term_end == date(2030, 6, 15)
    [submitted] = [a for a in sep(sep_box).world.applications.values() if a.kind == "Lease"]
    assert submitted.lease_document is not None
    assert submitted.lease_document["leaseTermEnd"] == date(2030, 6, 15)
    assert submitted.lease_document["documentNumber"] == "ДЛ-2/1"
    log = [e.body for e in sep(sep_box).log.since() if "SubmitLeaseApplication" in e.body]
    assert "<ns0:leaseTermEnd>2030-06-15</ns0:leaseTermEnd>" in log[0]
