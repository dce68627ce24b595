"""The invoice's printed form (печатная форма счёта): a small real PDF made with fpdf2.

fpdf2's built-in fonts are Latin-1 only and the sandbox ships no TrueType font, so Russian text is
transliterated on the page; the number, order, ИНН and amount appear exactly as in the JSON. The
same invoice revision always renders the same bytes (the creation date is the invoice's date).
"""

from __future__ import annotations

from datetime import datetime
from decimal import Decimal

from fpdf import FPDF

_TRANSLIT = {
    "а": "a", "б": "b", "в": "v", "г": "g", "д": "d", "е": "e", "ё": "e", "ж": "zh", "з": "z",
    "и": "i", "й": "y", "к": "k", "л": "l", "м": "m", "н": "n", "о": "o", "п": "p", "р": "r",
    "с": "s", "т": "t", "у": "u", "ф": "f", "х": "h", "ц": "ts", "ч": "ch", "ш": "sh", "щ": "sch",
    "ъ": "", "ы": "y", "ь": "", "э": "e", "ю": "yu", "я": "ya",
}  # fmt: skip


def latin(text: str) -> str:
    out = []
    for ch in text:
        low = ch.lower()
        if low in _TRANSLIT:
            sub = _TRANSLIT[low]
            out.append(sub.capitalize() if ch != low else sub)
        elif ch == "№":
            out.append("No")
        elif ord(ch) < 256:
            out.append(ch)
        else:
            out.append("?")
    return "".join(out)


def render_invoice(
    *,
    number: str,
    issued_at: datetime,
    customer_inn: str,
    order_id: str,
    amount: Decimal,
    purpose: str,
    revision: int,
) -> bytes:
    pdf = FPDF()
    pdf.set_creation_date(issued_at)
    pdf.set_title(latin(f"Счет на оплату № {number}"))
    pdf.add_page()
    pdf.set_font("Helvetica", style="B", size=16)
    pdf.cell(text=latin(f"Счет на оплату № {number} от {issued_at:%d.%m.%Y}"), new_x="LMARGIN", new_y="NEXT")
    pdf.set_font("Helvetica", size=11)
    for line in (
        f"Заказ: {order_id}",
        f"ИНН покупателя: {customer_inn}",
        f"Сумма: {amount:.2f} RUB",
        f"Редакция: {revision}",
    ):
        pdf.cell(text=latin(line), new_x="LMARGIN", new_y="NEXT")
    pdf.multi_cell(0, 6, text=latin(f"Назначение платежа: {purpose}"))
    return bytes(pdf.output())
