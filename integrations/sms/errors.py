"""How sending an SMS failed, typed by what the caller should do about it.

SMSC answers an error as ``{"error": "<words>", "error_code": N}`` (HTTP 200); its codes for
``send.php`` are 1 bad parameters, 2 bad login or password (or an address not allowed), 3 the
account's money has run out, 4 this address is blocked for a while after many errors, 5 bad date,
6 the message is forbidden (text or sender name), 7 bad phone number format, 8 the number cannot be
reached, 9 the same request repeated within a minute or too many requests at once.
"""

from __future__ import annotations

from integrations.errors import IntegrationError, PermanentError, RateLimited, TransientError


class SmsError(IntegrationError):
    def __init__(self, message: str, *, code: int | None = None) -> None:
        super().__init__(message)
        self.code = code


class SmsThrottled(SmsError, RateLimited):
    """Error 9 (too many requests) or 4 (address blocked for a while), or our own limiter has no
    slot soon enough: come back in ``retry_after_s``; the message is fine."""

    def __init__(self, message: str, *, retry_after_s: float, code: int | None = None) -> None:
        SmsError.__init__(self, message, code=code)
        self.retry_after_s = max(0.0, retry_after_s)


class SmsUnavailable(SmsError, TransientError):
    """A 5xx, a timeout, an answer that is not the provider's JSON: try again later."""


class SmsBalanceExhausted(SmsError, PermanentError):
    """Error 3: the account's money has run out. Nothing is sent until someone tops it up;
    retrying before that only spends requests, so the message waits parked for a re-drive."""


class SmsAccountRefused(SmsError, PermanentError):
    """Errors 1, 2, 5: our request or our account is wrong (settings, login, password)."""


class SmsRefused(SmsError, PermanentError):
    """Errors 6, 7, 8: this message to this number will not go (forbidden text, not a mobile
    number, a number that cannot be reached). The message failed; nothing to re-drive."""


RETRY_AFTER_S = {4: 600.0, 9: 60.0}


def error_for(code: int, words: str, operation: str) -> SmsError:
    text = f"SMSC {operation}: error {code}: {words}".strip()
    if code in RETRY_AFTER_S:
        return SmsThrottled(text, retry_after_s=RETRY_AFTER_S[code], code=code)
    if code == 3:
        return SmsBalanceExhausted(
            text + " (top the SMSC account up, then re-drive: obmen redrive sms_messages)", code=code
        )
    if code in (6, 7, 8):
        return SmsRefused(text, code=code)
    return SmsAccountRefused(text, code=code)
