"""Registers of the legally significant EDO flow (seed 002, Synerdocs): the company's boxes and who may
send from them, counterparties and their boxes, packages of signed documents with their versions
(the original, the operator's stamped print form), routing of incoming documents to employees,
answer terms in working days, and the incoming cursor. Every SOAP exchange goes to ``exchange_log``
(``system = 'synerdocs'``, ``business_key`` = the package key).

Files are kept once per content in ``edo_files`` (bytea, keyed by SHA-256): a document, its print
form and each detached signature point at their bytes by hash, and the same file sent twice is
stored once. Box passwords are encrypted at rest (Fernet, key ``OBMEN_SYNERDOCS_CREDENTIALS_KEY``).
"""

from __future__ import annotations

import hashlib
from collections.abc import Iterable
from datetime import datetime
from typing import Any, ClassVar

from cryptography.fernet import Fernet, InvalidToken
from sqlalchemy import (
    BigInteger,
    Boolean,
    ForeignKey,
    Index,
    Integer,
    LargeBinary,
    String,
    Text,
    UniqueConstraint,
    func,
    select,
    text,
)
from sqlalchemy.dialects.postgresql import insert as pg_insert
from sqlalchemy.dialects.sqlite import insert as sqlite_insert
from sqlalchemy.orm import Mapped, Session, mapped_column

from models.base import Base, BigId, UTCDateTime, utcnow
from models.gauges import Sample, register_gauge
from models.steps import StepMixin

# --- package directions and statuses ------------------------------------------------------------------
INBOUND = "in"  # a customer's package to the company (from the cabinet, or read from the operator)
OUTBOUND = "out"  # the company's signed answer to a customer

RECEIVED = "received"  # stored with its files; nothing sent yet
# The counterparty's box is known and the signatures passed obmen's checks, committed before any
# SendMessage: from here the message may have gone, so it is looked for by the key before sending.
SENDING = "sending"
SENT = "sent"  # the operator accepted it: message id and the operator's time are recorded
STAMPING = "stamping"  # an answer the operator accepted: its print forms are to be fetched
STAMPED = "stamped"  # an answer: the print forms are version 2 and the customer was told
DELIVERED = "delivered"
SIGNED = "signed"  # the recipient signed (an answer: the print form is version 2)
REJECTED = "rejected"  # the recipient refused to sign
REFUSED = "refused"  # obmen or the operator refused it (a bad signature, a file over the cap …)
ROUTED = "routed"  # an incoming package in the company's box: its documents went to their responsibles
PACKAGE_STATUSES = (RECEIVED, SENDING, SENT, STAMPING, STAMPED, DELIVERED, SIGNED, REJECTED, REFUSED, ROUTED)

# Statuses of an incoming document on the company side (besides the flow's above).
UNROUTED = "unrouted"  # no routing rule for its type, nor for ``other``: a person routes it
ANSWERED = "answered"  # the company's answer was sent: the operator fixed its time

# --- document versions ---------------------------------------------------------------------------------
ORIGINAL = 1  # the file as signed
PRINT_FORM = 2  # the operator's PDF with the signature stamp («синий штамп»)


class CredentialsKeyMissing(RuntimeError):
    """A box password is to be stored or read without ``OBMEN_SYNERDOCS_CREDENTIALS_KEY``."""


class EdoBox(Base):
    """«Наши абоненты системы обмена документами»: the company's boxes at the operator and their
    credentials. The password is stored encrypted; the key is a setting, never in the database."""

    __tablename__ = "edo_boxes"

    id: Mapped[int] = mapped_column(BigId, primary_key=True)
    box_address: Mapped[str] = mapped_column(String(100), nullable=False, unique=True)
    operator: Mapped[str] = mapped_column(String(40), default="synerdocs", nullable=False)
    organization_inn: Mapped[str] = mapped_column(String(12), nullable=False)
    organization_kpp: Mapped[str] = mapped_column(String(9), default="", nullable=False)
    name: Mapped[str] = mapped_column(String(500), nullable=False)
    login: Mapped[str] = mapped_column(String(200), nullable=False)
    password_encrypted: Mapped[bytes] = mapped_column(LargeBinary, nullable=False)
    is_default: Mapped[bool] = mapped_column(Boolean, default=False, nullable=False)
    active: Mapped[bool] = mapped_column(Boolean, default=True, nullable=False)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime(), server_default=func.now(), nullable=False)
    updated_at: Mapped[datetime] = mapped_column(
        UTCDateTime(), server_default=func.now(), onupdate=func.now(), nullable=False
    )

    def set_password(self, password: str, key: str | None) -> None:
        self.password_encrypted = _fernet(key).encrypt(password.encode("utf-8"))

    def password(self, key: str | None) -> str:
        try:
            return _fernet(key).decrypt(self.password_encrypted).decode("utf-8")
        except InvalidToken as exc:
            raise CredentialsKeyMissing(
                f"the password of box {self.box_address} was encrypted with another key"
            ) from exc


def _fernet(key: str | None) -> Fernet:
    if not key:
        raise CredentialsKeyMissing("OBMEN_SYNERDOCS_CREDENTIALS_KEY is not set")
    return Fernet(key.encode("ascii"))


class EdoSender(Base):
    """«Пользователи систем обмена документами»: who may send from a box (a cabinet account, a console
    user, an employee); a send by anyone else is refused before it reaches the operator."""

    __tablename__ = "edo_senders"

    id: Mapped[int] = mapped_column(BigId, primary_key=True)
    box_id: Mapped[int] = mapped_column(ForeignKey("edo_boxes.id", ondelete="CASCADE"), nullable=False)
    user_login: Mapped[str] = mapped_column(String(200), nullable=False)
    employee_id: Mapped[str | None] = mapped_column(ForeignKey("employees.id"))
    active: Mapped[bool] = mapped_column(Boolean, default=True, nullable=False)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime(), server_default=func.now(), nullable=False)

    __table_args__ = (UniqueConstraint("box_id", "user_login"),)


class EdoCounterparty(Base):
    """A customer and its box at the operator, as the lookup by ИНН/КПП found it or registration made it.

    ``kpp`` is empty for a sole trader (ИП) or a person. ``registered_by_us`` marks a box obmen
    created (``CreateNonActiveSubscriber``), which the company's account may send from.
    """

    __tablename__ = "edo_counterparties"

    id: Mapped[int] = mapped_column(BigId, primary_key=True)
    inn: Mapped[str] = mapped_column(String(12), nullable=False)
    kpp: Mapped[str] = mapped_column(String(9), default="", nullable=False)
    name: Mapped[str] = mapped_column(String(500), nullable=False)
    email: Mapped[str | None] = mapped_column(String(320))
    box_address: Mapped[str | None] = mapped_column(String(100))
    operator_code: Mapped[str | None] = mapped_column(String(10))
    organization_id: Mapped[str | None] = mapped_column(String(64))
    registered_by_us: Mapped[bool] = mapped_column(Boolean, default=False, nullable=False)
    looked_up_at: Mapped[datetime | None] = mapped_column(UTCDateTime())
    created_at: Mapped[datetime] = mapped_column(UTCDateTime(), server_default=func.now(), nullable=False)

    __table_args__ = (UniqueConstraint("inn", "kpp"),)


class EdoPackage(StepMixin, Base):
    """«Сообщения систем обмена документами»: one message of signed documents, either way.

    ``package_key`` is ours, unique, and travels as every document's ``CustomField``: after a worker
    died between ``SendMessage`` and the commit (``status = 'sending'``), the message is found at the
    operator by it instead of being sent again. ``cursor_before`` is the last message between the two
    boxes before sending, where that search starts. ``message_id`` (the operator's) is unique, so the
    incoming cursor applies each message once. ``sent_at`` is the operator's time of the sending —
    the time an answer was given.
    """

    __tablename__ = "edo_packages"
    TERMINAL: ClassVar[frozenset[str]] = frozenset({SIGNED, REJECTED, REFUSED, ROUTED})

    id: Mapped[int] = mapped_column(BigId, primary_key=True)
    package_key: Mapped[str] = mapped_column(String(100), nullable=False, unique=True)
    direction: Mapped[str] = mapped_column(String(3), nullable=False)
    status: Mapped[str] = mapped_column(String(20), default=RECEIVED, nullable=False, index=True)
    box_id: Mapped[int] = mapped_column(ForeignKey("edo_boxes.id"), nullable=False, index=True)
    counterparty_id: Mapped[int | None] = mapped_column(ForeignKey("edo_counterparties.id"), index=True)
    sender_login: Mapped[str | None] = mapped_column(String(200))
    from_box: Mapped[str | None] = mapped_column(String(100))
    to_box: Mapped[str | None] = mapped_column(String(100))
    message_id: Mapped[str | None] = mapped_column(String(64), unique=True)
    cursor_before: Mapped[str | None] = mapped_column(String(64))
    sent_at: Mapped[datetime | None] = mapped_column(UTCDateTime())
    # The incoming document (edo_documents.id) this outbound package answers, if any; no foreign key,
    # since documents point at their package (a cycle SQLite could not create).
    answers_document_id: Mapped[int | None] = mapped_column(BigInteger)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime(), server_default=func.now(), nullable=False)


class EdoDocument(StepMixin, Base):
    """A document of a package: its type, its signature check, its flow at the operator, and for an
    incoming one the responsible employee and the answer's due date.

    ``status`` follows the operator's flow (``received`` … ``sent``, ``delivered``, ``signed``,
    ``rejected``); the answer due date is ``answer_due_at`` (working days by the document type's
    term), met when ``answered_at`` is set.
    """

    __tablename__ = "edo_documents"
    TERMINAL: ClassVar[frozenset[str]] = frozenset({SIGNED, REJECTED, REFUSED, ANSWERED})

    id: Mapped[int] = mapped_column(BigId, primary_key=True)
    package_id: Mapped[int] = mapped_column(ForeignKey("edo_packages.id", ondelete="CASCADE"), nullable=False)
    position: Mapped[int] = mapped_column(Integer, nullable=False)
    local_id: Mapped[str] = mapped_column(String(64), nullable=False)  # the id within our message
    document_type: Mapped[str] = mapped_column(String(60), nullable=False)  # ours: application, complaint …
    title: Mapped[str] = mapped_column(String(500), nullable=False)
    status: Mapped[str] = mapped_column(String(20), default=RECEIVED, nullable=False)
    operator_document_id: Mapped[str | None] = mapped_column(String(64), unique=True)
    signature_sha256: Mapped[str | None] = mapped_column(ForeignKey("edo_files.sha256"))
    # What obmen's check learnt of the signer: subject, certificate serial, ИНН, signing time …
    signature_info: Mapped[dict[str, Any] | None] = mapped_column()
    recipient_signature_sha256: Mapped[str | None] = mapped_column(ForeignKey("edo_files.sha256"))
    delivered_at: Mapped[datetime | None] = mapped_column(UTCDateTime())
    signed_at: Mapped[datetime | None] = mapped_column(UTCDateTime())
    rejected_at: Mapped[datetime | None] = mapped_column(UTCDateTime())
    reject_comment: Mapped[str | None] = mapped_column(Text)
    status_checked_at: Mapped[datetime | None] = mapped_column(UTCDateTime())
    responsible_id: Mapped[str | None] = mapped_column(ForeignKey("employees.id"))
    answer_due_at: Mapped[datetime | None] = mapped_column(UTCDateTime())
    answered_at: Mapped[datetime | None] = mapped_column(UTCDateTime())
    created_at: Mapped[datetime] = mapped_column(UTCDateTime(), server_default=func.now(), nullable=False)

    __table_args__ = (
        UniqueConstraint("package_id", "position"),
        # The overdue list reads only unanswered documents with a due date: small however large.
        Index(
            "ix_edo_documents_unanswered_due",
            "answer_due_at",
            postgresql_where=text("answered_at IS NULL AND answer_due_at IS NOT NULL"),
            sqlite_where=text("answered_at IS NULL AND answer_due_at IS NOT NULL"),
        ),
    )


class EdoDocumentVersion(Base):
    """A version of a document: 1 the original as signed, 2 the operator's stamped print form."""

    __tablename__ = "edo_document_versions"

    id: Mapped[int] = mapped_column(BigId, primary_key=True)
    document_id: Mapped[int] = mapped_column(
        ForeignKey("edo_documents.id", ondelete="CASCADE"), nullable=False
    )
    version: Mapped[int] = mapped_column(Integer, nullable=False)
    file_name: Mapped[str] = mapped_column(String(255), nullable=False)
    content_type: Mapped[str] = mapped_column(String(100), nullable=False)
    sha256: Mapped[str] = mapped_column(ForeignKey("edo_files.sha256"), nullable=False)
    size: Mapped[int] = mapped_column(Integer, nullable=False)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime(), server_default=func.now(), nullable=False)

    __table_args__ = (UniqueConstraint("document_id", "version"),)


class EdoFile(Base):
    """File contents, once per SHA-256 (documents, print forms, detached signatures)."""

    __tablename__ = "edo_files"

    sha256: Mapped[str] = mapped_column(String(64), primary_key=True)
    size: Mapped[int] = mapped_column(Integer, nullable=False)
    content: Mapped[bytes] = mapped_column(LargeBinary, nullable=False)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime(), server_default=func.now(), nullable=False)


def store_file(session: Session, content: bytes) -> str:
    """Keep ``content`` once (concurrent writers of the same bytes do not collide); its SHA-256."""
    digest = hashlib.sha256(content).hexdigest()
    values = {"sha256": digest, "size": len(content), "content": content}
    dialect = session.get_bind().dialect.name
    insert = pg_insert if dialect == "postgresql" else sqlite_insert
    session.execute(insert(EdoFile).values(**values).on_conflict_do_nothing(index_elements=["sha256"]))
    return digest


class EdoRoutingRule(Base):
    """Who handles an incoming document of a type (заявка на ТП, жалоба, обращение …)."""

    __tablename__ = "edo_routing_rules"

    document_type: Mapped[str] = mapped_column(String(60), primary_key=True)
    title: Mapped[str] = mapped_column(String(300), nullable=False)
    employee_id: Mapped[str] = mapped_column(ForeignKey("employees.id"), nullable=False)


class EdoAnswerTerm(Base):
    """How many working days (the official production calendar) the company has to answer a type."""

    __tablename__ = "edo_answer_terms"

    document_type: Mapped[str] = mapped_column(String(60), primary_key=True)
    working_days: Mapped[int] = mapped_column(Integer, nullable=False)


class EdoAnswerDeadline(StepMixin, Base):
    """The answer deadline of an incoming document, a row for the one deadline sweeper
    (``tasks.machinery.deadlines``): ``waiting`` → ``due`` → ``fired`` (the responsible was told the
    answer is overdue), or ``cancelled`` (answered before it fell due; the sweep cancels the moot)."""

    __tablename__ = "edo_answer_deadlines"
    TERMINAL: ClassVar[frozenset[str]] = frozenset({"fired", "cancelled"})

    id: Mapped[int] = mapped_column(BigId, primary_key=True)
    kind: Mapped[str] = mapped_column(String(20), default="answer", nullable=False)
    document_id: Mapped[int] = mapped_column(
        ForeignKey("edo_documents.id", ondelete="CASCADE"), nullable=False, unique=True
    )
    due_at: Mapped[datetime] = mapped_column(UTCDateTime(), nullable=False)
    status: Mapped[str] = mapped_column(String(20), default="waiting", nullable=False)
    fired_at: Mapped[datetime | None] = mapped_column(UTCDateTime())
    result: Mapped[str | None] = mapped_column(String(200))
    created_at: Mapped[datetime] = mapped_column(UTCDateTime(), server_default=func.now(), nullable=False)

    __table_args__ = (
        Index(
            "ix_edo_answer_deadlines_waiting_due",
            "due_at",
            postgresql_where=text("status = 'waiting'"),
            sqlite_where=text("status = 'waiting'"),
        ),
    )


class EdoCursor(Base):
    """Where the incoming cursor (``GetMessages``) of a box was read up to: the last message applied."""

    __tablename__ = "edo_cursors"

    box_address: Mapped[str] = mapped_column(String(100), primary_key=True)
    after_message_id: Mapped[str | None] = mapped_column(String(64))
    updated_at: Mapped[datetime] = mapped_column(
        UTCDateTime(), server_default=func.now(), onupdate=func.now(), nullable=False
    )


@register_gauge(
    "obmen_edo_packages", "EDO packages in the register, per direction and status", ("direction", "status")
)
def _packages(session: Session) -> Iterable[Sample]:
    query = select(EdoPackage.direction, EdoPackage.status, func.count()).group_by(
        EdoPackage.direction, EdoPackage.status
    )
    for direction, status, count in session.execute(query):
        yield {"direction": direction, "status": status}, count


@register_gauge("obmen_edo_answers_overdue", "Incoming EDO documents past their answer date, unanswered")
def _overdue(session: Session) -> Iterable[Sample]:
    overdue = session.scalar(
        select(func.count())
        .select_from(EdoDocument)
        .where(EdoDocument.answered_at.is_(None), EdoDocument.answer_due_at < utcnow())
    )
    yield {}, overdue or 0
