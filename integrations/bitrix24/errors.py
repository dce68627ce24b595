"""Bitrix24 REST errors, typed by what the caller should do about them.

The error envelope is ``{"error": "CODE", "error_description": "text"}``; ``error`` may be empty
(a method's "Not found" is HTTP 400 with an empty code). The codes and their HTTP statuses follow the
vendor's list (protocols.md §3).
"""

from __future__ import annotations

from integrations.errors import IntegrationError, PermanentError, RateLimited, TransientError


class Bitrix24Error(IntegrationError):
    def __init__(self, message: str, *, code: str = "", status: int | None = None, method: str = "") -> None:
        super().__init__(message)
        self.code = code
        self.status = status
        self.method = method


class Bitrix24Throttled(Bitrix24Error, RateLimited):
    """``QUERY_LIMIT_EXCEEDED`` (HTTP 503), or our own limiter has no slot soon enough."""

    def __init__(
        self,
        message: str,
        *,
        retry_after_s: float,
        code: str = "",
        status: int | None = None,
        method: str = "",
    ) -> None:
        Bitrix24Error.__init__(self, message, code=code, status=status, method=method)
        self.retry_after_s = max(0.0, retry_after_s)


class Bitrix24OperationTimeLimit(Bitrix24Throttled):
    """``OPERATION_TIME_LIMIT`` (HTTP 429): this method used up its execution time for 10 minutes."""


class Bitrix24Unavailable(Bitrix24Error, TransientError):
    """A 5xx, an HTML error page, a timeout, an answer that is not the JSON envelope."""


class Bitrix24Blocked(Bitrix24Error, PermanentError):
    """``OVERLOAD_LIMIT``: the portal was blocked by hand; retrying makes it worse."""


class Bitrix24AuthError(Bitrix24Error, PermanentError):
    """The webhook is wrong, revoked, or lacks the scope (401/403, ``NO_AUTH_FOUND`` ...)."""


class Bitrix24MethodNotFound(Bitrix24Error, PermanentError):
    """``ERROR_METHOD_NOT_FOUND``: a typo or a module the portal does not have."""


class Bitrix24NotFound(Bitrix24Error, PermanentError):
    """The entity does not exist (HTTP 400 "Not found")."""


class Bitrix24RequestError(Bitrix24Error, PermanentError):
    """Any other 4xx: the request itself is wrong (bad field, wrong workflow template ...)."""


AUTH_CODES = frozenset(
    {
        "NO_AUTH_FOUND",
        "INVALID_CREDENTIALS",
        "expired_token",
        "invalid_token",
        "ACCESS_DENIED",
        "insufficient_scope",
    }
)


def error_for(
    status: int, code: str, description: str, method: str, retry_after_s: float | None = None
) -> Bitrix24Error:
    """The typed error of one answer (or of one command of a batch, where ``status`` is 400)."""
    text = f"Bitrix24 {method}: HTTP {status} {code or '(no code)'}: {description}".strip()
    if code == "QUERY_LIMIT_EXCEEDED":
        return Bitrix24Throttled(
            text, retry_after_s=retry_after_s or 0.0, code=code, status=status, method=method
        )
    if code == "OPERATION_TIME_LIMIT" or status == 429:
        return Bitrix24OperationTimeLimit(
            text, retry_after_s=retry_after_s or 60.0, code=code, status=status, method=method
        )
    kind: type[Bitrix24Error]
    if code == "OVERLOAD_LIMIT":
        kind = Bitrix24Blocked
    elif code in AUTH_CODES or status in (401, 403):
        kind = Bitrix24AuthError
    elif code == "ERROR_METHOD_NOT_FOUND" or status == 404:
        kind = Bitrix24MethodNotFound
    elif status >= 500:
        kind = Bitrix24Unavailable
    elif "not found" in description.lower():
        kind = Bitrix24NotFound
    else:
        kind = Bitrix24RequestError
    return kind(text, code=code, status=status, method=method)
