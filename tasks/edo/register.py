"""The EDO registers as the flow writes them: the box register and who may send, routing rules and
answer terms, and packages taken in (a customer's from the cabinet, the company's answer).

A package is taken in with its files already in ``edo_files`` (the gateway streams each upload into
the register first, one at a time); the entry's arguments name them by SHA-256, so no file ever
travels through the broker. Taking in the same ``package_key`` twice returns the first package.
"""

from __future__ import annotations

import mimetypes
import re
from typing import Annotated

from pydantic import BaseModel, ConfigDict, EmailStr, Field, StringConstraints, field_validator
from sqlalchemy import func, select
from sqlalchemy.orm import Session

from config.settings import get_settings
from integrations.errors import PermanentError
from integrations.synerdocs.model import OrganizationType
from integrations.validation import validate_inn, validate_kpp
from models.edo import (
    INBOUND,
    ORIGINAL,
    OUTBOUND,
    RECEIVED,
    EdoAnswerTerm,
    EdoBox,
    EdoCounterparty,
    EdoDocument,
    EdoDocumentVersion,
    EdoFile,
    EdoPackage,
    EdoRoutingRule,
    EdoSender,
)
from models.master import Employee
from tasks.edo.chain import enqueue_next

ANSWER_TYPE = "answer"  # the company's outgoing documents (letters, contracts, technical conditions)
OTHER_TYPE = "other"  # the rule for incoming documents of a type no rule names
CABINET = "cabinet"  # the sender login of packages from the personal cabinet

Key = Annotated[str, StringConstraints(min_length=1, max_length=80, pattern=r"^[A-Za-z0-9._:-]+$")]
Sha256 = Annotated[str, StringConstraints(pattern=r"^[0-9a-f]{64}$")]
Text = Annotated[str, StringConstraints(strip_whitespace=True, min_length=1, max_length=500)]


class Refused(PermanentError):
    """A package or a setting obmen will not take: the message names the field and why."""


class NotAllowed(Refused):
    """The user is not listed among those who may send from the box (``edo_senders``)."""


# --- what a package is made of ---------------------------------------------------------------------------
class DocumentIn(BaseModel):
    model_config = ConfigDict(extra="forbid")
    sha256: Sha256
    file_name: Annotated[str, StringConstraints(min_length=1, max_length=255)]
    title: Text
    document_type: Annotated[str, StringConstraints(min_length=1, max_length=60)] = ANSWER_TYPE
    signature_sha256: Sha256


class CustomerIn(BaseModel):
    """A customer as the cabinet knows it. A sole trader (ИП) or a person has a 12-digit ИНН and no
    КПП, and is registered at the operator by the words of its name (``ИП Петров Пётр Петрович``)."""

    model_config = ConfigDict(extra="forbid")
    inn: str
    kpp: str | None = None
    name: Text
    email: EmailStr | None = None

    @field_validator("inn")
    @classmethod
    def _inn(cls, value: str) -> str:
        return validate_inn(value)

    @field_validator("kpp")
    @classmethod
    def _kpp(cls, value: str | None) -> str | None:
        return validate_kpp(value) if value else None

    def model_post_init(self, _: object) -> None:
        if len(self.inn) == 12 and self.kpp:
            raise ValueError("kpp: a sole trader or a person (12-digit ИНН) has no КПП")
        if len(self.inn) == 10 and not self.kpp:
            raise ValueError("kpp: an organisation (10-digit ИНН) is named with its КПП")
        if len(self.inn) == 12 and not all(person_names(self.name)[1:3]):
            raise ValueError("name: a sole trader or a person is named «[ИП] Фамилия Имя [Отчество]»")


_SOLE_TRADER = re.compile(r"^(ИП|Индивидуальный предприниматель)\s+", re.IGNORECASE)


def person_names(name: str) -> tuple[OrganizationType, str | None, str | None, str | None]:
    """Whether a 12-digit ИНН's holder is a sole trader or a person, and its last, first, middle names."""
    kind = (
        OrganizationType.INDIVIDUAL_ENTREPRENEUR if _SOLE_TRADER.match(name) else OrganizationType.INDIVIDUAL
    )
    words = _SOLE_TRADER.sub("", name).split()
    last, first = (words + [None, None])[:2]
    return kind, last, first, " ".join(words[2:]) or None


class PackageIn(BaseModel):
    """A customer's signed package from the cabinet (``edo.submit_package``)."""

    model_config = ConfigDict(extra="forbid")
    package_key: Key
    customer: CustomerIn
    documents: list[DocumentIn] = Field(min_length=1)


class AnswerIn(BaseModel):
    """The company's signed answer to an incoming document (``edo.send_answer``)."""

    model_config = ConfigDict(extra="forbid")
    package_key: Key
    answers_document_id: Annotated[int, Field(ge=1)]
    sender_login: Annotated[str, StringConstraints(min_length=1, max_length=200)]
    documents: list[DocumentIn] = Field(min_length=1)


# --- the box register ------------------------------------------------------------------------------------
def default_box(session: Session) -> EdoBox:
    """The company's default box, its row made from the settings the first time (its password stays
    in the settings: the row's is empty)."""
    s = get_settings()
    if not s.synerdocs_box or not s.synerdocs_login or not s.synerdocs_inn:
        raise Refused("OBMEN_SYNERDOCS_BOX, _LOGIN and _INN must be set to exchange EDO documents")
    box = session.scalars(select(EdoBox).where(EdoBox.box_address == s.synerdocs_box)).first()
    if box is None:
        box = EdoBox(
            box_address=s.synerdocs_box,
            organization_inn=s.synerdocs_inn,
            organization_kpp=s.synerdocs_kpp,
            name=s.synerdocs_name or s.synerdocs_inn,
            login=s.synerdocs_login,
            password_encrypted=b"",
            is_default=True,
        )
        session.add(box)
        session.flush()
    return box


def add_box(
    session: Session, box_address: str, login: str, password: str, *, inn: str, kpp: str = "", name: str
) -> EdoBox:
    """Keep a box's credentials (encrypted with ``OBMEN_SYNERDOCS_CREDENTIALS_KEY``); an existing
    box gets the new ones."""
    box = session.scalars(select(EdoBox).where(EdoBox.box_address == box_address)).first()
    if box is None:
        box = EdoBox(box_address=box_address, organization_inn=validate_inn(inn), name=name, login=login)
        session.add(box)
    box.organization_kpp = kpp
    box.login = login
    key = get_settings().synerdocs_credentials_key
    box.set_password(password, key.get_secret_value() if key else None)
    session.flush()
    return box


def add_sender(session: Session, user_login: str, employee_id: str | None = None) -> EdoSender:
    """List a user who may send the company's answers from its default box."""
    box = default_box(session)
    sender = session.scalars(
        select(EdoSender).where(EdoSender.box_id == box.id, EdoSender.user_login == user_login)
    ).first()
    if sender is None:
        sender = EdoSender(box_id=box.id, user_login=user_login)
        session.add(sender)
    sender.employee_id = employee_id
    sender.active = True
    session.flush()
    return sender


def may_send(session: Session, box: EdoBox, user_login: str) -> bool:
    return (
        session.scalar(
            select(func.count())
            .select_from(EdoSender)
            .where(EdoSender.box_id == box.id, EdoSender.user_login == user_login, EdoSender.active)
        )
        or 0
    ) > 0


def set_rule(session: Session, document_type: str, title: str, employee_id: str, working_days: int) -> None:
    """Route incoming documents of ``document_type`` to ``employee_id``, answered within ``working_days``."""
    if session.get(Employee, employee_id) is None:
        raise Refused(f"employee {employee_id!r} is not in the master data (obmen import)")
    if working_days < 1:
        raise Refused("working_days: at least 1")
    rule = session.get(EdoRoutingRule, document_type) or EdoRoutingRule(document_type=document_type)
    rule.title, rule.employee_id = title, employee_id
    session.add(rule)
    term = session.get(EdoAnswerTerm, document_type) or EdoAnswerTerm(document_type=document_type)
    term.working_days = working_days
    session.add(term)
    session.flush()


def known_types(session: Session) -> dict[str, str]:
    """Document types a customer may send: those routed, with their titles."""
    return {r.document_type: r.title for r in session.scalars(select(EdoRoutingRule))}


# --- packages ----------------------------------------------------------------------------------------------
def submit_package(session: Session, package: PackageIn) -> tuple[EdoPackage, bool]:
    """Take in a customer's package and start it on its chain; (the package, whether it is new)."""
    existing = _existing(session, package.package_key)
    if existing is not None:
        return existing, False
    types = known_types(session)
    for i, document in enumerate(package.documents):
        if document.document_type not in types or document.document_type == OTHER_TYPE:
            raise Refused(
                f"documents[{i}].document_type: unknown type {document.document_type!r}; "
                f"known: {', '.join(sorted(t for t in types if t != OTHER_TYPE))}"
            )
    box = default_box(session)
    customer = package.customer
    counterparty = session.scalars(
        select(EdoCounterparty).where(
            EdoCounterparty.inn == customer.inn, EdoCounterparty.kpp == (customer.kpp or "")
        )
    ).first()
    if counterparty is None:
        counterparty = EdoCounterparty(inn=customer.inn, kpp=customer.kpp or "", name=customer.name)
        session.add(counterparty)
    counterparty.name = customer.name
    counterparty.email = customer.email or counterparty.email
    session.flush()
    row = EdoPackage(
        package_key=package.package_key,
        direction=INBOUND,
        status=RECEIVED,
        box_id=box.id,
        counterparty_id=counterparty.id,
        sender_login=CABINET,
        to_box=box.box_address,
    )
    return _with_documents(session, row, package.documents), True


def send_answer(session: Session, answer: AnswerIn) -> tuple[EdoPackage, bool]:
    """Take in the company's signed answer to an incoming document; only listed users may send."""
    existing = _existing(session, answer.package_key)
    if existing is not None:
        return existing, False
    box = default_box(session)
    if not may_send(session, box, answer.sender_login):
        raise NotAllowed(f"{answer.sender_login!r} may not send from box {box.box_address} (edo_senders)")
    incoming = session.get(EdoDocument, answer.answers_document_id)
    asked = session.get(EdoPackage, incoming.package_id) if incoming is not None else None
    if incoming is None or asked is None or asked.direction != INBOUND:
        raise Refused(f"answers_document_id: no incoming document {answer.answers_document_id}")
    row = EdoPackage(
        package_key=answer.package_key,
        direction=OUTBOUND,
        status=RECEIVED,
        box_id=box.id,
        counterparty_id=asked.counterparty_id,
        sender_login=answer.sender_login,
        from_box=box.box_address,
        to_box=asked.from_box,
        answers_document_id=incoming.id,
    )
    return _with_documents(session, row, answer.documents), True


def _existing(session: Session, package_key: str) -> EdoPackage | None:
    return session.scalars(select(EdoPackage).where(EdoPackage.package_key == package_key)).first()


def _with_documents(session: Session, package: EdoPackage, documents: list[DocumentIn]) -> EdoPackage:
    cap = get_settings().synerdocs_max_file_bytes
    named = {d.sha256 for d in documents} | {d.signature_sha256 for d in documents}
    sizes = dict(session.execute(select(EdoFile.sha256, EdoFile.size).where(EdoFile.sha256.in_(named))).all())
    for i, document in enumerate(documents):
        for field, digest in (("sha256", document.sha256), ("signature_sha256", document.signature_sha256)):
            if digest not in sizes:
                raise Refused(f"documents[{i}].{field}: no stored file {digest} (upload it first)")
        if sizes[document.sha256] > cap:
            raise Refused(f"documents[{i}]: {sizes[document.sha256]} bytes, over the cap of {cap}")
    session.add(package)
    session.flush()
    for position, document in enumerate(documents, start=1):
        row = EdoDocument(
            package_id=package.id,
            position=position,
            local_id=str(position),
            document_type=document.document_type,
            title=document.title,
            status=RECEIVED,
            signature_sha256=document.signature_sha256,
        )
        session.add(row)
        session.flush()
        session.add(
            EdoDocumentVersion(
                document_id=row.id,
                version=ORIGINAL,
                file_name=document.file_name,
                content_type=content_type(document.file_name),
                sha256=document.sha256,
                size=sizes[document.sha256],
            )
        )
    enqueue_next(session, package)
    return package


def content_type(file_name: str) -> str:
    return mimetypes.guess_type(file_name)[0] or "application/octet-stream"
