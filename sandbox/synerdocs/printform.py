"""The printable form with the operator's signature stamp («синий штамп»), as a real PDF (reportlab).

One A4 page: the document's card (name, file, size, SHA-256, sender and recipient boxes, times)
and a blue stamp block per signature — «Документ подписан электронной подписью», the signer, the
certificate's serial number and validity, the signing time and the operator that fixed it.
"""

from __future__ import annotations

import hashlib
import io
from dataclasses import dataclass
from datetime import datetime
from functools import cache
from pathlib import Path

from reportlab.lib import colors
from reportlab.lib.pagesizes import A4
from reportlab.lib.units import mm
from reportlab.pdfbase import pdfmetrics
from reportlab.pdfbase.ttfonts import TTFont
from reportlab.pdfgen import canvas

from sandbox.synerdocs.signatures import Signer

# Debian's fonts-dejavu-core; reportlab's own fonts have no Cyrillic.
FONT_PATHS = (
    Path("/usr/share/fonts/truetype/dejavu/DejaVuSans.ttf"),
    Path("/usr/share/fonts/TTF/DejaVuSans.ttf"),
    Path("/usr/share/fonts/dejavu/DejaVuSans.ttf"),
)
FONT = "DejaVuSans"
STAMP_BLUE = colors.HexColor("#1f4e9c")


@dataclass(frozen=True)
class Stamp:
    role: str  # «Отправитель», «Получатель»
    organization: str
    signer: Signer | None
    signed_at: datetime


@dataclass(frozen=True)
class Card:
    title: str
    file_name: str
    content: bytes
    sender: str
    recipient: str
    document_id: str
    sent_at: datetime
    status: str


@cache
def _font() -> str:
    for path in FONT_PATHS:
        if path.exists():
            pdfmetrics.registerFont(TTFont(FONT, str(path)))
            return FONT
    raise RuntimeError(
        f"no Cyrillic TrueType font for the print form; install fonts-dejavu-core ({FONT_PATHS[0]})"
    )


def _when(value: datetime) -> str:
    return value.strftime("%d.%m.%Y %H:%M:%S %Z")


def render(card: Card, stamps: list[Stamp], operator: str) -> bytes:
    font = _font()
    out = io.BytesIO()
    pdf = canvas.Canvas(out, pagesize=A4, invariant=True)
    pdf.setTitle(f"{card.title} — печатная форма")
    pdf.setAuthor(operator)
    width, height = A4
    y = height - 25 * mm
    pdf.setFont(font, 15)
    pdf.drawString(20 * mm, y, card.title)
    pdf.setFont(font, 10)
    lines = [
        f"Файл: {card.file_name} ({len(card.content)} байт)",
        f"SHA-256: {hashlib.sha256(card.content).hexdigest()}",
        f"Идентификатор документа: {card.document_id}",
        f"Отправитель: {card.sender}",
        f"Получатель: {card.recipient}",
        f"Отправлен: {_when(card.sent_at)}",
        f"Статус: {card.status}",
    ]
    for line in lines:
        y -= 6 * mm
        pdf.drawString(20 * mm, y, line)
    y -= 12 * mm
    for stamp in stamps:
        y = _stamp(pdf, font, stamp, operator, y)
    pdf.showPage()
    pdf.save()
    return out.getvalue()


def _stamp(pdf: canvas.Canvas, font: str, stamp: Stamp, operator: str, top: float) -> float:
    box_height = 40 * mm
    bottom = top - box_height
    pdf.setStrokeColor(STAMP_BLUE)
    pdf.setFillColor(STAMP_BLUE)
    pdf.setLineWidth(1.5)
    pdf.roundRect(20 * mm, bottom, 120 * mm, box_height, 4 * mm, stroke=1, fill=0)
    pdf.setFont(font, 10)
    pdf.drawString(25 * mm, top - 7 * mm, "ДОКУМЕНТ ПОДПИСАН ЭЛЕКТРОННОЙ ПОДПИСЬЮ")
    pdf.setFont(font, 8)
    signer = stamp.signer
    lines = [f"{stamp.role}: {stamp.organization}"]
    if signer is not None:
        lines += [
            f"Владелец: {signer.subject}" + (f", ИНН {signer.inn}" if signer.inn else ""),
            f"Сертификат: {signer.serial}",
            f"Действителен: с {signer.not_before:%d.%m.%Y} по {signer.not_after:%d.%m.%Y}",
        ]
    else:
        lines.append("Сертификат подписи не распознан")
    lines += [f"Подписан: {_when(stamp.signed_at)}", f"Оператор ЭДО: {operator}"]
    y = top - 13 * mm
    for line in lines:
        pdf.drawString(25 * mm, y, line)
        y -= 4.5 * mm
    pdf.setFillColor(colors.black)
    pdf.setStrokeColor(colors.black)
    return bottom - 8 * mm
