"""How an external call failed, in the two kinds the retry policy cares about."""

from __future__ import annotations


class IntegrationError(Exception):
    """Base of every error an integration client raises on purpose."""


class TransientError(IntegrationError):
    """Worth trying again later: a timeout, a 5xx, a throttled call, a service that is down."""


class PermanentError(IntegrationError):
    """Retrying cannot help: the request or the answer is wrong. The row is parked with the reason."""


class DeadlinePassed(TransientError):
    """A call's one deadline (connect, headers and body, or a mail session's command and answer)
    passed before the whole answer came: a slow or hostile peer; try again later."""


class RateLimited(TransientError):
    """The service, or our own limiter for it, says "not now": try again in ``retry_after_s``.

    Not a failure of the request: a step defers itself without using up an attempt.
    """

    def __init__(self, message: str, retry_after_s: float = 0.0) -> None:
        super().__init__(message)
        self.retry_after_s = max(0.0, retry_after_s)
