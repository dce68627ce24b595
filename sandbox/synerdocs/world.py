"""The operator's state: accounts, organisations and their boxes, messages, documents and their flow.

Values in and out are the data contracts as dicts (``contract.py`` reads and writes them). Time is
the sandbox clock's: a document is delivered ``delivery_s`` after it was sent, and a recipient that
answers by itself (a customer in the cabinet) signs or refuses ``answer_after_s`` after delivery —
fixed when the message is accepted, so a status read twice reads the same.
"""

from __future__ import annotations

import hashlib
import secrets
import threading
import uuid
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any

from sandbox.synerdocs import signatures
from sandbox.synerdocs.contract import TYPE_KEY

OPERATOR_CODE = "2IG"  # Synerdocs' own operator code, as the SDK's registration sample uses it
BOX_DOMAIN = "synerdocs.ru"


class Fault(Exception):
    """A ServiceErrorFaultContract the operator answers with."""

    def __init__(self, code: str, message: str, field: str | None = None) -> None:
        super().__init__(f"{code}: {message}")
        self.code = code
        self.message = message
        self.field = field


@dataclass(frozen=True)
class Timing:
    delivery_s: float = 1.0
    answer_after_s: float = 30.0
    recipient_answer: str = "sign"  # what a self-answering recipient does: sign, reject or none
    token_ttl_s: float = 3600.0
    page_size: int = 100
    max_file_bytes: int = 30_000_000


@dataclass
class Organization:
    id: str
    inn: str
    kpp: str | None
    name: str
    org_type: str  # LegalEntity, IndividualEntrepreneur, Individual
    box: str
    status: str = "Active"
    operator_code: str = OPERATOR_CODE
    ogrn: str | None = None
    last_name: str | None = None
    first_name: str | None = None
    middle_name: str | None = None
    phone: str | None = None
    contact_person: str | None = None
    emails: list[str] = field(default_factory=list)
    created_by: str | None = None  # the special operator (the company's cabinet) that created the box
    answers_by_itself: bool = False  # a customer who signs in the cabinet, as the sandbox plays it


@dataclass
class Account:
    login: str
    password: str
    organization_id: str


@dataclass
class StoredSign:
    id: str
    document_id: str
    raw: bytes
    from_box: str
    sent_at: datetime

    def contract(self, valid: bool = True) -> dict[str, Any]:
        signer = signatures.signer(self.raw)
        return {
            "DocumentId": self.document_id,
            "From": self.from_box,
            "Id": self.id,
            "IsValid": valid,
            "Raw": self.raw,
            "SentDate": self.sent_at,
            "Subject": signer.subject if signer else None,
        }


@dataclass
class StoredDocument:
    id: str
    message_id: str
    name: str | None
    file_name: str
    content: bytes
    document_type: str
    need_sign: bool
    comment: str | None
    custom_field: str | None
    parent_id: str | None
    from_box: str
    to_box: str
    sent_at: datetime
    delivered_at: datetime
    sender_sign: StoredSign | None = None
    # What the recipient does and when: ("sign" | "reject", at, comment).
    answer: tuple[str, datetime, str | None] | None = None
    recipient_sign: StoredSign | None = None

    def answered(self, now: datetime) -> str | None:
        if self.answer is None or self.answer[1] > now:
            return None
        return self.answer[0]

    def contract(self, with_content: bool = True) -> dict[str, Any]:
        return {
            "Comment": self.comment,
            "Content": self.content if with_content else None,
            "CustomField": self.custom_field,
            "DocumentType": self.document_type,
            "FileName": self.file_name,
            "FileSize": len(self.content),
            "FromBoxId": self.from_box,
            "Id": self.id,
            "Name": self.name,
            "NeedReceipt": False,
            "NeedSign": self.need_sign,
            "ParentDocumentId": self.parent_id,
            "SentDate": self.sent_at,
        }


@dataclass
class StoredMessage:
    id: str
    seq: int
    from_box: str
    to_box: str
    sent_at: datetime
    document_ids: list[str]


def new_box() -> str:
    return f"{uuid.uuid4()}@{BOX_DOMAIN}"


class World:
    def __init__(self, now: Callable[[], datetime]) -> None:
        self.now = now
        self.lock = threading.RLock()
        self.organizations: dict[str, Organization] = {}
        self.roaming: list[Organization] = []  # the same organisations as other operators list them
        self.accounts: dict[str, Account] = {}
        self.tokens: dict[str, tuple[str, datetime]] = {}  # token → (login, expires at)
        self.messages: dict[str, StoredMessage] = {}
        self.order: list[str] = []  # message ids in the order accepted: the cursor
        self.documents: dict[str, StoredDocument] = {}
        self.send_calls = 0  # every SendMessage accepted
        self.custom_fields: Counter[str] = Counter()  # messages per document CustomField
        self.blobs: dict[bytes, bytes] = {}  # file contents by SHA-256

    # --- accounts ---------------------------------------------------------------------------------
    def add_organization(self, organization: Organization) -> Organization:
        with self.lock:
            self.organizations[organization.id] = organization
            return organization

    def add_account(self, login: str, password: str, organization: Organization) -> Account:
        with self.lock:
            account = Account(login, password, organization.id)
            self.accounts[login] = account
            return account

    def organization_by_box(self, box: str) -> Organization | None:
        return next((o for o in self.organizations.values() if o.box == box), None)

    def authenticate(
        self, login: str | None, password: str | None, application_id: str | None, ttl_s: float
    ) -> str:
        if not application_id:
            raise Fault("NotFilledRequiredField", "не указан идентификатор приложения", "applicationId")
        with self.lock:
            account = self.accounts.get(login or "")
            if account is None or not secrets.compare_digest(account.password, password or ""):
                raise Fault("Unauthorized", "неверный логин или пароль")
            token = secrets.token_hex(24)
            self.tokens[token] = (account.login, self.now() + timedelta(seconds=ttl_s))
            return token

    def expire_tokens(self) -> int:
        with self.lock:
            now = self.now()
            self.tokens = {t: (login, now) for t, (login, _) in self.tokens.items()}
            return len(self.tokens)

    def account(self, token: str | None) -> Account:
        with self.lock:
            found = self.tokens.get(token or "")
            if found is None or found[1] <= self.now():
                raise Fault("Unauthorized", "срок действия токена истёк или токен неизвестен")
            return self.accounts[found[0]]

    def boxes(self, account: Account) -> set[str]:
        """The account's own box and the boxes its organisation created for its customers."""
        own = self.organizations[account.organization_id]
        return {own.box} | {o.box for o in self.organizations.values() if o.created_by == own.id}

    def _box(self, account: Account, box: str | None, what: str) -> str:
        if not box:
            raise Fault("NotFilledRequiredField", f"не указан ящик ({what})", what)
        if box not in self.boxes(account):
            raise Fault("BoxAccessError", f"нет доступа к ящику {box}", what)
        return box

    # --- counterparties ----------------------------------------------------------------------------
    def find(self, inn: str | None, kpp: str | None) -> list[Organization]:
        if not inn:
            raise Fault("NotFilledRequiredField", "не указан ИНН", "inn")
        with self.lock:
            return [
                o
                for o in [*self.organizations.values(), *self.roaming]
                if o.inn == inn and (not kpp or o.kpp == kpp)
            ]

    def create_subscriber(
        self, account: Account, request: dict[str, Any]
    ) -> tuple[Organization | None, list[str]]:
        """A non-active subscriber's box, created by the account's organisation; or why not."""
        org_type = (request.get("OrganizationType") or {}).get("Name") or "LegalEntity"
        inn, kpp = request.get("Inn") or "", request.get("Kpp") or None
        errors = []
        if not inn.isdigit() or len(inn) != (10 if org_type == "LegalEntity" else 12):
            errors.append(f"ИНН {inn!r} не подходит для {org_type}")
        if org_type == "LegalEntity" and not (kpp and request.get("Name")):
            errors.append("для юридического лица нужны КПП и наименование")
        if org_type != "LegalEntity" and (kpp or not (request.get("LastName") and request.get("FirstName"))):
            errors.append("у ИП и физического лица нет КПП, нужны фамилия и имя")
        with self.lock:
            if any(o.inn == inn and o.kpp == kpp for o in self.organizations.values()):
                errors.append("организация с такими ИНН и КПП уже зарегистрирована в сервисе")
            if errors:
                return None, errors
            names = [request.get("LastName"), request.get("FirstName"), request.get("MiddleName")]
            name = request.get("Name") or " ".join(n for n in names if n)
            organization = Organization(
                id=str(uuid.uuid4()),
                inn=inn,
                kpp=kpp,
                name=name,
                org_type=org_type,
                box=new_box(),
                status="NonActive",
                last_name=request.get("LastName"),
                first_name=request.get("FirstName"),
                middle_name=request.get("MiddleName"),
                phone=request.get("Phone"),
                contact_person=request.get("ContactPerson"),
                emails=list(request.get("Emails") or []),
                created_by=account.organization_id,
                answers_by_itself=True,
            )
            return self.add_organization(organization), []

    # --- sending ------------------------------------------------------------------------------------
    def send(self, account: Account, message: dict[str, Any] | None, timing: Timing) -> dict[str, Any]:
        if not message:
            raise Fault("NotFilledRequiredField", "не передано сообщение", "message")
        from_box = self._box(account, message.get("From"), "From")
        recipients = [r.get("OrganizationBoxId") for r in message.get("Recipients") or []]
        if len(recipients) != 1 or not recipients[0]:
            raise Fault("InvalidDestinationAddress", "укажите одного получателя (Recipients)", "Recipients")
        to_box = recipients[0]
        if to_box == from_box:
            raise Fault("SendToSelfIsNotAllowed", "отправка самому себе запрещена", "Recipients")
        recipient = self.organization_by_box(to_box)
        if recipient is None:
            raise Fault("InvalidDestinationAddress", f"ящик {to_box} не найден", "Recipients")
        documents = message.get("Documents") or []
        if not documents:
            raise Fault("NotFilledRequiredField", "в сообщении нет документов", "Documents")
        local_ids = [d.get("Id") for d in documents]
        if None in local_ids or len(set(local_ids)) != len(local_ids):
            raise Fault("InvalidFormatField", "у каждого документа свой идентификатор (Id)", "Documents")
        signs = {s.get("DocumentId"): s for s in message.get("Signs") or []}
        for document in documents:
            content = document.get("Content") or b""
            if not content or not document.get("FileName"):
                raise Fault("InvalidDocumentContent", "документ без содержимого или имени файла", "Documents")
            if len(content) > timing.max_file_bytes:
                raise Fault("InvalidDocumentContent", f"файл больше {timing.max_file_bytes} байт", "Content")
            sign = signs.get(document["Id"])
            if sign is None or not sign.get("Raw"):
                raise Fault("NotFilledRequiredField", f"нет подписи документа {document['Id']}", "Signs")
            reason = signatures.check(sign["Raw"], content)
            if reason is not None:
                raise Fault(
                    "SignIsNotValid", f"подпись документа {document['Id']} недействительна: {reason}", "Signs"
                )
        if set(signs) - set(local_ids):
            raise Fault("InvalidDocumentReference", "подпись ссылается на документ не из сообщения", "Signs")
        return self._accept(from_box, recipient, documents, signs, timing)

    def _accept(
        self,
        from_box: str,
        recipient: Organization,
        documents: list[dict[str, Any]],
        signs: dict[str, dict[str, Any]],
        timing: Timing,
    ) -> dict[str, Any]:
        now = self.now()
        delivered = now + timedelta(seconds=timing.delivery_s)
        with self.lock:
            message = StoredMessage(str(uuid.uuid4()), len(self.order) + 1, from_box, recipient.box, now, [])
            document_ids, sign_ids = [], []
            for document in documents:
                stored = StoredDocument(
                    id=str(uuid.uuid4()),
                    message_id=message.id,
                    name=document.get("Name"),
                    file_name=document["FileName"],
                    # The same file sent again is kept once (the operator stores files, not copies).
                    content=self.blobs.setdefault(
                        hashlib.sha256(document["Content"]).digest(), document["Content"]
                    ),
                    document_type=document.get("DocumentType") or "Untyped",
                    need_sign=bool(document.get("NeedSign")),
                    comment=document.get("Comment"),
                    custom_field=document.get("CustomField"),
                    parent_id=document.get("ParentDocumentId"),
                    from_box=from_box,
                    to_box=recipient.box,
                    sent_at=now,
                    delivered_at=delivered,
                )
                sign = signs[document["Id"]]
                stored.sender_sign = StoredSign(str(uuid.uuid4()), stored.id, sign["Raw"], from_box, now)
                if stored.need_sign and recipient.answers_by_itself and timing.recipient_answer != "none":
                    at = delivered + timedelta(seconds=timing.answer_after_s)
                    comment = (
                        "Отказано в подписи (песочница)" if timing.recipient_answer == "reject" else None
                    )
                    stored.answer = (timing.recipient_answer, at, comment)
                self.documents[stored.id] = stored
                message.document_ids.append(stored.id)
                document_ids.append({"LocalId": document["Id"], "ServiceId": stored.id})
                sign_ids.append({"LocalId": sign.get("Id"), "ServiceId": stored.sender_sign.id})
            # Messages per key: a message of three documents with one key counts once.
            self.custom_fields.update({d.custom_field for d in self.documents_of(message) if d.custom_field})
            self.messages[message.id] = message
            self.order.append(message.id)
            self.send_calls += 1
        return {
            "DocumentIds": document_ids,
            "Log": [],
            "MessageId": message.id,
            "SentDate": now,
            "SignIds": sign_ids,
        }

    def documents_of(self, message: StoredMessage) -> list[StoredDocument]:
        return [self.documents[d] for d in message.document_ids]

    # --- reading --------------------------------------------------------------------------------------
    def messages_after(
        self, account: Account, after: str | None, from_box: str | None, to_box: str | None, limit: int
    ) -> list[dict[str, Any]]:
        boxes = self.boxes(account)
        with self.lock:
            start = 0
            if after:
                if after not in self.messages:
                    raise Fault("NoDataFound", f"сообщение {after} не найдено", "afterMessageId")
                start = self.messages[after].seq
            found = []
            for message_id in self.order[start:]:
                message = self.messages[message_id]
                if not ({message.from_box, message.to_box} & boxes):
                    continue
                if (from_box and message.from_box != from_box) or (to_box and message.to_box != to_box):
                    continue
                found.append(message)
                if len(found) >= limit:
                    break
        return [_message_info(m, self.organization_by_box(m.to_box)) for m in found]

    def message(self, account: Account, box: str | None, message_id: str | None) -> dict[str, Any]:
        box = self._box(account, box, "boxId")
        message = self.messages.get(message_id or "")
        if message is None or box not in (message.from_box, message.to_box):
            raise Fault("NoDataFound", f"сообщение {message_id} не найдено в ящике {box}", "messageId")
        documents = self.documents_of(message)
        recipient = self.organization_by_box(message.to_box)
        return {
            "Documents": [d.contract() for d in documents],
            "From": message.from_box,
            "Id": message.id,
            "Recipients": [_recipient(message.to_box, recipient)],
            "SentDate": message.sent_at,
            "Signs": [d.sender_sign.contract() for d in documents if d.sender_sign],
        }

    def document(self, account: Account, box: str | None, document_id: str | None) -> StoredDocument:
        box = self._box(account, box, "boxId")
        document = self.documents.get(document_id or "")
        if document is None or box not in (document.from_box, document.to_box):
            raise Fault("DocumentNotFound", f"документ {document_id} не найден в ящике {box}", "documentId")
        return document

    def counter_sign(self, document: StoredDocument) -> StoredSign | None:
        """The recipient's signature, made (once) when the planned answer is due."""
        with self.lock:
            if document.answered(self.now()) == "sign" and document.recipient_sign is None:
                recipient = self.organization_by_box(document.to_box)
                assert recipient is not None
                raw = signatures.sign_detached(recipient.name, recipient.inn, document.content)
                assert document.answer is not None
                document.recipient_sign = StoredSign(
                    str(uuid.uuid4()), document.id, raw, document.to_box, document.answer[1]
                )
            return document.recipient_sign

    def answer(self, document: StoredDocument, action: str, comment: str | None) -> None:
        """The recipient signs or refuses now (a scenario endpoint: the customer in the cabinet)."""
        with self.lock:
            if document.answered(self.now()) is None:
                document.answer = (action, self.now(), comment)

    def flow_info(self, document: StoredDocument, params: dict[str, Any] | None) -> dict[str, Any]:
        params = params or {}
        now = self.now()
        delivered = now >= document.delivered_at
        answered = document.answered(now)
        recipient_sign = self.counter_sign(document)
        if not document.need_sign:
            sign_status, recipient_status = "NoSignNeeded", "NoSignNeeded"
        elif answered == "sign":
            sign_status, recipient_status = "Signed", "SignReceived"
        elif answered == "reject":
            sign_status, recipient_status = "SignRejected", "SignRejected"
        else:
            sign_status, recipient_status = "WaitingForSign", "SignRequested"
        at = document.answer[1] if document.answer and answered else None
        comment = document.answer[2] if document.answer and answered else None
        signs = [s.contract() for s in (document.sender_sign, recipient_sign) if s is not None]
        return {
            "Comment": document.comment,
            "Document": document.contract(with_content=bool(params.get("GetContent"))),
            "From": document.from_box,
            "MessageId": document.message_id,
            "RevocationStatus": "NoRevocation",
            "SentDate": document.sent_at,
            "Signs": signs if params.get("GetSigns") else None,
            "Status": {
                TYPE_KEY: "UntypedDocumentFlowStatus",
                "AdditionalStatus": comment,
                "DeliveryStatus": "DeliveredToRecipient" if delivered else "SentToRecipient",
                "SignStatus": sign_status,
            },
            "To": document.to_box,
            "FlowType": "SentSigned",
            "Flows": [
                {
                    "Comment": comment,
                    "FlowDate": document.sent_at,
                    "FlowType": "SentSigned",
                    "Id": document.id,
                    "ReceiveDate": document.delivered_at if delivered else None,
                    "RecipientSign": recipient_sign.contract() if recipient_sign else None,
                    "RecipientStatus": recipient_status,
                    "RejectDate": at if answered == "reject" else None,
                    "SenderStatus": "SentSigned",
                    "SignDate": at if answered == "sign" else None,
                }
            ],
        }


def organization_contract(organization: Organization) -> dict[str, Any]:
    return {
        "BoxAddress": organization.box,
        "ContactAuthType": "Manual",
        "Inn": organization.inn,
        "IsJuridical": organization.org_type == "LegalEntity",
        "Kpp": organization.kpp,
        "Name": organization.name,
        "Ogrn": organization.ogrn,
        "OperatorCode": organization.operator_code,
        "OrganizationId": organization.id,
        "OrganizationStatus": organization.status,
        "OrganizationType": organization.org_type,
    }


ORGANIZATION_TYPES = {
    "LegalEntity": (0, "Юридическое лицо"),
    "IndividualEntrepreneur": (1, "ИП"),
    "Individual": (2, "Физическое лицо"),
}


def subscriber_contract(organization: Organization) -> dict[str, Any]:
    code, description = ORGANIZATION_TYPES[organization.org_type]
    return {
        "FirstName": organization.first_name,
        "Inn": organization.inn,
        "Kpp": organization.kpp,
        "LastName": organization.last_name,
        "MiddleName": organization.middle_name,
        "Name": organization.name,
        "OrganizationBoxId": organization.box,
        "OrganizationType": {"Code": code, "Description": description, "Name": organization.org_type},
        "Phone": organization.phone,
        "ContactPerson": organization.contact_person,
        "Emails": organization.emails,
    }


def _recipient(box: str, organization: Organization | None) -> dict[str, Any]:
    return {
        "DepartmentId": None,
        "DepartmentName": None,
        "OrganizationBoxId": box,
        "OrganizationName": organization.name if organization else None,
    }


def _message_info(message: StoredMessage, recipient: Organization | None) -> dict[str, Any]:
    return {
        "From": message.from_box,
        "Id": message.id,
        "MessageRecipients": [_recipient(message.to_box, recipient)],
        "Recipients": [message.to_box],
        "To": message.to_box,
    }
