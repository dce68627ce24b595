"""What obmen sends to Synerdocs and what it answers, as typed Python (the wire is in ``client.py``).

Enumerations keep the contract's names as values (``RecievedByService`` is the contract's spelling).
"""

from __future__ import annotations

import enum
from dataclasses import dataclass, field
from datetime import datetime


class OrganizationStatus(enum.StrEnum):
    ACTIVE = "Active"
    TEST = "Test"
    NON_ACTIVE = "NonActive"


class OrganizationType(enum.StrEnum):
    LEGAL_ENTITY = "LegalEntity"
    INDIVIDUAL_ENTREPRENEUR = "IndividualEntrepreneur"
    INDIVIDUAL = "Individual"


# The codes EnumValue carries for OrganizationType (the contract's enum values).
ORGANIZATION_TYPE_CODES = {
    OrganizationType.LEGAL_ENTITY: 0,
    OrganizationType.INDIVIDUAL_ENTREPRENEUR: 1,
    OrganizationType.INDIVIDUAL: 2,
}


class DeliveryStatus(enum.StrEnum):
    RECEIVED_BY_SERVICE = "RecievedByService"
    SENT_TO_RECIPIENT = "SentToRecipient"
    DELIVERED_TO_RECIPIENT = "DeliveredToRecipient"
    NOT_DELIVERED_TO_RECIPIENT = "NotDeliveredToRecipient"


class SignStatus(enum.StrEnum):
    NO_SIGN_NEEDED = "NoSignNeeded"
    WAITING_FOR_SIGN = "WaitingForSign"
    SIGNED = "Signed"
    SIGN_REJECTED = "SignRejected"


class RevocationStatus(enum.StrEnum):
    NO_REVOCATION = "NoRevocation"
    REVOCATION_AWAITED = "RevocationAwaited"
    REVOCATION_REQUIRED = "RevocationRequired"
    REVOCATION_REJECTED = "RevocationRejected"
    REVOCATION_ACCEPTED = "RevocationAccepted"


@dataclass(frozen=True)
class Organization:
    """A subscriber as ``GetOrganizationListByInnKpp`` lists it."""

    organization_id: str | None
    inn: str
    kpp: str | None
    name: str | None
    box_address: str | None
    operator_code: str | None
    status: OrganizationStatus | None
    organization_type: OrganizationType | None
    ogrn: str | None = None

    @property
    def active(self) -> bool:
        return self.status in (OrganizationStatus.ACTIVE, OrganizationStatus.TEST)


@dataclass(frozen=True)
class NewSubscriber:
    """A counterparty to register as a non-active subscriber (``CreateNonActiveSubscriber``).

    A legal entity has ``name`` and ``kpp``; a sole trader (ИП) or a person has the names and no КПП.
    """

    inn: str
    organization_type: OrganizationType
    name: str | None = None
    kpp: str | None = None
    last_name: str | None = None
    first_name: str | None = None
    middle_name: str | None = None
    emails: tuple[str, ...] = ()
    phone: str | None = None
    contact_person: str | None = None


@dataclass(frozen=True)
class Subscriber:
    box_address: str
    inn: str
    kpp: str | None
    name: str | None


@dataclass(frozen=True)
class OutgoingDocument:
    """One document of a message with its detached signature (CMS, DER).

    ``local_id`` ties the signature to the document within the message; the operator answers its
    own id for it. ``custom_field`` (≤ 255 characters) is kept by the operator with the document:
    obmen puts its package key there, to find a message it may have sent already.
    """

    local_id: str
    file_name: str
    content: bytes = field(repr=False)
    signature: bytes = field(repr=False)
    name: str | None = None
    document_type: str = "Untyped"
    need_sign: bool = True
    comment: str | None = None
    custom_field: str | None = None
    parent_document_id: str | None = None


@dataclass(frozen=True)
class SentMessage:
    message_id: str
    sent_at: datetime
    document_ids: dict[str, str]  # our local id → the operator's document id


@dataclass(frozen=True)
class MessageInfo:
    """An entry of the ``GetMessages`` cursor."""

    message_id: str
    from_box: str | None
    to_boxes: tuple[str, ...]


@dataclass(frozen=True)
class Signature:
    id: str | None
    document_id: str | None
    raw: bytes = field(repr=False)
    from_box: str | None = None
    sent_at: datetime | None = None
    subject: str | None = None
    is_valid: bool | None = None


@dataclass(frozen=True)
class ReceivedDocument:
    id: str
    file_name: str | None
    name: str | None
    content: bytes | None = field(repr=False)
    size: int | None
    document_type: str
    need_sign: bool
    comment: str | None
    custom_field: str | None
    parent_document_id: str | None
    from_box: str | None
    sent_at: datetime | None


@dataclass(frozen=True)
class Message:
    message_id: str
    from_box: str | None
    to_boxes: tuple[str, ...]
    sent_at: datetime | None
    documents: tuple[ReceivedDocument, ...]
    signatures: tuple[Signature, ...]

    def signature_of(self, document_id: str) -> Signature | None:
        return next((s for s in self.signatures if s.document_id == document_id), None)


@dataclass(frozen=True)
class DocumentStatus:
    """Where a sent document is: delivery, the recipient's signature or refusal, and when."""

    document_id: str
    message_id: str | None
    delivery: DeliveryStatus
    sign: SignStatus
    revocation: RevocationStatus
    additional: str | None
    sent_at: datetime | None
    received_at: datetime | None
    signed_at: datetime | None
    rejected_at: datetime | None
    comment: str | None  # the recipient's reason when it refused
    recipient_signature: Signature | None


@dataclass(frozen=True)
class PrintForm:
    """The printable PDF with the operator's signature stamp (``PrintDocument``/``DownloadPdfDocument``)."""

    name: str
    content: bytes = field(repr=False)
