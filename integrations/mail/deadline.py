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
from collections.abc import Callable, Iterator

from integrations.errors import DeadlinePassed


class Watchdog:
    """The deadline of one mail session's exchanges; the session tells it where its socket is."""

    def __init__(self) -> None:
        self.fired = False
        self._lock = threading.Lock()
        self._socket_of: Callable[[], socket.socket | None] = lambda: None

    def watch(self, socket_of: Callable[[], socket.socket | None]) -> None:
        """Where the session's socket is now (it changes with STARTTLS)."""
        with self._lock:
            self._socket_of = socket_of
            if self.fired:
                self._shutdown()

    @contextlib.contextmanager
    def deadline(self, seconds: float, what: str) -> Iterator[None]:
        """Run the block within ``seconds``; past them the socket is shut and DeadlinePassed raised."""
        timer = threading.Timer(seconds, self._fire)
        timer.daemon = True
        timer.start()
        try:
            yield
        except Exception as exc:
            if self.fired:
                raise DeadlinePassed(f"{what}: no complete answer within {seconds} s") from exc
            raise
        finally:
            timer.cancel()
        if self.fired:  # it fired as the block ended: the session cannot go on
            raise DeadlinePassed(f"{what}: no complete answer within {seconds} s")

    def _fire(self) -> None:
        with self._lock:
            self.fired = True
            self._shutdown()

    def _shutdown(self) -> None:
        sock = self._socket_of()
        if sock is not None:
            with contextlib.suppress(OSError):  # already closed: nothing left to wake
                sock.shutdown(socket.SHUT_RDWR)
