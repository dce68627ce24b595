"""Answer deadlines of incoming documents: ``edo_answer_deadlines`` swept by the one deadline sweeper
(``tasks.machinery.deadlines``, beat ``edo.deadlines.sweep`` every ``OBMEN_EDO_DEADLINE_SWEEP_INTERVAL_S``),
fired 50 to an ``edo.deadlines.fire_batch`` message.

A deadline starts when the incoming document is routed: the document type's term in working days
(the production calendar, Moscow time) from the operator's time of sending. It is cancelled in the
transaction that records the answer as sent (the operator's time is the answer's); a document
answered between a sweep and its step is cancelled by the sweep's ``moot`` clause or skipped by the step.
"""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import select
from sqlalchemy.orm import Session

from config.settings import get_settings
from models.db import db_now
from models.edo import EdoAnswerDeadline, EdoDocument, EdoPackage
from models.master import Employee
from tasks.edo.chain import DEADLINE_FIRE, DEADLINES_FIRE_BATCH
from tasks.machinery import deadlines
from tasks.machinery.deadlines import DeadlineRegister
from tasks.machinery.workdays import MOSCOW
from tasks.mail.letters import queue_letter

DEADLINES = DeadlineRegister(
    EdoAnswerDeadline,
    fire=DEADLINE_FIRE,
    fire_batch=DEADLINES_FIRE_BATCH,
    moot=lambda: EdoAnswerDeadline.document_id.in_(
        select(EdoDocument.id).where(EdoDocument.answered_at.is_not(None))
    ),
)


def sweep_deadlines(now: datetime | None = None) -> dict[str, int]:
    """Fire every answer deadline that fell due; ``now`` defaults to the database clock."""
    swept = deadlines.sweep(DEADLINES, get_settings().edo_deadline_batch, now)
    return {kind: swept.get(kind, 0) for kind in ("answer", deadlines.CANCELLED)}


def fire(session: Session, deadline: EdoAnswerDeadline) -> None:
    """Tell the responsible that the answer to the document is overdue."""
    document = session.get(EdoDocument, deadline.document_id)
    if document is None or document.answered_at is not None:
        deadline.status, deadline.result = "cancelled", "answered in the meantime"
        return
    employee = session.get(Employee, document.responsible_id) if document.responsible_id else None
    package = session.get(EdoPackage, document.package_id)
    if employee is None or not employee.email or package is None:
        deadline.result = "overdue; nobody to tell (no responsible with an e-mail)"
    else:
        due = deadline.due_at.astimezone(MOSCOW)
        letter = queue_letter(
            session,
            business_key=f"edo:overdue:{document.id}",
            to_address=employee.email,
            to_name=employee.name,
            subject=f"ЭДО: истёк срок ответа на «{document.title}»",
            text=(
                f"Срок ответа на документ «{document.title}» (№ {document.id} в obmen), поступивший через "
                f"Synerdocs, истёк {due:%d.%m.%Y %H:%M} (МСК), а ответ не отправлен. Подпишите ответ ЭП "
                "и отправьте его через Synerdocs."
            ),
            source="edo",
        )
        deadline.result = f"letter {letter}"
    deadline.status = "fired"
    deadline.fired_at = deadline.fired_at or db_now(session)
