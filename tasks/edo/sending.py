"""Sending a package: the counterparty's box found or registered, the signatures checked, the message
sent once.

``check`` ends in ``sending``, committed before any ``SendMessage``: from then on the message may
have reached the operator whatever happens to the worker, so ``send`` first looks for it at the
operator by the package key (every document's ``CustomField``), from ``cursor_before`` — the last
message between the same two boxes obmen recorded before this one was checked — and sends only when
it is not there. A worker killed between ``SendMessage`` and the commit therefore costs a lookup,
never a second message.
"""

from __future__ import annotations

from dataclasses import asdict
from datetime import datetime

import structlog
from sqlalchemy import select, update
from sqlalchemy.orm import Session, aliased

from integrations.errors import PermanentError
from integrations.signatures.detached import SignatureRefused, check_detached
from integrations.synerdocs.client import SynerdocsClient
from integrations.synerdocs.errors import SynerdocsError, Unauthorized
from integrations.synerdocs.model import Message, NewSubscriber, OrganizationType, OutgoingDocument
from models.edo import (
    ANSWERED,
    INBOUND,
    ORIGINAL,
    OUTBOUND,
    REFUSED,
    SENDING,
    SENT,
    STAMPING,
    EdoAnswerDeadline,
    EdoBox,
    EdoCounterparty,
    EdoDocument,
    EdoDocumentVersion,
    EdoFile,
    EdoPackage,
)
from tasks.edo.chain import enqueue_next
from tasks.edo.clients import NoAccount, box_client, company_client
from tasks.edo.register import person_names
from tasks.machinery.deadlines import CANCELLED, WAITING

log = structlog.get_logger(__name__)


def documents_of(session: Session, package: EdoPackage) -> list[EdoDocument]:
    return list(
        session.scalars(
            select(EdoDocument).where(EdoDocument.package_id == package.id).order_by(EdoDocument.position)
        )
    )


def signed_files(session: Session, package: EdoPackage) -> list[tuple[EdoDocument, str, bytes, bytes]]:
    """Each document of the package with its file name, its original's bytes and its signature's, in
    one query (a package's files are sent together, so they are read together)."""
    content, signature = aliased(EdoFile), aliased(EdoFile)
    rows = session.execute(
        select(EdoDocument, EdoDocumentVersion.file_name, content.content, signature.content)
        .join(
            EdoDocumentVersion,
            (EdoDocumentVersion.document_id == EdoDocument.id) & (EdoDocumentVersion.version == ORIGINAL),
        )
        .join(content, content.sha256 == EdoDocumentVersion.sha256)
        .join(signature, signature.sha256 == EdoDocument.signature_sha256)
        .where(EdoDocument.package_id == package.id)
        .order_by(EdoDocument.position)
    ).all()
    return [(d, name, bytes(c), bytes(sig)) for d, name, c, sig in rows]


def refuse(session: Session, package: EdoPackage, reason: str) -> None:
    """A clear refusal: the package and its documents ``refused``, the reason kept; nothing was sent."""
    package.status = REFUSED
    package.record_error(reason)
    session.execute(update(EdoDocument).where(EdoDocument.package_id == package.id).values(status=REFUSED))
    log.warning("edo.refused", package=package.package_key, reason=reason)


# --- check --------------------------------------------------------------------------------------------
def check(session: Session, package: EdoPackage) -> None:
    """Find or register the counterparty's box, check every signature, note where the lookup of a
    resend would start, and hand the package to sending."""
    box = session.get(EdoBox, package.box_id)
    # The counterparty's lock: two packages of a new customer register it once, the second finding its box.
    counterparty = (
        session.get(EdoCounterparty, package.counterparty_id, with_for_update=True, populate_existing=True)
        if package.counterparty_id
        else None
    )
    if box is None or counterparty is None:
        raise LookupError(f"package {package.package_key} has no box or counterparty")
    counterparty_box = ensure_box(counterparty, company_client())
    if package.direction == INBOUND:
        package.from_box, package.to_box = counterparty_box, box.box_address
        sender_inn = counterparty.inn
    else:
        package.from_box, package.to_box = box.box_address, counterparty_box
        sender_inn = box.organization_inn
    try:
        sending_client(session, package)
    except NoAccount as exc:
        refuse(session, package, str(exc))
        return
    for document, _, content, signature in signed_files(session, package):
        try:
            info = check_detached(signature, content, sender_inn=sender_inn)
        except SignatureRefused as exc:
            refuse(session, package, f"document {document.position} «{document.title}»: {exc.reason}: {exc}")
            return
        document.signature_info = {
            k: (v.isoformat() if isinstance(v, datetime) else list(v) if isinstance(v, tuple) else v)
            for k, v in asdict(info).items()
        }
    package.cursor_before = session.scalar(
        select(EdoPackage.message_id)
        .where(
            EdoPackage.from_box == package.from_box,
            EdoPackage.to_box == package.to_box,
            EdoPackage.message_id.is_not(None),
        )
        .order_by(EdoPackage.sent_at.desc(), EdoPackage.id.desc())
        .limit(1)
    )
    package.status = SENDING
    enqueue_next(session, package)


def ensure_box(counterparty: EdoCounterparty, client: SynerdocsClient) -> str:
    """The counterparty's box: known, found by ИНН/КПП at the operator, or registered there now."""
    if counterparty.box_address:
        return counterparty.box_address
    kpp = counterparty.kpp or None
    found = [o for o in client.find_organizations(counterparty.inn, kpp) if o.box_address]
    if found:
        organization = found[0]
        counterparty.box_address = organization.box_address
        counterparty.operator_code = organization.operator_code
        counterparty.organization_id = organization.organization_id
    else:
        counterparty.box_address = _register(counterparty, client)
        counterparty.registered_by_us = True
    counterparty.looked_up_at = datetime.now().astimezone()
    assert counterparty.box_address is not None
    return counterparty.box_address


def _register(counterparty: EdoCounterparty, client: SynerdocsClient) -> str:
    emails = (counterparty.email,) if counterparty.email else ()
    if len(counterparty.inn) == 10:
        subscriber = NewSubscriber(
            inn=counterparty.inn,
            organization_type=OrganizationType.LEGAL_ENTITY,
            name=counterparty.name,
            kpp=counterparty.kpp,
            emails=emails,
        )
    else:
        kind, last, first, middle = person_names(counterparty.name)
        subscriber = NewSubscriber(
            inn=counterparty.inn,
            organization_type=kind,
            last_name=last,
            first_name=first,
            middle_name=middle,
            emails=emails,
        )
    return client.create_subscriber(subscriber).box_address


def sending_client(session: Session, package: EdoPackage) -> SynerdocsClient:
    """The account that may send from the package's box: the box register's row for it, else the
    company's own account for the company's box and for the boxes it registered."""
    own = session.scalars(select(EdoBox).where(EdoBox.box_address == package.from_box, EdoBox.active)).first()
    if own is not None:
        return box_client(own)
    registered = session.scalar(
        select(EdoCounterparty.registered_by_us).where(EdoCounterparty.box_address == package.from_box)
    )
    if registered:
        return company_client()
    raise NoAccount(
        f"no account may send from box {package.from_box}: the customer's box was not registered by "
        "the company; add its credentials to the box register (obmen edo box-add)"
    )


# --- send ---------------------------------------------------------------------------------------------
def send(session: Session, package: EdoPackage) -> None:
    """Send the package unless the operator has it already; record the operator's time."""
    assert package.from_box is not None and package.to_box is not None
    client = sending_client(session, package)
    found = client.find_sent(
        package.from_box, package.to_box, package.package_key, after_message_id=package.cursor_before
    )
    if found is not None:
        log.warning("edo.found_sent", package=package.package_key, message_id=found.message_id)
        record_sent(
            session, package, found.message_id, message_sent_at(found), ids_by_position(found, package)
        )
        return
    files = signed_files(session, package)
    outgoing = [
        OutgoingDocument(
            local_id=d.local_id,
            file_name=file_name,
            content=content,
            signature=signature,
            name=d.title,
            need_sign=package.direction == OUTBOUND,
            custom_field=package.package_key,
        )
        for d, file_name, content, signature in files
    ]
    documents = [d for d, *_ in files]
    try:
        sent = client.send_message(
            package.from_box, package.to_box, outgoing, business_key=package.package_key
        )
    except SynerdocsError as exc:
        # The operator (or the client, before sending) refused this message: a clear refusal. A
        # rejected login is the account's problem, not the package's: that step is parked instead.
        if exc.delivery != "maybe" and isinstance(exc, PermanentError) and not isinstance(exc, Unauthorized):
            refuse(session, package, f"the operator refused it: {exc}")
            return
        raise
    ids = {d.position: sent.document_ids[d.local_id] for d in documents}
    record_sent(session, package, sent.message_id, sent.sent_at, ids)


def message_sent_at(message: Message) -> datetime:
    if message.sent_at is None:
        raise ValueError(f"message {message.message_id} carries no SentDate")
    return message.sent_at


def ids_by_position(message: Message, package: EdoPackage) -> dict[int, str]:
    """Our documents are sent in their order, one message per package: the n-th is position n."""
    return {
        i: d.id for i, d in enumerate(message.documents, start=1) if d.custom_field == package.package_key
    }


def record_sent(
    session: Session, package: EdoPackage, message_id: str, sent_at: datetime, ids: dict[int, str]
) -> None:
    """The operator has the message: its id and time, each document's operator id; an answer
    marks the document it answers answered at the operator's time."""
    package.message_id = message_id
    package.sent_at = sent_at
    package.status = SENT if package.direction == INBOUND else STAMPING
    for document in documents_of(session, package):
        document.operator_document_id = ids.get(document.position)
        document.status = SENT
    if package.answers_document_id is not None:
        mark_answered(session, package.answers_document_id, sent_at)
    if package.direction == OUTBOUND:
        enqueue_next(session, package)
    log.info("edo.sent", package=package.package_key, message_id=message_id, at=sent_at.isoformat())


def mark_answered(session: Session, document_id: int, at: datetime) -> None:
    """The incoming document was answered at ``at`` (the operator's time); its deadline is moot."""
    session.execute(
        update(EdoDocument)
        .where(EdoDocument.id == document_id, EdoDocument.answered_at.is_(None))
        .values(answered_at=at, status=ANSWERED)
    )
    session.execute(
        update(EdoAnswerDeadline)
        .where(EdoAnswerDeadline.document_id == document_id, EdoAnswerDeadline.status == WAITING)
        .values(status=CANCELLED, result=f"answered {at.isoformat()}")
    )
