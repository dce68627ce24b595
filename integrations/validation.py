"""Validation of the identifiers every flow meets: ИНН, КПП, VIN, ЭПТС number, money.

Each validator returns the normalized value or raises ``ValueError`` with a message a person can act
on; pydantic models use them as ``AfterValidator``s, so a bad row names its field.
"""

from __future__ import annotations

import re
import unicodedata
from dataclasses import dataclass
from decimal import Decimal, InvalidOperation
from typing import Annotated

from pydantic import AfterValidator, BeforeValidator
from stdnum.exceptions import ValidationError as StdnumError
from stdnum.ru import inn as stdnum_inn
from stdnum.ru import ogrn as stdnum_ogrn

# Python's \d matches any script's digits (١٢, ５); identifiers and amounts are ASCII 0-9 only.
_DIGITS = re.compile(r"[0-9]+")


def _ascii_digits_only(value: str, what: str) -> str:
    if not isinstance(value, str):
        raise ValueError(
            f"{what} must be a string of digits (leading zeros matter), not {type(value).__name__}"
        )
    if value != value.strip() or " " in value:
        raise ValueError(f"{what} must not contain spaces")
    if not value.isascii() or not _DIGITS.fullmatch(value):
        raise ValueError(f"{what} must be ASCII digits only")
    return value


def validate_inn(value: str) -> str:
    """ИНН: 10 digits (organisation) or 12 (person), checksummed; a string, never a number."""
    value = _ascii_digits_only(value, "ИНН (INN)")
    if len(value) not in (10, 12):
        raise ValueError(f"ИНН (INN) has 10 or 12 digits, this one has {len(value)}")
    try:
        stdnum_inn.validate(value)
    except StdnumError as exc:
        raise ValueError(f"ИНН (INN) {value} fails its checksum") from exc
    return value


def validate_kpp(value: str) -> str:
    """КПП: 9 characters — 4 digits, 2 digits or capital Latin letters, 3 digits."""
    if not re.fullmatch(r"[0-9]{4}[0-9A-Z]{2}[0-9]{3}", value or ""):
        raise ValueError("КПП (KPP) is 9 characters: 4 digits, 2 digits or capital letters, 3 digits")
    return value


def validate_ogrn(value: str) -> str:
    """ОГРН: 13 digits (organisation) or ОГРНИП: 15 (sole trader), checksummed."""
    value = _ascii_digits_only(value, "ОГРН (OGRN)")
    if len(value) not in (13, 15):
        raise ValueError(f"ОГРН (OGRN) has 13 or 15 digits, this one has {len(value)}")
    try:
        stdnum_ogrn.validate(value)
    except StdnumError as exc:
        raise ValueError(f"ОГРН (OGRN) {value} fails its checksum") from exc
    return value


def validate_epts(value: str) -> str:
    """ЭПТС number: exactly 15 digits (its inner structure is not public, so it is not checked)."""
    value = _ascii_digits_only(value, "ЭПТС number")
    if len(value) != 15:
        raise ValueError(f"ЭПТС number has 15 digits, this one has {len(value)}")
    return value


# Cyrillic letters that look like Latin ones; letters and clerks mix them into VINs.
CYRILLIC_LOOKALIKES = {
    "А": "A", "В": "B", "Е": "E", "К": "K", "М": "M", "Н": "H", "О": "O",
    "Р": "P", "С": "C", "Т": "T", "Х": "X", "У": "Y",
}  # fmt: skip
VIN_ALPHABET = re.compile(r"[A-HJ-NPR-Z0-9]{17}")
_TRANSLIT = dict(
    zip(
        "ABCDEFGHJKLMNPRSTUVWXYZ",
        [1, 2, 3, 4, 5, 6, 7, 8, 1, 2, 3, 4, 5, 7, 9, 2, 3, 4, 5, 6, 7, 8, 9],
        strict=True,
    )
)
_WEIGHTS = (8, 7, 6, 5, 4, 3, 2, 10, 0, 9, 8, 7, 6, 5, 4, 3, 2)


@dataclass(frozen=True)
class Lookalike:
    position: int  # 1-based, as people count VIN characters
    cyrillic: str
    latin: str


def map_lookalikes(text: str) -> tuple[str, list[Lookalike]]:
    """Replace Cyrillic look-alikes by their Latin letters, and say which were replaced where."""
    mapped: list[Lookalike] = []
    out = []
    for i, ch in enumerate(unicodedata.normalize("NFKC", text).upper(), start=1):
        latin = CYRILLIC_LOOKALIKES.get(ch)
        if latin:
            mapped.append(Lookalike(i, ch, latin))
            out.append(latin)
        else:
            out.append(ch)
    return "".join(out), mapped


def vin_check_digit_ok(vin: str) -> bool:
    """The North American check digit (position 9). Most Russian makers do not use it: a warning only."""
    total = sum((int(c) if c.isdigit() else _TRANSLIT[c]) * w for c, w in zip(vin, _WEIGHTS, strict=True))
    expected = "X" if total % 11 == 10 else str(total % 11)
    return vin[8] == expected


def validate_vin(value: str) -> str:
    """VIN: 17 characters, Latin capitals and digits without I, O, Q (ISO 3779)."""
    if not isinstance(value, str):
        raise ValueError("VIN must be a string")
    vin = value.strip().upper()
    if len(vin) != 17:
        raise ValueError(f"VIN has 17 characters, this one has {len(vin)}")
    if not vin.isascii():
        raise ValueError("VIN contains non-Latin characters (Cyrillic look-alikes?)")
    if not VIN_ALPHABET.fullmatch(vin):
        bad = sorted({c for c in vin if not re.fullmatch(r"[A-HJ-NPR-Z0-9]", c)})
        raise ValueError(f"VIN may not contain {', '.join(bad)} (I, O and Q are never used)")
    return vin


def parse_money(value: object) -> Decimal:
    """Rubles as a decimal string with at most 2 decimals; never a float (0.1 + 0.2 is not 0.3)."""
    if isinstance(value, bool) or not isinstance(value, str | int | Decimal):
        raise ValueError('an amount is a decimal string such as "1500.00", not a float')
    text = str(value)
    if not re.fullmatch(r"-?[0-9]+(\.[0-9]+)?", text):
        raise ValueError(f"{text!r} is not a plain decimal amount (no exponent, spaces or comma)")
    try:
        amount = Decimal(text)
    except InvalidOperation as exc:
        raise ValueError(f"{text!r} is not a decimal amount") from exc
    if amount.as_tuple().exponent < -2:  # type: ignore[operator]
        raise ValueError(f"{text} has more than 2 decimals (kopecks)")
    return amount


Inn = Annotated[str, AfterValidator(validate_inn)]
Kpp = Annotated[str, AfterValidator(validate_kpp)]
Ogrn = Annotated[str, AfterValidator(validate_ogrn)]
Epts = Annotated[str, AfterValidator(validate_epts)]
Vin = Annotated[str, AfterValidator(validate_vin)]
Money = Annotated[Decimal, BeforeValidator(parse_money)]
