"""Request signatures of the bank API: HMAC-SHA256 over timestamp, method, path with query and raw body.

    X-Obmen-Timestamp: 1764064800
    X-Obmen-Signature: sha256=<hex HMAC-SHA256(secret, "1764064800\\nPOST\\n/bank/v1/payments\\n" + body)>

Verified over the raw bytes before anything parses them (re-serialising JSON would change them),
in constant time, against every configured secret (two during a rotation).
"""

from __future__ import annotations

import hashlib
import hmac
from collections.abc import Sequence
from dataclasses import dataclass

TIMESTAMP_HEADER = "X-Obmen-Timestamp"
SIGNATURE_HEADER = "X-Obmen-Signature"
PREFIX = "sha256="


def signing_input(timestamp: str, method: str, path_with_query: str, body: bytes) -> bytes:
    return f"{timestamp}\n{method.upper()}\n{path_with_query}\n".encode() + body


def sign(secret: bytes, timestamp: str, method: str, path_with_query: str, body: bytes) -> str:
    digest = hmac.new(secret, signing_input(timestamp, method, path_with_query, body), hashlib.sha256)
    return PREFIX + digest.hexdigest()


@dataclass(frozen=True)
class Rejection:
    reason: str


def verify(
    secrets: Sequence[bytes],
    timestamp: str | None,
    signature: str | None,
    method: str,
    path_with_query: str,
    body: bytes,
    now: float,
    tolerance_s: int,
) -> Rejection | None:
    """None when the request is authentic and fresh; otherwise why not (for our log, not for the caller)."""
    if not secrets:
        return Rejection("OBMEN_BANK_HMAC_SECRETS is not set: every bank request is refused")
    if not timestamp or not signature:
        return Rejection("missing X-Obmen-Timestamp or X-Obmen-Signature")
    if not (timestamp.isascii() and timestamp.isdigit() and len(timestamp) <= 12):
        return Rejection("X-Obmen-Timestamp is not unix seconds")
    if abs(now - int(timestamp)) > tolerance_s:
        return Rejection(f"timestamp {timestamp} is more than {tolerance_s} s away from now")
    presented = signature.strip().encode()
    # Every secret is compared (no early exit), each in constant time.
    matched = False
    for secret in secrets:
        expected = sign(secret, timestamp, method, path_with_query, body).encode()
        matched |= hmac.compare_digest(expected, presented)
    return None if matched else Rejection("signature does not match")
