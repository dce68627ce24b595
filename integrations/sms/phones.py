"""Subscribers' phone numbers as 1C keeps them («8 (916) 123-45-67», «+7 916 1234567») turned into
the one form an SMS provider takes: 11 digits, 7 first, a mobile (9xx) number."""

from __future__ import annotations

import re

_SEPARATORS = re.compile(r"[\s()\-.]")


class NotAMobileNumber(ValueError):
    pass


def mobile_number(raw: str) -> str:
    """``raw`` as ``7XXXXXXXXXX``; :class:`NotAMobileNumber` when it is no Russian mobile number."""
    digits = _SEPARATORS.sub("", raw.strip())
    if digits.startswith("+"):
        digits = digits[1:]
    elif digits.startswith("8") and len(digits) == 11:
        digits = "7" + digits[1:]
    elif len(digits) == 10:
        digits = "7" + digits
    if not re.fullmatch(r"79\d{9}", digits):
        raise NotAMobileNumber(f"{raw[:40]!r} is not a Russian mobile number (+7 9XX XXX-XX-XX)")
    return digits
