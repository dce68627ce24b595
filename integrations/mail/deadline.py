"""One deadline for a mail exchange, at the socket: a letter's whole SMTP session, or one IMAP
command with its answer (and the connect, greeting, login and SELECT of a mailbox session).

smtplib and imaplib bound each socket read by their ``timeout``, not an exchange: a server that
sends its greeting or its answer a byte at a time, each byte within the timeout, holds a worker for
ever. A :class:`Watchdog` shuts the session's socket down when the deadline passes; the blocked
read wakes with an error, which :meth:`Watchdog.deadline` turns into
:class:`~integrations.errors.DeadlinePassed`.
"""

from __future__ import annotations

import contextlib
import socket
import threading
import time
from collections.abc import Callable, Iterator

from integrations.errors import DeadlinePassed


class Watchdog:
    """The deadline of one mail session's exchanges; the session tells it where its socket is.

    One thread watches the deadlines: it ends when none is pending, or, for a watchdog that
    ``lingers`` (an SMTP connection kept for a batch of letters), only at :meth:`close`, so that
    back-to-back deadlines do not start a thread each.
    """

    def __init__(self, *, lingers: bool = False) -> None:
        self.fired = False
        self._lingers = lingers
        self._closed = False
        self._due: float | None = None
        self._watching = False
        self._changed = threading.Condition()
        self._socket_of: Callable[[], socket.socket | None] = lambda: None

    def watch(self, socket_of: Callable[[], socket.socket | None]) -> None:
        """Where the session's socket is now (it changes with STARTTLS)."""
        with self._changed:
            self._socket_of = socket_of
            if self.fired:
                self._shutdown()

    @contextlib.contextmanager
    def deadline(self, seconds: float, what: str) -> Iterator[None]:
        """Run the block within ``seconds``; past them the socket is shut and DeadlinePassed raised."""
        self._arm(time.monotonic() + seconds)
        try:
            yield
        except Exception as exc:
            if self.fired:
                raise DeadlinePassed(f"{what}: no complete answer within {seconds} s") from exc
            raise
        finally:
            self._arm(None)
        if self.fired:  # it fired as the block ended: the session cannot go on
            raise DeadlinePassed(f"{what}: no complete answer within {seconds} s")

    def close(self) -> None:
        """End the watching thread of a watchdog that lingers."""
        with self._changed:
            self._closed = True
            self._changed.notify()

    def _arm(self, due: float | None) -> None:
        with self._changed:
            self._due = due
            if due is not None and not self._watching:
                self._watching = True
                threading.Thread(target=self._watch, name="mail-deadline", daemon=True).start()
            self._changed.notify()

    def _watch(self) -> None:
        with self._changed:
            while True:
                if self._due is None:
                    if self._closed or not self._lingers:
                        self._watching = False
                        return
                    self._changed.wait()
                    continue
                left = self._due - time.monotonic()
                if left <= 0:
                    self._due = None
                    self.fired = True
                    self._shutdown()
                    continue
                self._changed.wait(left)

    def _shutdown(self) -> None:
        sock = self._socket_of()
        if sock is not None:
            with contextlib.suppress(OSError):  # already closed: nothing left to wake
                sock.shutdown(socket.SHUT_RDWR)
