"""SEP notification letters: is this one, what kind, and its fields (DESIGN.md, "The SEP contract").

**The recognition rule.** A letter is a SEP letter when

1. its sender is a SEP sender (``OBMEN_SEP_MAIL_SENDERS``: addresses, or domains written ``@elpts.ru``
   that also cover their subdomains), or
2. its subject or text names SEP (``СЭП``, ``ЭПТС``, «электронных паспортов», ``elpts``) **and**
   carries an application number **and** at least one of a confirmation code, an ЭПТС number or a
   VIN — a notification forwarded inline by a colleague, or sent from a new SEP address.

The rule is applied to the letter and then to each letter forwarded inside it (``message/rfc822``),
so a notification forwarded as an attachment is read as the notification it carries.

**Fields** are found by their labels, wherever the layout puts them (a line, a table cell, a
sentence): «Номер заявления» or «заявление №», «Номер ЭПТС», «VIN» (full, or masked with ``*``,
``•`` or ``#``, Cyrillic look-alikes mapped to Latin and the mapping kept), «Код подтверждения» (also
«…для лизингополучателя», «код акцепта»), «Подтвердить до» (``02.12.2026``, ``2026-12-02``,
«2 декабря 2026»). The text wins over the subject where both give an application number.
"""

from __future__ import annotations

import enum
import re
from collections.abc import Iterator, Sequence
from dataclasses import asdict, dataclass, field
from datetime import date
from typing import Any

from integrations.mail.parse import Letter
from integrations.validation import Lookalike, map_lookalikes, validate_epts


class Kind(enum.StrEnum):
    OWNERSHIP_CHANGE = "ownership_change"  # заявление на смену собственника
    LEASE_APPLICATION = "lease_application"  # заявление на внесение сведений о лизинге (lessee's code)
    LEASE_ENTERED = "lease_entered"  # сведения о лизинге внесены
    OTHER = "other"


# Words may run together: Python's own mail package (before 3.12) drops the space where it folds a
# long encoded subject, and the subject is where the kind is said.
KIND_PATTERNS: list[tuple[Kind, re.Pattern[str]]] = [
    (
        Kind.LEASE_ENTERED,
        re.compile(
            r"сведения\s{0,8}о\s{0,8}лизинге\s{0,8}внесены|внесены\s{0,8}сведения\s{0,8}о\s{0,8}лизинге"
        ),
    ),
    (
        Kind.LEASE_APPLICATION,
        re.compile(
            r"внесени\w{0,20}\s{0,8}сведений\s{0,8}о\s{0,8}лизинге|заявлени\w{0,20}\s{0,8}(?:о|на)\s{1,8}(?:внесени\w{0,20}\s{0,8})?лизинг"
        ),
    ),
    (
        Kind.OWNERSHIP_CHANGE,
        re.compile(r"смен\w{0,20}\s{0,8}собственник|переход\w{0,20}\s{0,8}прав\w{0,20}\s{0,8}собственност"),
    ),
]
SEP_MARKER = re.compile(r"\bСЭП\b|\bЭПТС\b|электронн\w{0,20}\s{1,8}паспорт|elpts", re.IGNORECASE)
_DASH = r"[:\-–—]"
_NUMBER = r"(?P<v>[0-9A-Za-z](?:[0-9A-Za-z\-/]{0,62}[0-9A-Za-z])?)"
APPLICATION_PATTERNS = [
    re.compile(rf"номер\s{{1,8}}заявления\s{{0,8}}(?:{_DASH}|№|#){{0,8}}\s{{0,8}}{_NUMBER}", re.IGNORECASE),
    re.compile(rf"заявлени\w{{0,20}}\s{{0,8}}(?:№|N[o°]?\.?|#)\s{{0,8}}{_NUMBER}", re.IGNORECASE),
]
EPTS_PATTERNS = [
    re.compile(
        rf"(?:ЭПТС|электронного\s{{1,8}}паспорта)\s{{0,8}}(?:№|N|номер)?\s{{0,8}}{_DASH}?\s{{0,8}}(?P<v>\d{{15}})(?!\d)",
        re.I,
    ),
    re.compile(
        rf"(?:ЭПТС|электронного\s{{1,8}}паспорта)\s{{0,8}}(?:№|N|номер)?\s{{0,8}}{_DASH}?\s{{0,8}}(?P<v>\d[\d \-]{{8,28}}\d)",
        re.I,
    ),
]
MASK = "*•#●✱_"
# A notification is a few hundred characters; a letter's fields are looked for in its first 64 KB.
# (Every pattern here has bounded quantifiers, so each is linear; this bounds the constant. A word's
# ending before a lazy run that could also take it is possessive, ``\w{0,20}+``: it is not tried
# 20 × 40 ways at every start.)
TEXT_SCANNED = 65_536
VIN_CHARACTER = re.compile(r"[A-HJ-NPR-Z0-9]")
VIN_PATTERN = re.compile(
    rf"\bVIN\b\)?(?:[\s\-]{{0,8}}(?:код|номер|№))?\s{{0,8}}{_DASH}?\s{{0,8}}(?P<v>[0-9A-Za-zА-Яа-яЁё{re.escape(MASK)}]{{5,25}})",
    re.IGNORECASE,
)
CODE_PATTERNS = [
    re.compile(
        rf"код\w{{0,20}}+\s{{1,8}}(?:для\s{{1,8}})?(?:подтверждени\w{{0,20}}+|акцепта)[^\n:]{{0,60}}?{_DASH}\s{{0,8}}(?P<v>[0-9A-Za-z]{{4,16}})\b",
        re.IGNORECASE,
    ),
    re.compile(
        r"код\w{0,20}\s{1,8}(?:для\s{1,8})?(?:подтверждени\w{0,20}|акцепта)\s{1,8}(?P<v>\d{4,16})\b",
        re.IGNORECASE,
    ),
]
MONTHS = {
    m: i
    for i, m in enumerate(
        (
            "января", "февраля", "марта", "апреля", "мая", "июня",
            "июля", "августа", "сентября", "октября", "ноября", "декабря",
        ),
        start=1,
    )
}  # fmt: skip
_DATE = r"(?P<v>\d{1,2}\.\d{1,2}\.\d{2,4}|\d{4}-\d{2}-\d{2}|\d{1,2}\s+[а-я]+\s+\d{4})"
CONFIRM_BY_PATTERN = re.compile(
    rf"(?:подтвердить|подтвердите|подтверждени\w{{0,20}}+|срок\w{{0,20}}+|действител\w{{0,20}}+|действует)[^\n\d]{{0,40}}?\bдо\b\s{{0,8}}{_DASH}?\s{{0,8}}{_DATE}",
    re.IGNORECASE,
)


@dataclass
class VinSeen:
    as_written: str
    # Latin capitals; masked positions are "*". None when it cannot be a VIN (reason in ``problem``).
    value: str | None
    masked: bool
    lookalikes: list[Lookalike] = field(default_factory=list)
    problem: str | None = None


@dataclass
class SepNotice:
    kind: Kind
    application_number: str | None
    epts: str | None
    vin: VinSeen | None
    code: str | None
    confirm_by: date | None
    recognised_by: str
    problems: list[str] = field(default_factory=list)

    def as_dict(self) -> dict[str, Any]:
        out = asdict(self)
        out["kind"] = self.kind.value
        out["confirm_by"] = self.confirm_by.isoformat() if self.confirm_by else None
        return out


@dataclass(frozen=True)
class Verdict:
    notice: SepNotice | None
    reason: str


def is_sep_sender(address: str | None, senders: Sequence[str]) -> bool:
    if not address or "@" not in address:
        return False
    address = address.lower()
    domain = address.rsplit("@", 1)[1]
    for entry in (s.strip().lower() for s in senders if s.strip()):
        if entry.startswith("@"):
            if domain == entry[1:] or domain.endswith("." + entry[1:]):
                return True
        elif address == entry:
            return True
    return False


def _first(patterns: Sequence[re.Pattern[str]], text: str) -> str | None:
    for pattern in patterns:
        found = pattern.search(text)
        if found:
            return found.group("v")
    return None


def _has_digit(value: str | None) -> str | None:
    return value if value and any(c.isdigit() for c in value) else None


def read_vin(written: str) -> VinSeen:
    mapped, lookalikes = map_lookalikes(written)
    mapped = re.sub(f"[{re.escape(MASK)}]", "*", mapped)
    masked = "*" in mapped
    if masked and len(mapped) != 17:
        # A mask of another length: keep what is visible at each end.
        head, tail = mapped[: mapped.index("*")], mapped[mapped.rindex("*") + 1 :]
        if len(head) + len(tail) >= 17:
            return VinSeen(written, None, True, lookalikes, f"masked VIN {written!r} is longer than 17")
        mapped = head + "*" * (17 - len(head) - len(tail)) + tail
    if len(mapped) != 17:
        return VinSeen(
            written, None, masked, lookalikes, f"VIN {written!r} has {len(mapped)} characters, not 17"
        )
    bad = sorted({c for c in mapped if c != "*" and not VIN_CHARACTER.fullmatch(c)})
    if bad:
        return VinSeen(
            written,
            None,
            masked,
            lookalikes,
            f"VIN {written!r} has characters a VIN never has: {''.join(bad)}",
        )
    if masked and len(mapped.replace("*", "")) < 6:
        return VinSeen(written, None, True, lookalikes, f"masked VIN {written!r} shows too little to match")
    return VinSeen(written, mapped, masked, lookalikes)


def read_date(value: str) -> date | None:
    value = value.strip().lower()
    try:
        if "." in value:
            day, month, year = (int(p) for p in value.split("."))
            return date(year + 2000 if year < 100 else year, month, day)
        if "-" in value:
            return date.fromisoformat(value)
        day_s, month_s, year_s = value.split()
        return date(int(year_s), MONTHS[month_s], int(day_s))
    except (ValueError, KeyError):
        return None


def _kind(subject: str, text: str) -> Kind:
    for source in (subject, text):
        lowered = source.lower().replace("ё", "е")
        for kind, pattern in KIND_PATTERNS:
            if pattern.search(lowered):
                return kind
    return Kind.OTHER


def extract(subject: str, text: str, recognised_by: str) -> SepNotice:
    subject, text = subject[:TEXT_SCANNED], text[:TEXT_SCANNED]
    problems: list[str] = []
    in_text = _has_digit(_first(APPLICATION_PATTERNS, text))
    in_subject = _has_digit(_first(APPLICATION_PATTERNS, subject))
    if in_text and in_subject and in_text != in_subject:
        problems.append(f"the subject names application {in_subject}, the text {in_text}: the text taken")
    both = f"{text}\n{subject}"
    epts = _first(EPTS_PATTERNS, both)
    if epts is not None:
        digits = re.sub(r"\D", "", epts)
        try:
            epts = validate_epts(digits)
        except ValueError as exc:
            problems.append(f"ЭПТС number {epts!r}: {exc}")
            epts = None
    vin_found = VIN_PATTERN.search(both)
    vin = read_vin(vin_found.group("v")) if vin_found else None
    if vin and vin.problem:
        problems.append(vin.problem)
    confirm_by = None
    date_found = CONFIRM_BY_PATTERN.search(text)
    if date_found:
        confirm_by = read_date(date_found.group("v"))
        if confirm_by is None:
            problems.append(f"confirm-by date {date_found.group('v')!r} is not a date")
    return SepNotice(
        kind=_kind(subject, text),
        application_number=in_text or in_subject,
        epts=epts,
        vin=vin,
        code=_first(CODE_PATTERNS, text),
        confirm_by=confirm_by,
        recognised_by=recognised_by,
        problems=problems,
    )


def _letters(letter: Letter, depth: int = 0) -> Iterator[tuple[str, Letter]]:
    yield ("the letter" if depth == 0 else f"a forwarded letter (level {depth})"), letter
    for inner in letter.forwarded:
        yield from _letters(inner, depth + 1)


def recognise(letter: Letter, senders: Sequence[str]) -> Verdict:
    """The SEP notice in ``letter`` (or in a letter forwarded inside it), or why there is none."""
    for where, candidate in _letters(letter):
        if is_sep_sender(candidate.sender, senders):
            notice = extract(candidate.subject, candidate.text, f"{where}: sender {candidate.sender}")
            return Verdict(notice, notice.recognised_by)
        if SEP_MARKER.search(f"{candidate.subject[:TEXT_SCANNED]}\n{candidate.text[:TEXT_SCANNED]}"):
            notice = extract(candidate.subject, candidate.text, f"{where}: names SEP and carries its fields")
            if notice.application_number and (
                notice.code or notice.epts or (notice.vin and notice.vin.value)
            ):
                return Verdict(notice, notice.recognised_by)
    return Verdict(
        None,
        f"not a SEP letter: the sender {letter.sender or '(none)'} is not a SEP sender "
        f"({', '.join(senders)}) and no SEP application fields were found",
    )
