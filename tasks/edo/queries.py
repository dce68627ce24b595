"""What people and other services read of the EDO registers: a customer's packages and their
statuses, the company's incoming documents by status, the overdue answers, a document's versions,
and a package's «XML» tab (every SOAP exchange about it, raw). Plain functions over a session,
returning typed rows (the API, the CLI and the console call the same ones)."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import Any

from sqlalchemy import func, or_, select
from sqlalchemy.orm import Session

from integrations.synerdocs.client import SYSTEM
from models.db import db_now
from models.edo import (
    INBOUND,
    EdoCounterparty,
    EdoDocument,
    EdoDocumentVersion,
    EdoFile,
    EdoPackage,
)
from models.exchange_log import ExchangeLog


class NotFound(LookupError):
    pass


@dataclass(frozen=True)
class VersionRow:
    version: int
    file_name: str
    content_type: str
    size: int
    sha256: str


@dataclass(frozen=True)
class DocumentRow:
    id: int
    position: int
    document_type: str
    title: str
    status: str
    operator_document_id: str | None
    responsible_id: str | None
    answer_due_at: datetime | None
    answered_at: datetime | None
    signed_at: datetime | None
    rejected_at: datetime | None
    reject_comment: str | None
    versions: tuple[VersionRow, ...]


@dataclass(frozen=True)
class PackageRow:
    id: int
    package_key: str
    direction: str
    status: str
    customer_inn: str | None
    customer_name: str | None
    message_id: str | None
    sent_at: datetime | None
    answers_document_id: int | None
    last_error: str | None
    parked: bool
    created_at: datetime
    documents: tuple[DocumentRow, ...]


@dataclass(frozen=True)
class IncomingRow:
    document_id: int
    package_id: int
    title: str
    document_type: str
    status: str
    customer_inn: str | None
    customer_name: str | None
    responsible_id: str | None
    sent_at: datetime | None
    answer_due_at: datetime | None
    answered_at: datetime | None


@dataclass(frozen=True)
class ExchangeRow:
    id: int
    created_at: datetime
    operation: str
    response_status: int | None
    duration_ms: float | None
    error: str | None
    request_body: str | None
    response_body: str | None


@dataclass(frozen=True)
class FileRow:
    file_name: str
    content_type: str
    content: bytes


def package(session: Session, package_id: int) -> PackageRow:
    row = session.get(EdoPackage, package_id)
    if row is None:
        raise NotFound(f"no EDO package {package_id}")
    return _packages(session, [row])[0]


def customer_packages(
    session: Session, inn: str, kpp: str | None = None, *, limit: int = 100, offset: int = 0
) -> list[PackageRow]:
    """A customer's packages either way (its own and the company's answers), newest first."""
    rows = session.scalars(
        select(EdoPackage)
        .join(EdoCounterparty, EdoCounterparty.id == EdoPackage.counterparty_id)
        .where(EdoCounterparty.inn == inn, EdoCounterparty.kpp == (kpp or ""))
        .order_by(EdoPackage.id.desc())
        .limit(limit)
        .offset(offset)
    ).all()
    return _packages(session, list(rows))


def incoming(
    session: Session, status: str | None = None, *, limit: int = 100, offset: int = 0
) -> list[IncomingRow]:
    """The company's incoming documents, newest first, of one status (``routed``, ``unrouted``,
    ``answered`` …) or all."""
    query = _incoming().order_by(EdoDocument.id.desc()).limit(limit).offset(offset)
    if status is not None:
        query = query.where(EdoDocument.status == status)
    return [IncomingRow(*r) for r in session.execute(query)]


def _overdue(session: Session, now: datetime | None) -> Any:
    return (EdoDocument.answered_at.is_(None), EdoDocument.answer_due_at < (now or db_now(session)))


def overdue(
    session: Session, now: datetime | None = None, *, limit: int = 100, offset: int = 0
) -> list[IncomingRow]:
    """Incoming documents past their answer date and not answered, the most overdue first."""
    query = (
        _incoming()
        .where(*_overdue(session, now))
        .order_by(EdoDocument.answer_due_at, EdoDocument.id)
        .limit(limit)
        .offset(offset)
    )
    return [IncomingRow(*r) for r in session.execute(query)]


def overdue_count(session: Session, now: datetime | None = None) -> int:
    """How many incoming documents wait past their answer date (the console's start page)."""
    return session.scalar(select(func.count()).select_from(EdoDocument).where(*_overdue(session, now))) or 0


def version_file(session: Session, document_id: int, version: int) -> FileRow:
    """A version's bytes: 1 the original as signed, 2 the operator's stamped print form."""
    found = session.execute(
        select(EdoDocumentVersion.file_name, EdoDocumentVersion.content_type, EdoFile.content)
        .join(EdoFile, EdoFile.sha256 == EdoDocumentVersion.sha256)
        .where(EdoDocumentVersion.document_id == document_id, EdoDocumentVersion.version == version)
    ).first()
    if found is None:
        raise NotFound(f"document {document_id} has no version {version}")
    return FileRow(found[0], found[1], bytes(found[2]))


def xml_log(session: Session, package_id: int) -> list[ExchangeRow]:
    """The package's «XML» tab: each SOAP request and answer about it, oldest first."""
    row = session.get(EdoPackage, package_id)
    if row is None:
        raise NotFound(f"no EDO package {package_id}")
    ids = [row.message_id] if row.message_id else []
    ids += [
        d
        for d in session.scalars(
            select(EdoDocument.operator_document_id).where(
                EdoDocument.package_id == row.id, EdoDocument.operator_document_id.is_not(None)
            )
        )
        if d
    ]
    query = (
        select(
            ExchangeLog.id,
            ExchangeLog.created_at,
            ExchangeLog.operation,
            ExchangeLog.response_status,
            ExchangeLog.duration_ms,
            ExchangeLog.error,
            ExchangeLog.request_body,
            ExchangeLog.response_body,
        )
        .where(ExchangeLog.system == SYSTEM)
        .where(or_(ExchangeLog.business_key == row.package_key, ExchangeLog.correlation_id.in_(ids)))
        .order_by(ExchangeLog.id)
    )
    return [ExchangeRow(*r) for r in session.execute(query)]


def _incoming() -> Any:  # a Select of IncomingRow's columns
    return (
        select(
            EdoDocument.id,
            EdoDocument.package_id,
            EdoDocument.title,
            EdoDocument.document_type,
            EdoDocument.status,
            EdoCounterparty.inn,
            EdoCounterparty.name,
            EdoDocument.responsible_id,
            EdoPackage.sent_at,
            EdoDocument.answer_due_at,
            EdoDocument.answered_at,
        )
        .join(EdoPackage, EdoPackage.id == EdoDocument.package_id)
        .outerjoin(EdoCounterparty, EdoCounterparty.id == EdoPackage.counterparty_id)
        .where(EdoPackage.direction == INBOUND, EdoPackage.message_id.is_not(None))
    )


def _packages(session: Session, rows: list[EdoPackage]) -> list[PackageRow]:
    ids = [r.id for r in rows]
    documents = session.scalars(
        select(EdoDocument).where(EdoDocument.package_id.in_(ids)).order_by(EdoDocument.position)
    ).all()
    versions: dict[int, list[VersionRow]] = {}
    for v in session.scalars(
        select(EdoDocumentVersion)
        .where(EdoDocumentVersion.document_id.in_([d.id for d in documents]))
        .order_by(EdoDocumentVersion.version)
    ):
        versions.setdefault(v.document_id, []).append(
            VersionRow(v.version, v.file_name, v.content_type, v.size, v.sha256)
        )
    by_package: dict[int, list[DocumentRow]] = {}
    for d in documents:
        by_package.setdefault(d.package_id, []).append(
            DocumentRow(
                d.id,
                d.position,
                d.document_type,
                d.title,
                d.status,
                d.operator_document_id,
                d.responsible_id,
                d.answer_due_at,
                d.answered_at,
                d.signed_at,
                d.rejected_at,
                d.reject_comment,
                tuple(versions.get(d.id, ())),
            )
        )
    customers = {
        c.id: c
        for c in session.scalars(
            select(EdoCounterparty).where(EdoCounterparty.id.in_({r.counterparty_id for r in rows}))
        )
    }
    result = []
    for r in rows:
        customer = customers.get(r.counterparty_id) if r.counterparty_id else None
        result.append(
            PackageRow(
                r.id,
                r.package_key,
                r.direction,
                r.status,
                customer.inn if customer else None,
                customer.name if customer else None,
                r.message_id,
                r.sent_at,
                r.answers_document_id,
                r.last_error,
                r.is_parked,
                r.created_at,
                tuple(by_package.get(r.id, ())),
            )
        )
    return result
