"""The company's answers after sending: the operator's print form with the signature stamp kept as
each document's version 2 and mailed to the customer, then the answer tracked until the customer
signs or refuses it."""

from __future__ import annotations

from datetime import datetime

import structlog
from sqlalchemy import select
from sqlalchemy.orm import Session

from integrations.mail.smtp import Attachment
from integrations.synerdocs.client import SynerdocsClient
from integrations.synerdocs.errors import (
    ContragentIsNotAuthorized,
    DocumentNotFound,
    PermanentFault,
    Unauthorized,
)
from integrations.synerdocs.model import DeliveryStatus, PrintForm, SignStatus
from models.db import db_now, insert_ignoring_conflicts
from models.edo import (
    DELIVERED,
    PRINT_FORM,
    REJECTED,
    SIGNED,
    STAMPED,
    EdoCounterparty,
    EdoDocumentVersion,
    EdoPackage,
    store_file,
)
from tasks.edo.sending import documents_of, sending_client
from tasks.machinery.workdays import MOSCOW
from tasks.mail.letters import queue_letter

log = structlog.get_logger(__name__)

DECIDED = frozenset({SIGNED, REJECTED})  # the customer signed or refused
# Faults that say the request itself is wrong: the legacy operation would answer them the same way.
NOT_A_PRINT_FAILURE = (Unauthorized, DocumentNotFound, ContragentIsNotAuthorized)


def print_form(client: SynerdocsClient, box: str, document_id: str) -> PrintForm:
    """The stamped print form by ``PrintDocument``, or by the legacy ``DownloadPdfDocument`` when the
    operator's print service refuses it (accounts on an older deployment are served only by that)."""
    try:
        return client.print_document(box, document_id)
    except PermanentFault as exc:
        if isinstance(exc, NOT_A_PRINT_FAILURE):
            raise
        log.warning("edo.print_fallback", document=document_id, reason=str(exc))
        return client.download_pdf(box, document_id)


def print_forms(session: Session, package: EdoPackage) -> None:
    """Fetch each document's print form (:func:`print_form`), keep it as version 2, mail them to the customer."""
    assert package.from_box is not None and package.sent_at is not None
    client = sending_client(session, package)
    attachments = []
    for document in documents_of(session, package):
        if document.operator_document_id is None:
            raise LookupError(f"document {document.id} has no operator id")
        form = print_form(client, package.from_box, document.operator_document_id)
        session.execute(
            insert_ignoring_conflicts(session, EdoDocumentVersion).values(
                document_id=document.id,
                version=PRINT_FORM,
                file_name=form.name,
                content_type="application/pdf",
                sha256=store_file(session, form.content),
                size=len(form.content),
            )
        )
        attachments.append(Attachment(form.name, "application/pdf", form.content))
    customer = session.get(EdoCounterparty, package.counterparty_id) if package.counterparty_id else None
    if customer is not None and customer.email:
        sent = package.sent_at.astimezone(MOSCOW)
        queue_letter(
            session,
            business_key=f"edo:answer:{package.package_key}",
            to_address=customer.email,
            to_name=customer.name,
            subject="Ответ АО «ВОЭК» через оператора ЭДО Synerdocs",
            text=(
                f"Здравствуйте!\n\nВам направлен ответ, подписанный электронной подписью, через оператора "
                f"ЭДО Synerdocs ({sent:%d.%m.%Y %H:%M} МСК). Печатные формы со штампом электронной подписи "
                "во вложении; подписать документы можно в личном кабинете."
            ),
            attachments=attachments,
            source="edo",
        )
    package.status = STAMPED


def track(session: Session, package: EdoPackage) -> None:
    """Ask the operator where each document is; the package follows its documents."""
    assert package.from_box is not None
    client = sending_client(session, package)
    now = db_now(session)
    documents = documents_of(session, package)
    for document in documents:
        if document.status in DECIDED or document.operator_document_id is None:
            continue
        status = client.document_status(package.from_box, document.operator_document_id)
        document.status_checked_at = now
        if status.delivery is DeliveryStatus.DELIVERED_TO_RECIPIENT:
            document.delivered_at = status.received_at or document.delivered_at or now
            document.status = DELIVERED
        if status.sign is SignStatus.SIGNED:
            document.status, document.signed_at = SIGNED, status.signed_at or now
            if status.recipient_signature is not None and status.recipient_signature.raw:
                document.recipient_signature_sha256 = store_file(session, status.recipient_signature.raw)
        elif status.sign is SignStatus.SIGN_REJECTED:
            document.status, document.rejected_at = REJECTED, status.rejected_at or now
            document.reject_comment = status.comment
    statuses = {d.status for d in documents}
    if statuses <= DECIDED:
        package.status = REJECTED if REJECTED in statuses else SIGNED
    elif statuses <= DECIDED | {DELIVERED}:
        package.status = DELIVERED
    package.updated_at = now  # the next beat run asks again after OBMEN_EDO_TRACK_INTERVAL_S


def tracked_since(session: Session, before: datetime, limit: int) -> list[int]:
    """Answers waiting for the customer that were not asked about since ``before``."""
    return list(
        session.scalars(
            select(EdoPackage.id)
            .where(
                EdoPackage.status.in_((STAMPED, DELIVERED)),
                EdoPackage.parked_at.is_(None),
                EdoPackage.updated_at < before,
            )
            .order_by(EdoPackage.updated_at)
            .limit(limit)
            .with_for_update(skip_locked=True)
        )
    )
