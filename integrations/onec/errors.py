"""How a call to 1C's HTTP service failed, typed for the retry policy and for people.

"Try later" (:class:`TransientError`, :class:`RateLimited`) never fails an invoice: 1C down, an HTML
error page, no free licence, all our session slots taken. Everything a retry cannot fix is a
:class:`PermanentError`; an answer that breaks the contract names the field it broke.
"""

from __future__ import annotations

from integrations.errors import PermanentError, RateLimited, TransientError


class OnecUnavailable(TransientError):
    """1C (or the web server in front of it) did not answer usefully: network, 5xx, an HTML page."""


class OnecLicencesExhausted(RateLimited):
    """1C refused the call for want of a free licence (or over its session limit): try later."""


class OnecSessionsBusy(RateLimited):
    """Every one of our ``OBMEN_ONEC_MAX_SESSIONS`` slots is held by another call: try later."""


class OnecAuthRefused(PermanentError):
    """HTTP 401: 1C does not accept the configured user and password."""

    def __init__(self, message: str, realm: str | None) -> None:
        super().__init__(message)
        self.realm = realm


class OnecRefused(PermanentError):
    """1C answered 4xx to the request itself: it will answer the same again."""

    def __init__(self, message: str, status: int) -> None:
        super().__init__(message)
        self.status = status


class OnecNotFound(OnecRefused):
    """HTTP 404: no such invoice (or order) in 1C."""


class InvalidInvoice(PermanentError):
    """1C's answer breaks the contract; ``field`` names where (its Russian key, as 1C sends it)."""

    def __init__(self, field: str, message: str) -> None:
        super().__init__(f"«{field}»: {message}")
        self.field = field
        self.detail = message


class InvoiceMismatch(InvalidInvoice):
    """1C answered with an invoice for another order, amount or customer than was asked."""

    def __init__(self, field: str, asked: str, got: str) -> None:
        super().__init__(field, f"asked for {asked!r}, 1C answered {got!r}")
        self.asked = asked
        self.got = got
