"""The SEP flow's tasks by name, and which follows which: one map from a request's status to its step.

    an entry ──open_request──▶ pending ──sep.submit_request──▶ queued
        (answer lost: uncertain ──sep.submit_request, same message id──▶ queued; refused: error)
    queued ──sep.poll_queue at next_poll_at, again until SEP is done──▶ done | error
    done | error ──sep.apply_result──▶ applied (with OBMEN_SEP_AUTO_CONFIRM, maybe a confirmation entry)

Each arrow is a step on the request's row, enqueued by :func:`enqueue_next` through the outbox in
the transaction of the status change that makes it due; a step due later (the next poll, a resend
after a lost answer) is an outbox row whose ``not_before`` is that time. The links are not a
Celery ``chain`` canvas: the poll waits by re-scheduling itself until SEP is done, and a canvas
would fire the next link as soon as one poll returned; the sweeper and ``obmen redrive`` also
re-drive a single link, which then carries the chain on just the same.
"""

from __future__ import annotations

import uuid
from datetime import datetime
from typing import Any

from celery import current_app
from sqlalchemy import bindparam, select, update
from sqlalchemy.orm import Session

from integrations.sep.messages import SepRequestArgs
from models.outbox import Outbox
from models.sep import (
    DONE,
    ERROR,
    OPEN_STATUSES,
    PENDING,
    QUEUED,
    UNCERTAIN,
    SepApplication,
    SepCounterparty,
    SepLeaseApplication,
    SepLeaseChange,
    SepRequest,
)
from tasks.machinery.outbox import enqueue

SUBMIT = "sep.submit_request"
POLL = "sep.poll_queue"
APPLY = "sep.apply_result"

# The step each open status waits for; the step declarations (steps.py) take their statuses from it.
NEXT_STEP: dict[str, str] = {PENDING: SUBMIT, UNCERTAIN: SUBMIT, QUEUED: POLL, DONE: APPLY, ERROR: APPLY}

# New submissions go behind the polls and applications of requests already in SEP (kombu's Redis
# transport serves lower numbers first), so a burst of new requests does not hold up the results
# of those before it.
SUBMIT_PRIORITY = 9


def statuses_of(task: str) -> frozenset[str]:
    """The statuses in which a request waits for ``task``."""
    return frozenset(status for status, step in NEXT_STEP.items() if step == task)


def enqueue_next(
    session: Session, request: SepRequest, *, at: datetime | None = None, task_id: str | None = None
) -> Outbox:
    """Enqueue the step ``request``'s status waits for, no earlier than ``at`` (database clock),
    under ``task_id`` when given (else the outbox row's)."""
    task = NEXT_STEP[request.status]
    options: dict[str, Any] = {"priority": SUBMIT_PRIORITY if task == SUBMIT else 0}
    if task_id is not None:
        options["task_id"] = task_id
    # Due at ``at``: published as a countdown once within the outbox horizon.
    return enqueue(
        session,
        current_app.signature(task, kwargs={"id": request.id}, **options),
        not_before=at,
        business_key=f"sep:{request.queue_number or request.message_id}",
    )


def schedule_poll(session: Session, request: SepRequest, at: datetime) -> None:
    """The one poll message of a queued request, due at ``at``; its task id is the row's poll token.

    The token is chosen before the outbox row is written, so the step's changes to the request and
    the row go in one flush at its commit, not one to learn the row's id and another after it.
    Polls due together go as one batched message, which carries each row's token for it (the relay's
    ``obmen_task_ids`` header). A poll delivered early under any other token is a copy (see
    steps.poll_queue).
    """
    request.poll_task_id = f"sep-poll-{request.id}-{uuid.uuid4().hex}"
    request.next_poll_at = at
    enqueue_next(session, request, at=at, task_id=request.poll_task_id)


def open_request(
    session: Session,
    args: SepRequestArgs,
    *,
    business_key: str,
    source: str | None,
    application_number: str | None = None,
    lease_application_id: int | None = None,
    lease_change_id: int | None = None,
    counterparty_id: int | None = None,
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
        lease_change_id=lease_change_id,
        counterparty_id=counterparty_id,
        source=source,
        status=PENDING,
    )
    session.add(request)
    session.flush()
    enqueue_next(session, request)
    return request, True


def open_request_for(session: Session, business_key: str) -> SepRequest | None:
    return session.scalars(
        select(SepRequest)
        .where(SepRequest.business_key == business_key)
        .where(SepRequest.status.in_(OPEN_STATUSES))
        .with_for_update()
    ).first()


def _shown_on(key: Any) -> Any:
    """The UPDATE that shows a request's status on the row ``key`` names, built once (its compiled
    form cached). Copies of the row in the session are left as they are: a step that holds the row
    passes it to :func:`mirror`, or does not read its status again."""
    return (
        update(key.class_)
        .where(key == bindparam("about"))
        .values(request_status=bindparam("shown_status"), last_request_id=bindparam("shown_by"))
        .execution_options(synchronize_session=False)
    )


_MIRRORS = (
    (_shown_on(SepLeaseApplication.id), "lease_application_id"),
    (_shown_on(SepLeaseChange.id), "lease_change_id"),
    (_shown_on(SepCounterparty.id), "counterparty_id"),
)
_MIRROR_APPLICATION = _shown_on(SepApplication.application_number)


def mirror(session: Session, request: SepRequest, application: SepApplication | None = None) -> None:
    """Show the request's status on what it is about (the colour of the row in the workstation).

    ``application``: the request's application as the caller holds it, which then carries the status
    in its own write. The UPDATEs touch other registers only, so they flush nothing first: the
    request's own changes go in one UPDATE at the step's commit.
    """
    shown = {"shown_status": request.request_status, "shown_by": request.id}
    with session.no_autoflush:
        for statement, attribute in _MIRRORS:
            if (about := getattr(request, attribute)) is not None:
                session.execute(statement, {**shown, "about": about})
        if application is not None:
            application.request_status = request.request_status
            application.last_request_id = request.id
        elif request.application_number is not None:
            session.execute(_MIRROR_APPLICATION, {**shown, "about": request.application_number})
