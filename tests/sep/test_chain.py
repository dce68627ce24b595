"""The chain of every SEP operation, in one place; new submissions queue behind work in flight."""

from __future__ import annotations

from sqlalchemy import select

from integrations.sep.messages import REQUESTS
from models.db import session_scope
from models.outbox import Outbox
from tasks.sep.chain import APPLY, POLL, SUBMIT, SUBMIT_PRIORITY, sep_chain
from tests.sep.conftest import add_vehicle, run_due, start_ownership_change
from tests.sep.flows import call
from workers.app import app


def test_every_operation_has_its_chain_of_registered_tasks() -> None:
    for operation in REQUESTS:
        chain = sep_chain(operation)
        assert (chain.link_for("pending"), chain.link_for("queued"), chain.link_for("done")) == (
            SUBMIT,
            POLL,
            APPLY,
        )
        assert {chain.submit, chain.poll, chain.apply, *chain.follow_ups} <= set(app.tasks)


def test_submissions_are_published_behind_polls_and_applications(sep_box, master) -> None:
    add_vehicle(sep_box)
    number = start_ownership_change(sep_box)["application_number"]
    call("sep.request_application_data", application_number=number)
    run_due()
    with session_scope() as session:
        rows = session.scalars(select(Outbox).where(Outbox.task_name.like("sep.%")).order_by(Outbox.id)).all()
        priorities = [(r.task_name, r.kwargs.get("options", {}).get("priority")) for r in rows]
    assert priorities == [(SUBMIT, SUBMIT_PRIORITY), (POLL, 0), (APPLY, 0)]
