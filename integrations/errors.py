"""How an external call failed, in the two kinds the retry policy cares about."""

from __future__ import annotations


class IntegrationError(Exception):
    """Base of every error an integration client raises on purpose."""


class TransientError(IntegrationError):
    """Worth trying again later: a timeout, a 5xx, a throttled call, a service that is down."""


class PermanentError(IntegrationError):
    """Retrying cannot help: the request or the answer is wrong. The row is parked with the reason."""
