"""The EDO flow's tasks by name, and which follows which.

    a customer's package (POST /edo/packages, edo.submit_package) ─┐
    the company's answer (POST /edo/answers, edo.send_answer) ─────┴▶ edo_packages (received)
        ──edo.package.check──▶ sending   (the box found or registered, the signatures checked;
                                          committed before any SendMessage)
        ──edo.package.send───▶ sent      (a customer's package: it waits in the company's box)
                             ▶ stamping  (an answer: the operator fixed its time)
                             ▶ refused   (obmen's check or the operator refused it)
    stamping ──edo.package.print──▶ stamped  (print forms kept as version 2, the customer told)
    stamped | delivered ──edo.package.track (beat edo.track)──▶ delivered ─▶ signed | rejected
    edo.fetch (beat, the incoming cursor) ── each message once ──▶ routed (each document to its
        responsible by type, an e-mail, the answer deadline in edo_answer_deadlines)
    edo_answer_deadlines (waiting ─edo.deadlines.sweep─▶ due)
        ──edo.deadlines.fire_batch / edo.deadline.fire──▶ fired (the responsible told it is overdue)

Each arrow is a step on the row's register, enqueued through the outbox in the transaction that
makes it due; the step declarations (``steps.py``) take their statuses from :data:`NEXT_STEP`.
"""

from __future__ import annotations

from sqlalchemy.orm import Session

from models.edo import DELIVERED, RECEIVED, SENDING, STAMPED, STAMPING, EdoPackage
from tasks.machinery.outbox import enqueue

SUBMIT = "edo.submit_package"
ANSWER = "edo.send_answer"
CHECK = "edo.package.check"
SEND = "edo.package.send"
PRINT = "edo.package.print"
TRACK = "edo.package.track"
FETCH = "edo.fetch"
TRACK_ALL = "edo.track"
DEADLINES_SWEEP = "edo.deadlines.sweep"
DEADLINE_FIRE = "edo.deadline.fire"
DEADLINES_FIRE_BATCH = "edo.deadlines.fire_batch"

# The step each package status waits for (tracking is started by the beat job, not by a change).
NEXT_STEP: dict[str, str] = {
    RECEIVED: CHECK,
    SENDING: SEND,
    STAMPING: PRINT,
    STAMPED: TRACK,
    DELIVERED: TRACK,
}


def statuses_of(task: str) -> frozenset[str]:
    """The package statuses in which a package waits for ``task``."""
    return frozenset(status for status, step in NEXT_STEP.items() if step == task)


def enqueue_next(session: Session, package: EdoPackage) -> None:
    """Enqueue the step ``package``'s new status waits for, in the caller's transaction."""
    enqueue(
        session,
        NEXT_STEP[package.status],
        {"id": package.id},
        business_key=f"edo:{package.package_key}:{package.status}",
    )
