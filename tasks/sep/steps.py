"""The machinery of every SEP request: send it, poll its queue number, apply its result.

Each is a step on the ``sep_exchange_queue`` row (``{"id": ...}``; all three are batched,
``{"ids": [...]}`` from the relay), taking the statuses
``chain.NEXT_STEP`` gives it; see ``chain.py`` for how they follow each other and ``apply.py`` for
what a result changes.
"""

from __future__ import annotations

from datetime import timedelta

import structlog
from sqlalchemy.orm import Session

from config.settings import Settings, get_settings
from integrations.errors import PermanentError, RateLimited, TransientError
from integrations.sep.messages import REQUESTS, QueueState
from integrations.sep.outcomes import QueueNumberReceived, RequestError, ResponseReceived, XmlReadError
from models.db import db_clock, db_elapsed_now, db_now
from models.sep import APPLIED, DONE, ERROR, QUEUED, UNCERTAIN, SepRequest
from tasks.machinery.policy import countdown
from tasks.machinery.steps import step
from tasks.sep.apply import Known, apply_request, known_to_apply
from tasks.sep.chain import APPLY, POLL, SUBMIT, enqueue_next, mirror, schedule_poll, statuses_of
from tasks.sep.clients import sep_client
from tasks.sep.notices import request_failed

log = structlog.get_logger(__name__)


# A send is counted before it leaves, in the claim's commit: a worker that dies mid-send (the request
# may have reached SEP) still counts it. A copy of the message that then finds the work done counts
# one that never left, and so does a batch: its claim counts every row's send before the first
# leaves, and a row it defers (its time is up) or finds done never sent. ``sends`` is an upper
# bound, never below the truth.
@step(SUBMIT, model=SepRequest, statuses=statuses_of(SUBMIT), claim_counts=("sends",), batch=True)
def submit_request(session: Session, request: SepRequest) -> None:
    """Send the request to SEP under its fixed message id; keep the queue number and schedule the first poll.

    A request whose earlier send may have reached SEP (``uncertain``, or a worker that died
    mid-send) is sent again with the same message id: SEP answers a repeated message id with the
    original queue number, so one business request never becomes two SEP applications.

    Batched: submissions relayed together go in one message (one claim, one work commit, one
    relay), each row in its own savepoint (never ``rerun``: the send is outside the database), so
    the first polls they schedule are committed, relayed and polled together too. The claim
    counts each row's send before any leaves (``sends`` stays an upper bound). The batch holds its
    rows' locks through their sends, one after the other: like a batch of polls, it starts no send
    once it has held them its time (:func:`within_batch_time`), its rows left deferred.
    """
    settings = get_settings()
    within_batch_time(session, settings)
    args = REQUESTS[request.operation].model_validate(request.payload)
    if request.status == UNCERTAIN or request.attempts > 1:
        log.warning(
            "sep.resend_same_message_id",
            request_id=request.id,
            message_id=request.message_id,
            sends=request.sends,
            why=request.last_error or "an earlier attempt did not finish",
        )
    outcome = sep_client().submit(
        args, request.message_id, request_id=request.id, business_key=request.business_key
    )
    if isinstance(outcome, QueueNumberReceived):
        # Our clock, taken after the answer: never earlier than SEP's own acceptance. Asked before
        # the row changes, so that they are not flushed ahead of it but go in one UPDATE at the commit.
        submitted = db_clock(session)
    request.request_status = outcome.request_status.value
    if isinstance(outcome, QueueNumberReceived):
        request.queue_number = outcome.ticket.queue_number
        request.sep_accepted_at = outcome.ticket.accepted_at
        request.submitted_at = submitted
        request.status = QUEUED
        request.max_polls = request.polls + settings.sep_max_polls
        schedule_poll(session, request, submitted + timedelta(seconds=settings.sep_min_poll_delay_s))
    elif isinstance(outcome, ResponseReceived):
        raise PermanentError(f"SEP answered {request.operation} with a queue result")
    elif outcome.delivery == "refused" and not outcome.retryable:
        request.status = ERROR
        request.outcome = "Refused"
        code = outcome.fault_code if isinstance(outcome, RequestError) else None
        request.errors = [{"code": code, "message": outcome.detail}]
        enqueue_next(session, request)
    elif outcome.delivery == "maybe":
        request.status = UNCERTAIN
        request.record_error(f"{type(outcome).__name__}: {outcome.detail}")
        if not outcome.retryable:
            request.park(
                f"the answer could not be read ({outcome.detail}); check SEP, then re-drive", db_now(session)
            )
        elif request.sends >= settings.max_attempts:
            request.park(f"no answer after {request.sends} sends: {outcome.detail}", db_now(session))
        else:
            enqueue_next(
                session, request, at=db_now(session) + timedelta(seconds=countdown(request.sends, settings))
            )
    else:  # it never left, or SEP said it could not take it now: plain retry
        raise TransientError(outcome.detail)
    mirror(session, request)


@step(POLL, model=SepRequest, statuses=statuses_of(POLL), batch=True)
def poll_queue(session: Session, request: SepRequest, *, task_id: str | None) -> None:
    """Ask SEP for the queue number's result, never before its time; re-schedule until it is ready.

    The first poll is due ``OBMEN_SEP_MIN_POLL_DELAY_S`` after ``submitted_at``, later ones every
    ``OBMEN_SEP_POLL_INTERVAL_S``; both are checked here against the database clock, because a
    countdown can fire early (retry jitter, a worker whose clock runs ahead). An early delivery of
    the scheduled poll (``task_id`` is the row's token, ``poll_task_id``) re-schedules itself for
    the rest of the wait; any other copy returns quietly. After ``OBMEN_SEP_MAX_POLLS`` unready
    answers the row is parked; a re-drive grants as many more.

    Batched: polls due together go in one message (one claim, one work commit, one relay), each
    row in its own savepoint (never ``rerun``: the call to SEP is outside the database). The relay
    carries each row's own task id in the message, so the token means what it means for a poll
    sent alone. Each row reads its own moment of the database clock (the batch's start plus the
    time since), and the batch holds its rows' locks through their calls: once it has held them
    ``OBMEN_SEP_OPERATION_TIMEOUT_S`` (one slow poll's whole time: :func:`within_batch_time`, as
    for submissions), it starts no more calls and its rows left are deferred, their attempts given
    back, each in a message of its own at once.
    """
    settings = get_settings()
    assert request.submitted_at is not None
    now = db_elapsed_now(session)  # this row's moment, never later than the database's clock
    due = max(
        request.submitted_at + timedelta(seconds=settings.sep_min_poll_delay_s), request.next_poll_at or now
    )
    if now < due:
        if _is_the_scheduled_poll(request, task_id):
            log.info(
                "sep.poll_early", request_id=request.id, early_by_s=round((due - now).total_seconds(), 3)
            )
            schedule_poll(session, request, due)
        return
    within_batch_time(session, settings)
    if request.max_polls is None or request.polls >= request.max_polls:
        request.max_polls = request.polls + settings.sep_max_polls  # re-driven after parking
    assert request.queue_number is not None
    outcome = sep_client().get_queue_result(
        request.queue_number,
        request_id=request.id,
        business_key=request.business_key,
        application_number=request.application_number,
    )
    if isinstance(outcome, XmlReadError | RequestError):
        error = f"{outcome.request_status.value}: {outcome.detail}"
        if outcome.retryable:
            raise TransientError(error)  # the one retry policy; polling is safe to repeat
        # Asking again gets the same answer: park the row, showing why, for a person.
        request.request_status = outcome.request_status.value
        request.park(error, db_now(session))
        mirror(session, request)
        return
    assert isinstance(outcome, ResponseReceived)
    result = outcome.result
    polled = db_elapsed_now(session)  # after the answer: the database clock, without asking it again
    request.polls += 1
    request.last_polled_at = polled
    request.sep_state = result.state.value
    changed = request.request_status != outcome.request_status.value
    request.request_status = outcome.request_status.value
    if result.state in (QueueState.DONE, QueueState.ERROR):
        request.status = DONE if result.state is QueueState.DONE else ERROR
        request.outcome = result.state.value
        request.result = result.result_json()
        request.errors = [{"code": e.code, "message": e.message} for e in result.errors] or None
        request.completed_at = result.completed_at
        request.poll_task_id = None
        request.next_poll_at = None
        enqueue_next(session, request)
    elif request.polls >= request.max_polls:
        request.park(
            f"no result after {request.polls} polls (SEP says {result.state.value}); re-drive to poll again",
            db_now(session),
        )
    else:
        wait = float(settings.sep_poll_interval_s)
        if result.state is QueueState.TOO_EARLY and result.not_before is not None:
            # SEP's clock and minimum may differ from ours; its own "not before" wins, up to a bound:
            # beyond it (a notBefore of 9999-12-31) the poll comes back after the bound, counted
            # like every answer towards OBMEN_SEP_MAX_POLLS, so the row ends parked, not queued forever.
            wait = max(1.0, (result.not_before - result.server_time).total_seconds())
            if wait > settings.sep_max_not_before_s:
                log.warning(
                    "sep.not_before_too_far",
                    request_id=request.id,
                    not_before=result.not_before.isoformat(),
                    waiting_s=settings.sep_max_not_before_s,
                )
                wait = float(settings.sep_max_not_before_s)
        schedule_poll(session, request, polled + timedelta(seconds=wait))
    if changed or request.status != QUEUED:
        mirror(session, request)


def within_batch_time(session: Session, settings: Settings) -> None:
    """Raise :class:`RateLimited` when this row's batch may start no more calls to SEP.

    A batch of SEP steps (submissions, polls) holds its rows' locks through their calls, one after
    the other. It goes on starting them for one slow call's whole time
    (``OBMEN_SEP_OPERATION_TIMEOUT_S``), so its rows are locked at most twice what one step holds
    its row, and less when the last call would otherwise outlive the task's soft time limit (the
    self-check keeps one call below it). A row past it is given back, not failed: never tried, its
    attempt is returned and it comes back at once in a message of its own (the machinery's
    ``RateLimited``). Alone, or first in its batch, a row is always within its time.
    """
    held = db_elapsed_now(session) - db_now(session)  # how long the batch has held its rows' locks
    operation = settings.sep_operation_timeout_s
    if held > timedelta(seconds=min(operation, settings.task_soft_time_limit_s - operation)):
        raise RateLimited(
            f"its batch held the rows {held.total_seconds():.0f} s; left for a message of its own"
        )


def _is_the_scheduled_poll(request: SepRequest, task_id: str | None) -> bool:
    """Whether this delivery is the poll message the row waits for (its token), not a copy of it.

    Run without Celery (tests, ops) there is no delivery to tell apart: act as the scheduled one.
    """
    return task_id is None or request.poll_task_id in (None, task_id)


@step(
    APPLY,
    model=SepRequest,
    statuses=statuses_of(APPLY),
    batch=True,
    prefetch=known_to_apply,
    rerun=True,
)
def apply_result(session: Session, request: SepRequest, *, prefetched: Known) -> None:
    """Apply what SEP answered to the registers (applications, lease applications, asset statuses, codes);
    a request that failed is told to its responsible person, in the same transaction.

    Batched: it calls nothing outside Postgres, so results due together (the polls of a relay run)
    are applied in one message and one commit; what they look up is loaded once for all of them,
    and, since it may run again, their writes go in one flush (a savepoint each only when one fails).
    """
    apply_request(session, request, prefetched)
    if request.status == ERROR:
        request_failed(session, request)
    request.status = APPLIED
    request.applied_at = prefetched.now()
    mirror(session, request, prefetched.held(request.application_number))
