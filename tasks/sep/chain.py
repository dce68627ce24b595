"""The chain of every SEP operation, built in one place: submit → poll → apply (→ follow-up).

Each link is a step on the operation's ``sep_exchange_queue`` row, enqueued through the outbox in
the same transaction as the status change that makes it due (:func:`advance`). The links are not a
Celery ``chain`` canvas: the poll waits by re-scheduling itself with a countdown until SEP is done,
and a canvas would fire the next link as soon as one poll returned; the sweeper and ``obmen
redrive`` also re-drive a single link, which then carries the chain on just the same.
"""

from __future__ import annotations

import uuid
from dataclasses import dataclass
from datetime import datetime

from celery import current_app
from sqlalchemy import select, update
from sqlalchemy.orm import Session

from integrations.sep.messages import SepRequestArgs
from models.outbox import Outbox
from models.sep import OPEN_STATUSES, SepApplication, SepLeaseApplication, SepRequest
from tasks.machinery.outbox import enqueue

SUBMIT = "sep.submit_request"
POLL = "sep.poll_queue"
APPLY = "sep.apply_result"
SUBMIT_PRIORITY = 9

# Follow-ups the apply step may start (they are entries, with their own requests and chains).
_FOLLOW_UPS: dict[str, tuple[str, ...]] = {
    # With OBMEN_SEP_AUTO_CONFIRM, fresh data of an application waiting for our confirmation, for
    # a known asset with a code in the register, is confirmed at once.
    "RequestApplications": ("sep.confirm_ownership_change", "sep.confirm_lease_application"),
    "RequestApplicationData": ("sep.confirm_ownership_change", "sep.confirm_lease_application"),
    "ConfirmOwnershipChange": (),
    # The lessee's code comes by letter; mail intake then asks for the application's data.
    "SubmitLeaseApplication": (),
    "ConfirmLeaseApplication": (),
}


@dataclass(frozen=True)
class Chain:
    operation: str
    submit: str
    poll: str
    apply: str
    follow_ups: tuple[str, ...]

    def link_for(self, status: str) -> str:
        """The link a request in ``status`` waits for."""
        return {"pending": self.submit, "uncertain": self.submit, "queued": self.poll}.get(status, self.apply)


def sep_chain(operation: str) -> Chain:
    """The chain of ``operation`` (a SEP request operation of the WSDL)."""
    return Chain(operation, SUBMIT, POLL, APPLY, _FOLLOW_UPS[operation])


def advance(session: Session, request: SepRequest, *, at: datetime | None = None) -> Outbox:
    """Enqueue the link ``request``'s status waits for, no earlier than ``at`` (database clock).

    New submissions go behind the polls and applications of requests already in SEP (a lower
    priority: kombu's Redis transport serves lower numbers first), so a burst of new requests
    does not hold up the results of those before it.
    """
    task = sep_chain(request.operation).link_for(request.status)
    key = f"sep:{request.queue_number or request.message_id}"
    priority = SUBMIT_PRIORITY if task == SUBMIT else 0
    row = enqueue(
        session, current_app.signature(task, kwargs={"id": request.id}, priority=priority), business_key=key
    )
    if at is not None:
        row.not_before = at  # the outbox turns the rest of the wait into a countdown
    return row


def schedule_poll(session: Session, request: SepRequest, at: datetime) -> None:
    """The one poll message of a queued request, due at ``at``; its id is the row's poll token."""
    request.next_poll_at = at
    row = advance(session, request, at=at)
    session.flush()
    # The outbox publishes the message under this id; a poll arriving with any other id is a duplicate.
    request.poll_task_id = f"outbox-{row.id}"


def open_request(
    session: Session,
    args: SepRequestArgs,
    *,
    business_key: str,
    source: str | None,
    application_number: str | None = None,
    lease_application_id: int | None = None,
) -> tuple[SepRequest, bool]:
    """The open request for ``business_key``, or a new one started on its chain (and True).

    A partial unique index allows one open request per business key; two callers racing past the
    check meet it, and the loser's retry finds the winner's row.
    """
    existing = open_request_for(session, business_key)
    if existing is not None:
        return existing, False
    request = SepRequest(
        operation=args.OPERATION,
        business_key=business_key,
        message_id=str(uuid.uuid4()),
        payload=args.model_dump(mode="json"),
        application_number=application_number,
        lease_application_id=lease_application_id,
        source=source,
        status="pending",
    )
    session.add(request)
    session.flush()
    advance(session, request)
    return request, True


def open_request_for(session: Session, business_key: str) -> SepRequest | None:
    return session.scalars(
        select(SepRequest)
        .where(SepRequest.business_key == business_key)
        .where(SepRequest.status.in_(OPEN_STATUSES))
        .with_for_update()
    ).first()


def mirror(session: Session, request: SepRequest) -> None:
    """Show the request's status on what it is about (the colour of the row in the workstation)."""
    shown = {"request_status": request.request_status, "last_request_id": request.id}
    if request.lease_application_id is not None:
        session.execute(
            update(SepLeaseApplication)
            .where(SepLeaseApplication.id == request.lease_application_id)
            .values(**shown)
        )
    if request.application_number is not None:
        session.execute(
            update(SepApplication)
            .where(SepApplication.application_number == request.application_number)
            .values(**shown)
        )
