"""What obmen needs of a mailbox, whatever stores it: UIDs after a cursor, messages in bounded
batches (whole, or only their header block past the size cap), and the \\Seen flag.

Two backends implement it: IMAP (``integrations/mail/imap.py``) and a Maildir for the embedded demo
(``integrations/mail/maildir.py``); ``integrations/mail/access.py`` opens the one a URL names.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Protocol

# Enough for any real header block; more is a broken or hostile message.
HEADER_LIMIT = 256 * 1024


@dataclass(frozen=True)
class Fetched:
    uid: int
    size: int
    internal_date: datetime | None
    # The whole message, or only its header block when ``complete`` is false (over the size cap).
    raw: bytes
    complete: bool


class Mailbox(Protocol):
    identity: str
    uidvalidity: int

    def uids_after(self, uid: int) -> list[int]:
        """UIDs greater than ``uid``, ascending."""
        ...

    def fetch(self, uids: Sequence[int], max_bytes: int) -> list[Fetched]:
        """The messages ``uids`` (those still there), headers only for those over ``max_bytes``."""
        ...

    def mark_seen(self, uids: Sequence[int]) -> None: ...


class Transcript:
    """The commands of one mailbox session and a one-line answer to each, for the exchange log."""

    def __init__(self) -> None:
        self.lines: list[str] = []

    def add(self, command: str, answer: str) -> None:
        self.lines.append(f"{command} -> {answer}")

    def text(self) -> str:
        return "\n".join(self.lines[-200:])
