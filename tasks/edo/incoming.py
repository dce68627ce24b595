"""The company side: the incoming cursor of the company's box read, each message applied once, each
document routed by its type to the responsible employee with its answer deadline.

The cursor (``edo_cursors``) is the last message applied. Each message is applied in a transaction
of its own that also moves the cursor, under the cursor row's lock: a message is applied exactly
once however many runs overlap (a second run finds the cursor moved and stops), and a run that dies
between two messages resumes after the last one applied.

A message obmen sent itself (a customer's package from the cabinet) is matched to its package by
the operator's message id, or — when the worker that sent it died before recording it — by the
package key every document carries as ``CustomField``: the package then learns its message here,
and the re-driven send step finds nothing left to do. Any other message (a customer writing from
its own Synerdocs account) becomes a package of its own, its documents of type ``other``.
"""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass, field

import structlog
from sqlalchemy import select
from sqlalchemy.orm import Session

from config.settings import get_settings
from integrations.synerdocs.model import Message
from models.db import insert_ignoring_conflicts, session_scope
from models.edo import (
    INBOUND,
    ORIGINAL,
    ROUTED,
    SENT,
    UNROUTED,
    EdoAnswerDeadline,
    EdoAnswerTerm,
    EdoCounterparty,
    EdoCursor,
    EdoDocument,
    EdoDocumentVersion,
    EdoPackage,
    EdoRoutingRule,
    store_file,
)
from models.master import Employee
from tasks.edo.clients import company_client
from tasks.edo.register import OTHER_TYPE, content_type, default_box
from tasks.edo.sending import documents_of, ids_by_position, message_sent_at, record_sent
from tasks.machinery.workdays import MOSCOW, working_deadline
from tasks.mail.letters import queue_letter

log = structlog.get_logger(__name__)


@dataclass
class FetchReport:
    pages: int = 0
    outcomes: Counter[str] = field(default_factory=Counter)


def fetch(max_messages: int | None = None) -> FetchReport:
    """Read the company box's incoming messages after the cursor and apply each once."""
    box = get_settings().synerdocs_box
    client = company_client()
    report = FetchReport()
    with session_scope() as session:
        default_box(session)
        session.execute(insert_ignoring_conflicts(session, EdoCursor).values(box_address=box))
        after = session.scalar(select(EdoCursor.after_message_id).where(EdoCursor.box_address == box))
    while max_messages is None or sum(report.outcomes.values()) < max_messages:
        page = client.messages(after_message_id=after, to_box=box)
        report.pages += 1
        if not page:
            break
        for info in page:
            # A message obmen recorded sending needs no reading: its package has it all.
            with session_scope() as session:
                known = session.scalar(select(EdoPackage.id).where(EdoPackage.message_id == info.message_id))
            message = None if known else client.message(box, info.message_id)
            with session_scope() as session:
                cursor = session.get(EdoCursor, box, with_for_update=True, populate_existing=True)
                assert cursor is not None
                if cursor.after_message_id != after:  # another run applied it: that run goes on
                    report.outcomes["overtaken"] += 1
                    return report
                report.outcomes[apply_message(session, info.message_id, message)] += 1
                cursor.after_message_id = after = info.message_id
    if report.outcomes:
        log.info("edo.fetched", pages=report.pages, outcomes=dict(report.outcomes))
    return report


def apply_message(session: Session, message_id: str, message: Message | None) -> str:
    """Route the package of an incoming message (found, adopted or made); what was done. ``message``
    (its documents, read from the operator) is needed only when no package has recorded ``message_id``."""
    package = _locked(session, EdoPackage.message_id == message_id)
    outcome = "routed"
    if package is None:
        if message is None:
            raise LookupError(f"message {message_id} is neither recorded nor read")
        keys = {d.custom_field for d in message.documents if d.custom_field}
        package = (
            _locked(session, EdoPackage.package_key.in_(keys), EdoPackage.direction == INBOUND)
            if keys
            else None
        )
        if package is not None and package.message_id is None:
            # Its worker died between SendMessage and the commit: the message is the package's.
            record_sent(
                session,
                package,
                message.message_id,
                message_sent_at(message),
                ids_by_position(message, package),
            )
            outcome = "adopted"
        elif package is not None and package.message_id != message.message_id:
            log.error("edo.sent_twice", package=package.package_key, message_id=message.message_id)
            package = None
        if package is None:
            package = _foreign(session, message)
            outcome = "foreign"
    if package.status != SENT:
        return "already"
    route(session, package)
    return outcome


def _locked(session: Session, *where: object) -> EdoPackage | None:
    return session.scalars(
        select(EdoPackage).where(*where).with_for_update().execution_options(populate_existing=True)  # type: ignore[arg-type]
    ).first()


def _foreign(session: Session, message: Message) -> EdoPackage:
    """A message obmen did not send: a package of its own, its files kept, its documents ``other``."""
    counterparty_id = session.scalar(
        select(EdoCounterparty.id).where(EdoCounterparty.box_address == message.from_box).limit(1)
    )
    package = EdoPackage(
        package_key=f"synerdocs:{message.message_id}",
        direction=INBOUND,
        status=SENT,
        box_id=default_box(session).id,
        counterparty_id=counterparty_id,
        from_box=message.from_box,
        to_box=get_settings().synerdocs_box,
        message_id=message.message_id,
        sent_at=message_sent_at(message),
    )
    session.add(package)
    session.flush()
    for position, received in enumerate(message.documents, start=1):
        signature = message.signature_of(received.id)
        content = received.content or b""
        document = EdoDocument(
            package_id=package.id,
            position=position,
            local_id=received.id,
            document_type=OTHER_TYPE,
            title=received.name or received.file_name or received.id,
            status=SENT,
            operator_document_id=received.id,
            signature_sha256=store_file(session, signature.raw) if signature and signature.raw else None,
        )
        session.add(document)
        session.flush()
        file_name = received.file_name or f"{received.id}.bin"
        session.add(
            EdoDocumentVersion(
                document_id=document.id,
                version=ORIGINAL,
                file_name=file_name,
                content_type=content_type(file_name),
                sha256=store_file(session, content),
                size=len(content),
            )
        )
    return package


def route(session: Session, package: EdoPackage) -> None:
    """Each document to its responsible by type (``other`` for a type no rule names), an e-mail to
    them, and the answer deadline in working days from the operator's time of sending."""
    assert package.sent_at is not None
    rules = {r.document_type: r for r in session.scalars(select(EdoRoutingRule))}
    terms = {t.document_type: t.working_days for t in session.scalars(select(EdoAnswerTerm))}
    sender = session.get(EdoCounterparty, package.counterparty_id) if package.counterparty_id else None
    for document in documents_of(session, package):
        rule = rules.get(document.document_type) or rules.get(OTHER_TYPE)
        if rule is None:
            document.status = UNROUTED
            document.record_error(f"no routing rule for {document.document_type!r} nor {OTHER_TYPE!r}")
            continue
        document.status = ROUTED
        document.responsible_id = rule.employee_id
        days = terms.get(document.document_type, terms.get(OTHER_TYPE))
        if days is not None:
            document.answer_due_at = working_deadline(package.sent_at, days)
            session.execute(
                insert_ignoring_conflicts(session, EdoAnswerDeadline).values(
                    kind="answer", document_id=document.id, due_at=document.answer_due_at
                )
            )
        employee = session.get(Employee, rule.employee_id)
        if employee is not None and employee.email:
            queue_letter(
                session,
                business_key=f"edo:routed:{document.id}",
                to_address=employee.email,
                to_name=employee.name,
                subject=f"ЭДО: {rule.title} «{document.title}»",
                text=_routed_text(document, rule.title, sender, package),
                source="edo",
            )
    package.status = ROUTED


def _routed_text(
    document: EdoDocument, title: str, sender: EdoCounterparty | None, package: EdoPackage
) -> str:
    assert package.sent_at is not None
    who = f"{sender.name} (ИНН {sender.inn})" if sender else package.from_box
    due = (
        f"Ответить до {document.answer_due_at.astimezone(MOSCOW):%d.%m.%Y %H:%M} (МСК)."
        if document.answer_due_at
        else "Срок ответа не установлен."
    )
    return (
        f"Через оператора ЭДО Synerdocs поступил документ «{document.title}» ({title}) от {who}, "
        f"отправлен {package.sent_at.astimezone(MOSCOW):%d.%m.%Y %H:%M} (МСК).\n{due}\n"
        f"Документ № {document.id} в obmen; ответ подписывается ЭП и отправляется через Synerdocs."
    )
