"""Which 1C invoices a bank payment's purpose (назначение платежа) names.

Payers write the invoice every way there is: «Оплата по счету № 123 от 01.12.2026», «по сч. 123»,
«счёт №123», «по сч 123», «Оплата счета 123, 124», «по счетам № 12 и № 13», with or without a date,
with the noise real payment orders carry («В т.ч. НДС 20% 205-75», «Сумма 1234.50», contract and
bank-account numbers). A number counts only right after a word for an invoice («счёт» in any case
form, «сч», «сч.»); a счёт-фактура (VAT invoice), a bank or personal account («р/сч», «расчётный
счёт», «лицевой счёт», 20-digit account numbers), percentages and amounts do not.

Payers also shorten 1C's numbers («0000-000123» becomes «123»): :func:`number_key` is the part
both keep, which the register indexes to match a payment to an invoice (with the payer's ИНН).
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from datetime import date

_MONTHS = {
    "январ": 1, "феврал": 2, "март": 3, "апрел": 4, "ма": 5, "июн": 6,
    "июл": 7, "август": 8, "сентябр": 9, "октябр": 10, "ноябр": 11, "декабр": 12,
}  # fmt: skip

_DATE = r"""(?:
    (?P<d>\d{1,2})[./-](?P<m>\d{1,2})[./-](?P<y>\d{4}|\d{2})(?!\d)
  | (?P<iy>\d{4})-(?P<im>\d{2})-(?P<id>\d{2})(?!\d)
  | (?P<wd>\d{1,2})\s{1,3}(?P<wm>[а-яё]{1,12})\s{1,3}(?P<wy>\d{4})(?!\d)
)"""
# Bounded quantifiers only (here and below): a segment of a number is at most 40 characters, and
# the text has its runs of spaces collapsed to one, so no pattern backtracks over a long run.
_NUMBER = (
    r"(?:[0-9a-zа-яё]{1,40}[-/]){0,8}[0-9a-zа-яё]{0,40}\d[0-9a-zа-яё]{0,40}(?:[-/][0-9a-zа-яё]{1,40}){0,8}"
)
_SIGN = r"(?:№+|n|no\.?|\#|номер)"
# An invoice word: «счёт» in its case forms (not «счётчик», not inside «расчёт»), «сч», «сч.».
_MARKER = re.compile(
    r"(?<![0-9a-zа-яё/\\])(?:сч[её]т(?:ам|ами|ах|ов|ом|у|а|е)?(?:-(?:договор|оферт)[а-яё]{0,12})?|сч\.?)"
    r"(?![а-яёa-z])"
    r"(?!-?\s{0,3}фактур)(?:\s{1,3}на\s{1,3}оплату)?",
    re.IGNORECASE,
)
# After the word: «от <date>» may come first, then the number (with or without №), then «от <date>».
_ITEM = re.compile(
    rf"\s{{0,3}}(?:от\s{{0,3}}{_DATE}\s{{0,3}}(?:г\.?|года)?\s{{0,3}})?{_SIGN}?\s{{0,3}}(?P<number>(?>{_NUMBER}))"
    rf"(?![.,]\d|\s{{0,3}}%|\s{{0,3}}(?:руб|р\.|коп))"
    rf"(?:\s{{0,3}}(?:г\.|года)?\s{{0,3}}от\s{{0,3}}{_DATE.replace('?P<', '?P<a')})?",
    re.IGNORECASE | re.VERBOSE,
)
_LIST_SEPARATOR = re.compile(r"\s{0,3}(?:,|;|\+|\bи\b)\s{0,3}", re.IGNORECASE)
# Words before «счёт» that make it a bank or personal account, not an invoice.
_ACCOUNT_BEFORE = re.compile(
    r"(?:лицев|расч[её]тн|банковск|корр?(?:еспондентск)?|ссудн|депозитн|карточн)[а-яё]{0,12}\.?\s{0,3}$"
    r"|(?:р|л|к)\s{0,3}/\s{0,3}$",
    re.IGNORECASE,
)
_ACCOUNT_NUMBER = re.compile(r"\d{20}")
_DATE_LIKE = re.compile(r"\d{4}-\d{1,2}-\d{1,2}|\d{1,2}-\d{1,2}-(?:\d{4}|\d{2})")
_DIGITS = re.compile(r"\d+")


@dataclass(frozen=True)
class InvoiceReference:
    number: str  # as the payer wrote it
    key: str  # :func:`number_key` of it
    date: date | None


@dataclass(frozen=True)
class PurposeReading:
    """The invoices a purpose names, in order of appearance, each once."""

    references: tuple[InvoiceReference, ...]

    @property
    def keys(self) -> tuple[str, ...]:
        return tuple(dict.fromkeys(r.key for r in self.references))

    @property
    def ambiguous(self) -> bool:
        """More than one invoice named, or one number given with two different dates: a person decides."""
        if len(self.keys) > 1:
            return True
        dates = {r.date for r in self.references if r.date is not None}
        return len(dates) > 1

    @property
    def single(self) -> InvoiceReference | None:
        """The one invoice named, when exactly one is."""
        if len(self.keys) != 1 or self.ambiguous:
            return None
        dated = [r for r in self.references if r.date is not None]
        return dated[0] if dated else self.references[0]


def number_key(number: str) -> str:
    """The part of an invoice number that payers keep: after the last «-», the first run of digits,
    without leading zeros (``0000-000123`` → ``123``, ``ТД-45`` → ``45``, ``123/2026`` → ``123``)."""
    tail = number.rsplit("-", 1)[-1]
    digits = _DIGITS.search(tail) or _DIGITS.search(number)
    if digits is None:
        return number.strip().upper()
    return digits.group().lstrip("0") or "0"


def read_purpose(purpose: str) -> PurposeReading:
    """The invoice numbers a payment purpose names; empty when it names none."""
    text = " ".join(purpose.split())
    found: list[InvoiceReference] = []
    for marker in _MARKER.finditer(text):
        if _ACCOUNT_BEFORE.search(text[max(0, marker.start() - 30) : marker.start()]):
            continue
        found.extend(_items(text, marker.end()))
    unique = tuple(dict.fromkeys(found))
    return PurposeReading(unique)


def _items(text: str, at: int) -> list[InvoiceReference]:
    items: list[InvoiceReference] = []
    while True:
        match = _ITEM.match(text, at)
        if match is None:
            return items
        number = match.group("number")
        if _ACCOUNT_NUMBER.fullmatch(number) or _DATE_LIKE.fullmatch(number):
            return items
        items.append(InvoiceReference(number, number_key(number), _date_of(match)))
        separator = _LIST_SEPARATOR.match(text, match.end())
        if separator is None:
            return items
        at = separator.end()


def _date_of(match: re.Match[str]) -> date | None:
    for prefix in ("", "a"):
        groups = {k[len(prefix) :]: v for k, v in match.groupdict().items() if k.startswith(prefix) and v}
        try:
            if groups.get("d"):
                year = int(groups["y"])
                return date(year + 2000 if year < 100 else year, int(groups["m"]), int(groups["d"]))
            if groups.get("iy"):
                return date(int(groups["iy"]), int(groups["im"]), int(groups["id"]))
            if groups.get("wd"):
                month = next(
                    (n for stem, n in _MONTHS.items() if groups["wm"].lower().startswith(stem)), None
                )
                if month is not None:
                    return date(int(groups["wy"]), month, int(groups["wd"]))
        except ValueError:
            continue
    return None
