"""The seed's people are told: the SEP-responsible's daily digest of what waits for a person (once a
day, however often beat runs it), through the one outgoing mail path."""

from __future__ import annotations

from sqlalchemy import select

from models.db import session_scope
from models.mail import OutgoingLetter
from tasks.sep.lookup import today
from tests.sep.conftest import ORG, add_vehicle, run_due, sep, start_ownership_change
from tests.sep.flows import call, letters_to


def test_the_digest_lists_what_waits_once_a_day(sep_box, master) -> None:
    assert call("sep.send_digest", source="beat") == []  # nothing waits: no letter
    add_vehicle(sep_box)
    started = start_ownership_change(sep_box, confirm_by_days=1)
    # The periodic request brings the application; its letter (with the code) was not read.
    call("sep.request_applications", source="beat")
    run_due()
    assert call("sep.send_digest", source="beat") == [{"organization_inn": ORG, "items": 1, "sent": True}]
    call("sep.send_digest", source="beat")  # beat again the same day: the same letter, not a second
    [digest] = [x for x in letters_to("petr@example.ru") if x.subject.startswith("СЭП: ожидают действий")]
    with session_scope() as session:
        assert digest.business_key == f"sep-digest:{ORG}:{today(session).isoformat()}"
    line = f"• смена собственника, заявление № {started['application_number']}: нет кода подтверждения, подтвердить до"
    assert line in digest.text_body
    with session_scope() as session:  # the periodic request about an old application tells nobody it is news
        assert (
            session.scalars(
                select(OutgoingLetter).where(OutgoingLetter.business_key.like("sep-executed:%"))
            ).all()
            == []
        )
    assert sep(sep_box).world.applications[started["application_number"]].status == "Ожидает подтверждения"
