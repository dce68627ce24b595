"""The invoice (счёт на оплату) as 1C's HTTP service sends it, read leniently and checked strictly.

Lenient about what 1C really writes: a UTF-8 byte-order mark before the JSON (1C's default for
UTF-8), keys in any case and with «Ё» or «Е» («ИД», «Ид»), money as a JSON number or a string —
``1234.5``, ``"1234.50"``, ``"1 234,50"`` (with ordinary or non-breaking spaces), dates as
``ГГГГ-ММ-ДДTчч:мм:сс`` without a zone (Moscow time, 1C's local time; an explicit zone is honoured)
or ``ДД.ММ.ГГГГ чч:мм:сс``, and the file as base64 broken into lines (1C's ``Base64Строка`` does).
Strict about what it means: every problem is an :class:`InvalidInvoice` naming the key.

The contract (docs/invoices.md): «Ид», «Номер», «Дата», «ИНН», «Заказ», «Сумма», «Назначение»,
«СтатусОплаты», «СуммаОплаты», «ВерсияДанных», «Файл» (base64 PDF), «ИмяФайла».
"""

from __future__ import annotations

import base64
import binascii
import enum
import hashlib
import io
import re
from dataclasses import dataclass, field
from datetime import UTC, datetime
from decimal import Decimal, InvalidOperation
from typing import Any
from zoneinfo import ZoneInfo

from pypdf import PdfReader
from pypdf.errors import PyPdfError

from integrations import jsonsafe
from integrations.onec.errors import InvalidInvoice, InvoiceMismatch
from integrations.validation import validate_inn

MSK = ZoneInfo("Europe/Moscow")
TEXT_LIMIT = 2000
KEY_LIMIT = 64
CURSOR_LIMIT = 200
# A PDF's header may follow up to 1 KiB of junk (ISO 32000-1, annex H); readers accept that.
PDF_MAGIC = b"%PDF-"
PDF_MAGIC_WITHIN = 1024
# 1C's "empty date" (Дата(1, 1, 1)): a date that was never filled in.
EMPTY_DATE_YEAR = 1

_SPACES = re.compile(r"[\s\u00a0\u202f\u2009]+")
_AMOUNT = re.compile(r"-?\d+(?:[.,]\d+)?")
_BASE64_WS = re.compile(rb"\s+")


class PaymentStatus(enum.StrEnum):
    """Статус оплаты: as obmen stores it; 1C's words in :data:`PAYMENT_WORDS`."""

    UNPAID = "unpaid"
    PARTLY_PAID = "partly_paid"
    PAID = "paid"
    CANCELLED = "cancelled"


PAYMENT_WORDS: dict[str, PaymentStatus] = {
    "не оплачен": PaymentStatus.UNPAID,
    "неоплачен": PaymentStatus.UNPAID,
    "оплачен частично": PaymentStatus.PARTLY_PAID,
    "частично оплачен": PaymentStatus.PARTLY_PAID,
    "оплачен": PaymentStatus.PAID,
    "отменен": PaymentStatus.CANCELLED,
}


@dataclass(frozen=True)
class InvoiceFile:
    content: bytes
    name: str | None
    sha256: str = field(init=False)

    def __post_init__(self) -> None:
        object.__setattr__(self, "sha256", hashlib.sha256(self.content).hexdigest())


@dataclass(frozen=True)
class Invoice:
    """One invoice document as 1C holds it now."""

    onec_id: str
    number: str
    issued_at: datetime
    customer_inn: str
    order_id: str
    amount: Decimal
    purpose: str
    payment_status: PaymentStatus
    paid_amount: Decimal
    file: InvoiceFile
    data_version: str | None


@dataclass(frozen=True)
class InvoiceChange:
    """An entry of the change list: what changed, and 1C's data version to compare with ours."""

    onec_id: str
    number: str
    payment_status: PaymentStatus
    paid_amount: Decimal
    data_version: str | None
    changed_at: datetime | None


@dataclass(frozen=True)
class RejectedChange:
    """An entry of the change list that breaks the contract: kept visible, never blocking the feed."""

    position: int
    onec_id: str | None
    error: InvalidInvoice


@dataclass(frozen=True)
class ChangesPage:
    changes: list[InvoiceChange]
    rejected: list[RejectedChange]
    cursor: str
    has_more: bool


# --- the request we send ------------------------------------------------------------------------
def invoice_request(order_id: str, amount: Decimal, customer_inn: str, request_key: str) -> dict[str, str]:
    """The body of ``POST /invoices``: money as a decimal string, so 1C never sees a float."""
    return {
        "ИдЗапроса": request_key,
        "Заказ": order_id,
        "Сумма": f"{amount.quantize(Decimal('0.01'))}",
        "ИНН": customer_inn,
    }


# --- reading answers ----------------------------------------------------------------------------
def load_json(content: bytes) -> Any:
    """The JSON of an answer, after a byte-order mark if any; numbers with a point stay decimals."""
    try:
        text = content.decode("utf-8-sig")
    except UnicodeDecodeError as exc:
        raise InvalidInvoice("(тело ответа)", f"not UTF-8 at byte {exc.start}") from exc
    try:
        return jsonsafe.loads(text, parse_float=Decimal)
    except ValueError as exc:
        raise InvalidInvoice("(тело ответа)", f"not JSON: {exc}") from exc


def parse_invoice(raw: Any, *, max_file_bytes: int) -> Invoice:
    """An :class:`Invoice` from 1C's JSON object, or :class:`InvalidInvoice` naming the key."""
    doc = _keys(raw, "(счёт)")
    amount = parse_amount(_required(doc, "Сумма"), "Сумма")
    if amount <= 0:
        raise InvalidInvoice("Сумма", f"an invoice is for a positive amount, not {amount}")
    status = parse_payment_status(doc.get("статусоплаты"))
    paid = _paid_amount(doc, status, amount)
    return Invoice(
        onec_id=_text(_required(doc, "Ид"), "Ид", KEY_LIMIT),
        number=_text(_required(doc, "Номер"), "Номер", KEY_LIMIT),
        issued_at=parse_datetime(_required(doc, "Дата"), "Дата"),
        customer_inn=_inn(_required(doc, "ИНН")),
        order_id=_text(_required(doc, "Заказ"), "Заказ", KEY_LIMIT),
        amount=amount,
        purpose=_text(doc.get("назначение", ""), "Назначение", TEXT_LIMIT, empty_ok=True),
        payment_status=status,
        paid_amount=paid,
        file=InvoiceFile(
            decode_pdf(_required(doc, "Файл"), max_file_bytes),
            _optional_text(doc.get("имяфайла"), "ИмяФайла", 255),
        ),
        data_version=_optional_text(doc.get("версияданных"), "ВерсияДанных", KEY_LIMIT),
    )


def check_matches(invoice: Invoice, *, order_id: str, amount: Decimal, customer_inn: str) -> None:
    """1C answered the invoice we asked for: same order, amount and customer, or :class:`InvoiceMismatch`."""
    if invoice.order_id != order_id:
        raise InvoiceMismatch("Заказ", order_id, invoice.order_id)
    if invoice.amount != amount:
        raise InvoiceMismatch("Сумма", f"{amount:.2f}", f"{invoice.amount:.2f}")
    if invoice.customer_inn != customer_inn:
        raise InvoiceMismatch("ИНН", customer_inn, invoice.customer_inn)


def parse_changes(raw: Any) -> ChangesPage:
    """One page of the change list; a bad entry is set aside in ``rejected``, the rest still count."""
    page = _keys(raw, "(список изменений)")
    entries = _required(page, "Изменения")
    if not isinstance(entries, list):
        raise InvalidInvoice("Изменения", f"a list is expected, not {type(entries).__name__}")
    cursor = _required(page, "Курсор")
    if isinstance(cursor, bool) or not isinstance(cursor, str | int):
        raise InvalidInvoice("Курсор", "a string or an integer is expected")
    changes: list[InvoiceChange] = []
    rejected: list[RejectedChange] = []
    for position, entry in enumerate(entries):
        try:
            changes.append(_change(entry))
        except InvalidInvoice as exc:
            raw_id = entry.get("Ид") if isinstance(entry, dict) else None
            rejected.append(RejectedChange(position, str(raw_id) if raw_id is not None else None, exc))
    return ChangesPage(
        changes=changes,
        rejected=rejected,
        cursor=_text(str(cursor), "Курсор", CURSOR_LIMIT),
        has_more=_flag(page.get("естьеще", False), "ЕстьЕще"),
    )


def _change(raw: Any) -> InvoiceChange:
    entry = _keys(raw, "(изменение)")
    status = parse_payment_status(entry.get("статусоплаты"))
    paid_raw = entry.get("суммаоплаты")
    changed = entry.get("изменено")
    return InvoiceChange(
        onec_id=_text(_required(entry, "Ид"), "Ид", KEY_LIMIT),
        number=_text(_required(entry, "Номер"), "Номер", KEY_LIMIT),
        payment_status=status,
        paid_amount=parse_amount(paid_raw, "СуммаОплаты") if paid_raw is not None else Decimal("0.00"),
        data_version=_optional_text(entry.get("версияданных"), "ВерсияДанных", KEY_LIMIT),
        changed_at=parse_datetime(changed, "Изменено") if changed not in (None, "") else None,
    )


# --- the field readers --------------------------------------------------------------------------
def parse_amount(value: Any, field: str) -> Decimal:
    """Rubles with at most 2 decimals, from a JSON number or a string such as ``"1 234,50"``."""
    if isinstance(value, bool) or not isinstance(value, str | int | Decimal):
        raise InvalidInvoice(field, f"an amount is a number or a decimal string, not {type(value).__name__}")
    if isinstance(value, str):
        text = _SPACES.sub("", value)
        if not _AMOUNT.fullmatch(text):
            raise InvalidInvoice(field, f"{value!r} is not an amount such as 1234.50 or 1 234,50")
        value = text.replace(",", ".")
    try:
        amount = Decimal(value)
    except InvalidOperation as exc:
        raise InvalidInvoice(field, f"{value!r} is not an amount") from exc
    if not amount.is_finite():
        raise InvalidInvoice(field, f"{value!r} is not an amount")
    if amount != amount.quantize(Decimal("0.01")):
        raise InvalidInvoice(field, f"{value} has more than 2 decimals (kopecks)")
    if amount < 0:
        raise InvalidInvoice(field, f"{value} is negative")
    return amount.quantize(Decimal("0.01"))


_DATE_FORMATS = ("%Y-%m-%dT%H:%M:%S", "%d.%m.%Y %H:%M:%S", "%Y-%m-%d", "%d.%m.%Y")


def parse_datetime(value: Any, field: str) -> datetime:
    """An aware UTC datetime; 1C's zone-less local time is Moscow time."""
    if not isinstance(value, str):
        raise InvalidInvoice(field, f"a date is a string ГГГГ-ММ-ДДTчч:мм:сс, not {type(value).__name__}")
    text = value.strip()
    moment = None
    for fmt in _DATE_FORMATS:
        try:
            moment = datetime.strptime(text, fmt)
            break
        except ValueError:
            continue
    if moment is None:
        try:
            moment = datetime.fromisoformat(text)
        except ValueError as exc:
            raise InvalidInvoice(field, f"{value!r} is not a date ГГГГ-ММ-ДДTчч:мм:сс") from exc
    if moment.year == EMPTY_DATE_YEAR:
        raise InvalidInvoice(field, "the date is empty (0001-01-01, 1C's blank date)")
    if moment.tzinfo is None:
        moment = moment.replace(tzinfo=MSK)
    return moment.astimezone(UTC)


def parse_payment_status(value: Any) -> PaymentStatus:
    """1C's words («Не оплачен», «Оплачен частично», «Оплачен», «Отменён»); absent means not paid."""
    if value is None or value == "":
        return PaymentStatus.UNPAID
    if not isinstance(value, str):
        raise InvalidInvoice("СтатусОплаты", f"a word is expected, not {type(value).__name__}")
    word = _SPACES.sub(" ", value.strip().lower().replace("ё", "е"))
    status = PAYMENT_WORDS.get(word)
    if status is None:
        known = "«Не оплачен», «Оплачен частично», «Оплачен», «Отменён»"
        raise InvalidInvoice("СтатусОплаты", f"{value!r} is not one of {known}")
    return status


def decode_pdf(value: Any, max_bytes: int) -> bytes:
    """The PDF of «Файл»: base64 (line breaks allowed), at most ``max_bytes``, a PDF that parses."""
    if not isinstance(value, str) or not value.strip():
        raise InvalidInvoice("Файл", "the file is a non-empty base64 string")
    compact = _BASE64_WS.sub(b"", value.encode("ascii", errors="replace"))
    if len(compact) // 4 * 3 > max_bytes + 2:
        raise InvalidInvoice("Файл", f"the file is larger than {max_bytes} bytes")
    try:
        content = base64.b64decode(compact, validate=True)
    except (binascii.Error, ValueError) as exc:
        raise InvalidInvoice("Файл", f"not valid base64: {exc}") from exc
    if len(content) > max_bytes:
        raise InvalidInvoice("Файл", f"the file is {len(content)} bytes, more than {max_bytes}")
    if PDF_MAGIC not in content[: PDF_MAGIC_WITHIN + len(PDF_MAGIC)]:
        raise InvalidInvoice("Файл", f"not a PDF: it begins {content[:16]!r}")
    _check_pdf_parses(content)
    return content


def _check_pdf_parses(content: bytes) -> None:
    try:
        pages = len(PdfReader(io.BytesIO(content), strict=False).pages)
    except (PyPdfError, ValueError, KeyError, TypeError, AttributeError, IndexError, RecursionError) as exc:
        raise InvalidInvoice("Файл", f"the PDF does not parse: {type(exc).__name__}: {exc}") from exc
    if pages < 1:
        raise InvalidInvoice("Файл", "the PDF has no pages")


def _keys(raw: Any, what: str) -> dict[str, Any]:
    """The object's keys folded (case, «ё»), so «ИД» and «Ид» read the same; two that fold alike are refused."""
    if not isinstance(raw, dict):
        raise InvalidInvoice(what, f"a JSON object is expected, not {type(raw).__name__}")
    folded: dict[str, Any] = {}
    for key, value in raw.items():
        name = _fold(key)
        if name in folded:
            raise InvalidInvoice(str(key), "the key is given twice (in different spellings)")
        folded[name] = value
    return folded


def _fold(key: str) -> str:
    return key.strip().lower().replace("ё", "е")


def _required(doc: dict[str, Any], key: str) -> Any:
    value = doc.get(_fold(key))
    if value is None:
        raise InvalidInvoice(key, "missing")
    return value


def _text(value: Any, field: str, limit: int, *, empty_ok: bool = False) -> str:
    if isinstance(value, int) and not isinstance(value, bool):
        value = str(value)
    if not isinstance(value, str):
        raise InvalidInvoice(field, f"a string is expected, not {type(value).__name__}")
    text = value.strip()
    if not text and not empty_ok:
        raise InvalidInvoice(field, "empty")
    if len(text) > limit:
        raise InvalidInvoice(field, f"longer than {limit} characters")
    return text


def _optional_text(value: Any, field: str, limit: int) -> str | None:
    if value is None or value == "":
        return None
    return _text(value, field, limit)


def _inn(value: Any) -> str:
    try:
        return validate_inn(value.strip() if isinstance(value, str) else value)
    except ValueError as exc:
        raise InvalidInvoice("ИНН", str(exc)) from exc


def _paid_amount(doc: dict[str, Any], status: PaymentStatus, amount: Decimal) -> Decimal:
    raw = doc.get("суммаоплаты")
    if raw is not None:
        return parse_amount(raw, "СуммаОплаты")
    return amount if status is PaymentStatus.PAID else Decimal("0.00")


def _flag(value: Any, field: str) -> bool:
    if isinstance(value, bool):
        return value
    if isinstance(value, str) and value.strip().lower() in ("да", "нет", "true", "false"):
        return value.strip().lower() in ("да", "true")
    raise InvalidInvoice(field, f"true/false (or «Да»/«Нет») is expected, not {value!r}")
