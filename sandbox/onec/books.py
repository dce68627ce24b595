"""What the emulated 1C holds: invoices (счета на оплату), their numbering, the change registration
the change list reads, and payments and corrections that happen over (sandbox) time.

An invoice for an order and amount is made once: asking again for the same order, amount and
customer returns it (1C finds it by those). A correction (the customer's details, the holding's
wording) is a new revision: a new «Назначение», a new PDF, a new «ВерсияДанных». A payment changes
only the payment status and the paid amount; 1C keeps those in a register, not in the document,
so its «ВерсияДанных» stays. Every change is registered for the change list, in order.
"""

from __future__ import annotations

import hashlib
import uuid
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from decimal import Decimal
from zoneinfo import ZoneInfo

from sandbox.onec.pdf import render_invoice

MSK = ZoneInfo("Europe/Moscow")
UNPAID = "Не оплачен"
PARTLY_PAID = "Оплачен частично"
PAID = "Оплачен"
CANCELLED = "Отменен"
WORDINGS = (
    "Оплата по счету № {number} от {date} за автомобиль по заказу {order}. "
    "Сумма {amount} руб., в т.ч. НДС 20% {vat} руб.",
    "Оплата по счету № {number} от {date} по заказу {order} (реквизиты покупателя уточнены). "
    "Сумма {amount} руб., в т.ч. НДС 20% {vat} руб.",
    "Оплата по счету № {number} от {date}, заказ {order}, автомобиль и дополнительное оборудование. "
    "Сумма {amount} руб., в т.ч. НДС 20% {vat} руб.",
)


@dataclass
class Invoice:
    id: str
    number: str
    issued_at: datetime
    inn: str
    order: str
    amount: Decimal
    revision: int = 1
    status: str = UNPAID
    paid: Decimal = Decimal("0.00")
    changed_at: datetime | None = None
    pdf: bytes = b""

    @property
    def purpose(self) -> str:
        vat = (self.amount * 20 / 120).quantize(Decimal("0.01"))
        wording = WORDINGS[(self.revision - 1) % len(WORDINGS)]
        return wording.format(
            number=self.number,
            date=f"{self.issued_at.astimezone(MSK):%d.%m.%Y}",
            order=self.order,
            amount=f"{self.amount:.2f}",
            vat=f"{vat:.2f}",
        )

    @property
    def data_version(self) -> str:
        """Like 1C's DataVersion: changes whenever the document itself is written anew."""
        return hashlib.sha256(f"{self.id}:{self.revision}".encode()).hexdigest()[:16]

    def render(self) -> None:
        self.pdf = render_invoice(
            number=self.number,
            issued_at=self.issued_at,
            customer_inn=self.inn,
            order_id=self.order,
            amount=self.amount,
            purpose=self.purpose,
            revision=self.revision,
        )


@dataclass(order=True)
class Scheduled:
    due: datetime
    invoice_id: str = field(compare=False)
    action: str = field(compare=False)  # "pay", "correct", "cancel"
    amount: Decimal | None = field(default=None, compare=False)


class Books:
    """The emulated infobase; the emulator serialises access to it."""

    def __init__(self) -> None:
        self.invoices: dict[str, Invoice] = {}
        self.by_request: dict[tuple[str, Decimal, str], str] = {}
        self.by_number: dict[str, str] = {}
        # Change registration: (sequence number, invoice id), read by the change list.
        self.changes: list[tuple[int, str]] = []
        self.scheduled: list[Scheduled] = []
        self._numbers = 0

    def invoice_for(self, order: str, amount: Decimal, inn: str, now: datetime) -> Invoice:
        key = (order, amount, inn)
        existing = self.by_request.get(key)
        if existing is not None:
            return self.invoices[existing]
        self._numbers += 1
        invoice = Invoice(
            id=str(uuid.uuid4()),
            number=f"0000-{self._numbers:06d}",
            issued_at=now.replace(microsecond=0),
            inn=inn,
            order=order,
            amount=amount,
        )
        invoice.render()
        self.invoices[invoice.id] = invoice
        self.by_request[key] = invoice.id
        self.by_number[invoice.number] = invoice.id
        self._register(invoice, now)
        return invoice

    def find(self, invoice_id: str | None = None, number: str | None = None) -> Invoice | None:
        if invoice_id is None and number is not None:
            invoice_id = self.by_number.get(number)
        return self.invoices.get(invoice_id) if invoice_id else None

    def pay(self, invoice: Invoice, amount: Decimal | None, now: datetime) -> None:
        if invoice.status == CANCELLED:
            return
        invoice.paid = min(invoice.amount, invoice.paid + (amount if amount is not None else invoice.amount))
        invoice.status = PAID if invoice.paid >= invoice.amount else PARTLY_PAID if invoice.paid else UNPAID
        self._register(invoice, now)

    def correct(self, invoice: Invoice, now: datetime) -> None:
        invoice.revision += 1
        invoice.render()
        self._register(invoice, now)

    def cancel(self, invoice: Invoice, now: datetime) -> None:
        invoice.status = CANCELLED
        self._register(invoice, now)

    def schedule(self, item: Scheduled) -> None:
        self.scheduled.append(item)
        self.scheduled.sort()

    def materialize(self, now: datetime) -> None:
        """Apply every scheduled payment, correction and cancellation that is due by ``now``."""
        while self.scheduled and self.scheduled[0].due <= now:
            item = self.scheduled.pop(0)
            invoice = self.invoices.get(item.invoice_id)
            if invoice is None:
                continue
            if item.action == "pay":
                self.pay(invoice, item.amount, item.due)
            elif item.action == "correct":
                self.correct(invoice, item.due)
            elif item.action == "cancel":
                self.cancel(invoice, item.due)

    def changes_after(self, after: int, limit: int) -> tuple[list[tuple[int, Invoice]], bool]:
        later = [(seq, self.invoices[i]) for seq, i in self.changes if seq > after]
        return later[:limit], len(later) > limit

    def auto(self, invoice: Invoice, pay_after_s: float | None, correct_after_s: float | None) -> None:
        """Schedule what the knobs say happens to every new invoice."""
        if correct_after_s is not None:
            self.schedule(
                Scheduled(invoice.issued_at + timedelta(seconds=correct_after_s), invoice.id, "correct")
            )
        if pay_after_s is not None:
            self.schedule(Scheduled(invoice.issued_at + timedelta(seconds=pay_after_s), invoice.id, "pay"))

    def _register(self, invoice: Invoice, now: datetime) -> None:
        invoice.changed_at = now
        self.changes.append((len(self.changes) + 1, invoice.id))
