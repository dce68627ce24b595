"""The Synerdocs client: zeep over the pinned subset of the operator's WSDL, typed results and errors.

zeep builds and reads the envelopes; the HTTP, the deadline, the size cap and the DTD refusal are
``transport.py``'s. One client holds one account's credentials and its token: every operation
takes the token and, when the operator answers ``Unauthorized`` (the token expired), the client
authenticates again and repeats the call once. Each HTTP request is reported to the ``recorder``.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any, TypeVar

import zeep
from lxml import etree
from zeep import exceptions as zx

from integrations.bounded_http import typed
from integrations.exchange import Exchange, Recorder, discard
from integrations.synerdocs.errors import (
    ContractViolation,
    InvalidRequest,
    MalformedAnswer,
    PermanentFault,
    SubscriberRejected,
    SynerdocsError,
    Unauthorized,
    fault_error,
)
from integrations.synerdocs.model import (
    ORGANIZATION_TYPE_CODES,
    DeliveryStatus,
    DocumentStatus,
    Message,
    MessageInfo,
    NewSubscriber,
    Organization,
    OrganizationStatus,
    OrganizationType,
    OutgoingDocument,
    PrintForm,
    ReceivedDocument,
    RevocationStatus,
    SentMessage,
    Signature,
    SignStatus,
    Subscriber,
)
from integrations.synerdocs.transport import WSDL, Limits, Transport, elapsed_ms
from integrations.validation import validate_inn, validate_kpp

SYSTEM = "synerdocs"
BINDING = "{http://synerdocs.ru}BasicHttpBinding_IExchangeService"
FAULT_DETAIL = (
    "{http://schemas.datacontract.org/2004/07/Midway.ObjectModel.Exceptions}ServiceErrorFaultContract"
)
CUSTOM_FIELD_MAX = 255
T = TypeVar("T")


@dataclass(frozen=True)
class SynerdocsConfig:
    url: str
    application_id: str
    connect_timeout_s: float = 5.0
    deadline_s: float = 60.0  # one request, from connecting to the last byte of the answer
    max_answer_bytes: int = 60_000_000
    max_file_bytes: int = 20_000_000
    operator_code: str = "2IG"  # Synerdocs' own; a counterparty listed by it is preferred


@dataclass(frozen=True)
class Credentials:
    login: str
    password: str = field(repr=False)


class SynerdocsClient:
    """One account's client; safe to share between threads."""

    def __init__(
        self, config: SynerdocsConfig, credentials: Credentials, recorder: Recorder = discard
    ) -> None:
        self.config = config
        self.credentials = credentials
        self.recorder = recorder
        self._transport = Transport(
            Limits(config.connect_timeout_s, config.deadline_s, config.max_answer_bytes)
        )
        # Not strict: the WSDL declares a subset of each type's members and the operator sends them
        # all; zeep skips the ones it does not know. Well-formedness was checked by the transport.
        settings = zeep.Settings(
            strict=False, forbid_dtd=True, forbid_entities=True, forbid_external=True, xml_huge_tree=False
        )
        client = zeep.Client(str(WSDL), transport=self._transport, settings=settings)
        self._service = client.create_service(BINDING, config.url)
        self._token: str | None = None
        self._token_lock = threading.Lock()

    def close(self) -> None:
        self._transport.close()

    # --- authentication -----------------------------------------------------------------------------
    def authenticate(self) -> None:
        """Get a fresh token (the other operations do it themselves when they need one)."""
        with self._token_lock:
            self._token = self._authenticate()

    def _authenticate(self) -> str:
        token = self._call(
            "Authenticate",
            {
                "login": self.credentials.login,
                "password": self.credentials.password,
                "applicationId": self.config.application_id,
            },
        )
        if not token:
            raise ContractViolation("Authenticate", "the answer carries no token")
        return str(token)

    def _token_now(self) -> str:
        with self._token_lock:
            if self._token is None:
                self._token = self._authenticate()
            return self._token

    def _with_token(self, operation: str, arguments: Callable[[str], dict[str, Any]], **context: Any) -> Any:
        token = self._token_now()
        try:
            return self._call(operation, arguments(token), **context)
        except Unauthorized:
            with self._token_lock:
                renewed = self._token
                if renewed is None or renewed == token:  # another thread may have renewed it already
                    renewed = self._token = self._authenticate()
            return self._call(operation, arguments(renewed), **context)

    # --- counterparties ---------------------------------------------------------------------------------
    def find_organizations(self, inn: str, kpp: str | None = None) -> list[Organization]:
        """Subscribers with this ИНН (and КПП), one per ИНН/КПП however many operators list them.

        Omit ``kpp`` for a sole trader or a person (their ИНН has 12 digits; they have no КПП), or to
        see every branch of an organisation. Of the same subscriber listed by several operators,
        Synerdocs' own entry is kept, else an active one.
        """
        inn = _valid("inn", validate_inn, inn, "GetOrganizationListByInnKpp")
        if kpp is not None:
            if len(inn) == 12:
                raise InvalidRequest(
                    "GetOrganizationListByInnKpp", "kpp: a sole trader or a person has no КПП"
                )
            kpp = _valid("kpp", validate_kpp, kpp, "GetOrganizationListByInnKpp")
        answer = self._with_token(
            "GetOrganizationListByInnKpp",
            lambda token: {"authToken": token, "inn": inn, "kpp": kpp},
            business_key=f"inn:{inn}/{kpp or ''}",
        )
        listed = [_organization(o) for o in _items(answer, "Organization")]
        return _deduplicate(listed, self.config.operator_code)

    def create_subscriber(self, subscriber: NewSubscriber) -> Subscriber:
        """Register a counterparty as a non-active subscriber, in a box the company may act for."""
        operation = "CreateNonActiveSubscriber"
        inn = _valid("inn", validate_inn, subscriber.inn, operation)
        legal = subscriber.organization_type is OrganizationType.LEGAL_ENTITY
        if legal and not (subscriber.name and subscriber.kpp):
            raise InvalidRequest(operation, "name and kpp: a legal entity is registered with both")
        if legal and len(inn) != 10:
            raise InvalidRequest(operation, "inn: a legal entity's ИНН has 10 digits")
        if not legal and (subscriber.kpp or not (subscriber.last_name and subscriber.first_name)):
            raise InvalidRequest(
                operation, "kpp, last_name, first_name: a sole trader or person has names, no КПП"
            )
        kpp = _valid("kpp", validate_kpp, subscriber.kpp, operation) if subscriber.kpp else None
        kind = subscriber.organization_type
        request = {
            "ContactPerson": subscriber.contact_person,
            "Emails": {"string": list(subscriber.emails)} if subscriber.emails else None,
            "FirstName": subscriber.first_name,
            "Inn": inn,
            "Kpp": kpp,
            "LastName": subscriber.last_name,
            "MiddleName": subscriber.middle_name,
            "Name": subscriber.name,
            "OrganizationType": {"Code": ORGANIZATION_TYPE_CODES[kind], "Name": kind.value},
            "Phone": subscriber.phone,
        }
        answer = self._with_token(
            operation,
            lambda token: {"authToken": token, "request": request},
            business_key=f"inn:{inn}/{kpp or ''}",
        )
        code = answer.Code.Name if answer is not None and answer.Code is not None else None
        if code != "Success" or answer.Result is None or not answer.Result.OrganizationBoxId:
            raise SubscriberRejected(
                operation, _validation_messages(answer.ValidationResult if answer else None)
            )
        result = answer.Result
        return Subscriber(str(result.OrganizationBoxId), str(result.Inn or inn), result.Kpp, result.Name)

    # --- sending ------------------------------------------------------------------------------------------
    def send_message(
        self,
        from_box: str,
        to_box: str,
        documents: Sequence[OutgoingDocument],
        *,
        business_key: str | None = None,
    ) -> SentMessage:
        """Send signed documents in one message; ``SentMessage.document_ids`` maps our ids to theirs.

        An error with ``delivery == "maybe"`` means the message may have gone: call
        :meth:`find_sent` with the documents' ``custom_field`` before sending again.
        """
        operation = "SendMessage"
        _check_documents(operation, documents, self.config.max_file_bytes)
        message = {
            "Documents": {
                "Document": [
                    {
                        "Comment": d.comment,
                        "Content": d.content,
                        "CustomField": d.custom_field,
                        "DocumentType": d.document_type,
                        "FileName": d.file_name,
                        "Id": d.local_id,
                        "Name": d.name,
                        "NeedSign": d.need_sign,
                        "ParentDocumentId": d.parent_document_id,
                    }
                    for d in documents
                ]
            },
            "From": from_box,
            "Recipients": {"MessageRecipient": [{"OrganizationBoxId": to_box}]},
            "Signs": {"Sign": [{"DocumentId": d.local_id, "Raw": d.signature} for d in documents]},
        }
        answer = self._with_token(
            operation, lambda token: {"authToken": token, "message": message}, business_key=business_key
        )
        if answer is None or not answer.MessageId:
            raise ContractViolation(operation, "the answer carries no MessageId")
        ids = {str(i.LocalId): str(i.ServiceId) for i in _items(answer.DocumentIds, "LocalServerId")}
        missing = [d.local_id for d in documents if d.local_id not in ids]
        if missing:
            raise ContractViolation(operation, f"no operator id for the documents {missing}")
        sent_at = _aware(answer.SentDate, operation)
        if sent_at is None:
            raise ContractViolation(operation, "the answer carries no SentDate")
        return SentMessage(str(answer.MessageId), sent_at, ids)

    def find_sent(
        self, from_box: str, to_box: str, custom_field: str, *, after_message_id: str | None = None
    ) -> Message | None:
        """The message from ``from_box`` to ``to_box`` holding a document with this ``CustomField``.

        The operator keeps no id of ours on a message (``Message.Id`` is not used on sending), so
        the sent messages between the two boxes are read (from ``after_message_id``, a cursor
        position taken before sending, when known) and each one's documents compared.
        """
        cursor = after_message_id
        while True:
            page = self.messages(after_message_id=cursor, from_box=from_box, to_box=to_box)
            for info in page:
                message = self.message(from_box, info.message_id)
                if any(d.custom_field == custom_field for d in message.documents):
                    return message
            if not page:
                return None
            cursor = page[-1].message_id

    # --- reading --------------------------------------------------------------------------------------------
    def messages(
        self, *, after_message_id: str | None = None, from_box: str | None = None, to_box: str | None = None
    ) -> list[MessageInfo]:
        """One page of the message cursor after ``after_message_id`` (oldest first); empty at the end."""
        answer = self._with_token(
            "GetMessages",
            lambda token: {
                "authToken": token,
                "afterMessageId": after_message_id,
                "fromBox": from_box,
                "toBox": to_box,
            },
            correlation_id=after_message_id,
        )
        return [
            MessageInfo(str(m.Id), m.From, tuple(_items(m.Recipients, "string")) or ((m.To,) if m.To else ()))
            for m in _items(answer, "MessageInfo")
        ]

    def message(self, box: str, message_id: str) -> Message:
        """A message with its documents' contents and the senders' signatures."""
        operation = "GetMessage"
        answer = self._with_token(
            operation,
            lambda token: {"authToken": token, "boxId": box, "messageId": message_id},
            correlation_id=message_id,
        )
        if answer is None or not answer.Id:
            raise ContractViolation(operation, "the answer carries no message")
        return Message(
            message_id=str(answer.Id),
            from_box=answer.From,
            to_boxes=tuple(str(r.OrganizationBoxId) for r in _items(answer.Recipients, "MessageRecipient")),
            sent_at=_aware(answer.SentDate, operation),
            documents=tuple(_document(d, operation) for d in _items(answer.Documents, "Document")),
            signatures=tuple(_signature(s, operation) for s in _items(answer.Signs, "Sign")),
        )

    def document_status(self, box: str, document_id: str) -> DocumentStatus:
        """Delivery and signing of a document as the operator fixed them (``GetFlowDocumentInfo``)."""
        operation = "GetFlowDocumentInfo"
        answer = self._with_token(
            operation,
            lambda token: {
                "authToken": token,
                "boxId": box,
                "documentId": document_id,
                "requestParams": {"GetContent": False, "GetSigns": True, "FlowResult": "FullInfo"},
            },
            correlation_id=document_id,
        )
        status = answer.Status if answer is not None else None
        if status is None or not hasattr(status, "DeliveryStatus"):
            raise ContractViolation(operation, "the answer carries no UntypedDocumentFlowStatus")
        flows = _items(answer.Flows, "DocumentFlow")
        flow = flows[0] if flows else None
        # zeep reads a nil complex member as an empty object: a signature is one with its bytes.
        recipient_sign = flow.RecipientSign if flow is not None and flow.RecipientSign is not None else None
        if recipient_sign is not None and not recipient_sign.Raw:
            recipient_sign = None
        return DocumentStatus(
            document_id=document_id,
            message_id=answer.MessageId,
            delivery=_enum(DeliveryStatus, status.DeliveryStatus, operation),
            sign=_enum(SignStatus, status.SignStatus, operation),
            revocation=_enum(RevocationStatus, answer.RevocationStatus or "NoRevocation", operation),
            additional=status.AdditionalStatus,
            sent_at=_aware(answer.SentDate, operation),
            received_at=_aware(flow.ReceiveDate, operation) if flow is not None else None,
            signed_at=_aware(flow.SignDate, operation) if flow is not None else None,
            rejected_at=_aware(flow.RejectDate, operation) if flow is not None else None,
            comment=flow.Comment if flow is not None else None,
            recipient_signature=_signature(recipient_sign, operation) if recipient_sign is not None else None,
        )

    def print_document(self, box: str, document_id: str) -> PrintForm:
        """The printable PDF with the operator's signature stamp (``PrintDocument``)."""
        operation = "PrintDocument"
        answer = self._with_token(
            operation,
            lambda token: {
                "credentials": {"AuthToken": token, "BoxAddress": box},
                "request": {"DocumentId": document_id},
            },
            correlation_id=document_id,
        )
        status = answer.Status.Name if answer is not None and answer.Status is not None else None
        if status == "Error":
            raise PermanentFault(operation, "Error", "; ".join(_validation_messages(answer.ValidationResult)))
        return _print_form(answer.NamedContent if answer is not None else None, operation)

    def download_pdf(self, box: str, document_id: str) -> PrintForm:
        """The same print form by the legacy ``DownloadPdfDocument``."""
        operation = "DownloadPdfDocument"
        answer = self._with_token(
            operation,
            lambda token: {"authToken": token, "boxId": box, "documentId": document_id},
            correlation_id=document_id,
        )
        return _print_form(answer, operation)

    # --- the machinery ------------------------------------------------------------------------------------
    def _call(
        self,
        operation: str,
        arguments: dict[str, Any],
        *,
        correlation_id: str | None = None,
        business_key: str | None = None,
    ) -> Any:
        exchange = Exchange(
            system=SYSTEM, operation=operation, correlation_id=correlation_id, business_key=business_key
        )
        self._transport.local.exchange = exchange
        started = time.perf_counter()
        try:
            return getattr(self._service, operation)(**arguments)
        except SynerdocsError as exc:
            exchange.error = typed(exc)
            raise
        except zx.Fault as fault:
            error = _fault(operation, fault)
            exchange.error = typed(error)
            raise error from None
        except (zx.XMLSyntaxError, etree.XMLSyntaxError) as exc:
            error = MalformedAnswer(operation, typed(exc))
            exchange.error = typed(error)
            raise error from None
        except (zx.ValidationError, zx.XMLParseError, zx.TransportError, zx.LookupError, ValueError) as exc:
            error = ContractViolation(operation, typed(exc))
            exchange.error = typed(error)
            raise error from None
        finally:
            exchange.duration_ms = elapsed_ms(started)
            self._transport.local.exchange = None
            self.recorder(exchange)


# --- checks of what is sent ------------------------------------------------------------------------------
def _valid(name: str, validate: Callable[[str], str], value: str, operation: str) -> str:
    try:
        return validate(value)
    except ValueError as exc:
        raise InvalidRequest(operation, f"{name}: {exc}") from None


def _check_documents(operation: str, documents: Sequence[OutgoingDocument], max_bytes: int) -> None:
    if not documents:
        raise InvalidRequest(operation, "documents: a message holds at least one document")
    seen: set[str] = set()
    for i, document in enumerate(documents):
        where = f"documents[{i}]"
        if not document.local_id or document.local_id in seen:
            raise InvalidRequest(operation, f"{where}.local_id: empty or repeated")
        seen.add(document.local_id)
        if not document.file_name:
            raise InvalidRequest(operation, f"{where}.file_name: empty")
        if not document.content:
            raise InvalidRequest(operation, f"{where}.content: the file is empty")
        if len(document.content) > max_bytes:
            raise InvalidRequest(
                operation, f"{where}.content: {len(document.content)} bytes, over the cap of {max_bytes}"
            )
        if not document.signature:
            raise InvalidRequest(operation, f"{where}.signature: a document is sent with its signature")
        if document.custom_field is not None and len(document.custom_field) > CUSTOM_FIELD_MAX:
            raise InvalidRequest(operation, f"{where}.custom_field: over {CUSTOM_FIELD_MAX} characters")


# --- reading zeep's objects into ours ------------------------------------------------------------------
def _fault(operation: str, fault: zx.Fault) -> SynerdocsError:
    detail = fault.detail
    contract = detail.find(FAULT_DETAIL) if detail is not None else None
    if contract is not None:
        namespace = FAULT_DETAIL.split("}")[0] + "}"
        code = contract.findtext(namespace + "Code") or "UnexpectedError"
        message = contract.findtext(namespace + "Message") or fault.message or ""
        return fault_error(operation, code, message, contract.findtext(namespace + "Field") or None)
    # A SOAP fault without the contract's detail: WCF could not dispatch or read the request.
    code = (fault.code or "Fault").rsplit(":", 1)[-1]
    return PermanentFault(operation, code, fault.message or "SOAP fault without detail")


def _items(value: Any, item: str) -> list[Any]:
    """The items of an ``ArrayOf…`` wrapper (zeep gives the wrapper, or the list for a result)."""
    if value is None:
        return []
    if isinstance(value, list):
        return value
    return list(getattr(value, item, None) or [])


def _enum(cls: type[T], value: Any, operation: str) -> T:
    try:
        return cls(value)  # type: ignore[call-arg]
    except ValueError:
        known = [m.value for m in cls]  # type: ignore[attr-defined]
        raise ContractViolation(
            operation, f"unknown {cls.__name__} {value!r} in the answer (the contract knows {known})"
        ) from None


def _aware(value: datetime | None, operation: str) -> datetime | None:
    if value is None:
        return None
    if value.tzinfo is None:
        raise ContractViolation(operation, f"a time without a time zone in the answer: {value.isoformat()}")
    return value


def _organization(o: Any) -> Organization:
    return Organization(
        organization_id=o.OrganizationId,
        inn=str(o.Inn or ""),
        kpp=o.Kpp or None,
        name=o.Name,
        box_address=o.BoxAddress,
        operator_code=o.OperatorCode,
        status=_enum(OrganizationStatus, o.OrganizationStatus, "GetOrganizationListByInnKpp")
        if o.OrganizationStatus
        else None,
        organization_type=_enum(OrganizationType, o.OrganizationType, "GetOrganizationListByInnKpp")
        if o.OrganizationType
        else None,
        ogrn=o.Ogrn,
    )


def _deduplicate(listed: Iterable[Organization], operator_code: str) -> list[Organization]:
    def rank(o: Organization) -> tuple[bool, bool]:
        return (o.operator_code != operator_code, not o.active)

    best: dict[tuple[str, str | None], Organization] = {}
    for organization in listed:
        key = (organization.inn, organization.kpp)
        if key not in best or rank(organization) < rank(best[key]):
            best[key] = organization
    return list(best.values())


def _document(d: Any, operation: str) -> ReceivedDocument:
    return ReceivedDocument(
        id=str(d.Id),
        file_name=d.FileName,
        name=d.Name,
        content=d.Content,
        size=d.FileSize,
        document_type=str(d.DocumentType or "Untyped"),
        need_sign=bool(d.NeedSign),
        comment=d.Comment,
        custom_field=d.CustomField,
        parent_document_id=d.ParentDocumentId,
        from_box=d.FromBoxId,
        sent_at=_aware(d.SentDate, operation),
    )


def _signature(s: Any, operation: str) -> Signature:
    return Signature(
        id=s.Id,
        document_id=s.DocumentId,
        raw=s.Raw or b"",
        from_box=s.From,
        sent_at=_aware(s.SentDate, operation),
        subject=s.Subject,
        is_valid=s.IsValid,
    )


def _print_form(named: Any, operation: str) -> PrintForm:
    if named is None or not named.Content:
        raise ContractViolation(operation, "the answer carries no NamedContent")
    content = bytes(named.Content)
    if not content.startswith(b"%PDF-"):
        raise ContractViolation(operation, "the print form is not a PDF")
    return PrintForm(str(named.Name or "document.pdf"), content)


def _validation_messages(result: Any) -> list[str]:
    if result is None:
        return []
    messages = [str(m.Text) for m in _items(result.Messages, "ModelValidationMessage") if m.Text]
    for nested in _items(result.Fields, "ModelValidationResult"):
        messages += _validation_messages(nested)
    return messages
