"""The IMAP backend (RFC 3501 over IMAPClient): UID SEARCH past a cursor, FETCH in two steps (sizes
first, then bodies, or only the header block of a message over the size cap), STORE \\Seen.

IMAPClient parses the FETCH answers (literals, quoting, the UID before or after the body) and
encodes the folder name in modified UTF-7. Network trouble is a ``TransientError`` (the next poll
tries again), and so is a command the server refuses or answers against the protocol once the
mailbox is open; a refused login, a missing folder or a server that will not do STARTTLS is a
``PermanentError`` (someone must fix the settings). Connecting (greeting, STARTTLS, LOGIN, SELECT)
and then each command with its answer run under one deadline of ``timeout`` seconds
(:mod:`integrations.mail.deadline`): a server that trickles its answer is cut off, ``DeadlinePassed``.
"""

from __future__ import annotations

import imaplib
import socket
import ssl
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager, suppress
from datetime import datetime
from typing import Any, TypeVar

from imapclient import SEEN, IMAPClient
from imapclient.imap4 import IMAP4WithTimeout
from imapclient.tls import IMAP4_TLS

from integrations.errors import DeadlinePassed, PermanentError, TransientError
from integrations.mail.deadline import Watchdog
from integrations.mail.mailbox import HEADER_LIMIT, Fetched, Transcript
from integrations.mail.urls import ServerUrl, tls_context

NETWORK_ERRORS = (OSError, socket.timeout, imaplib.IMAP4.abort, ssl.SSLError)
# IMAPClient's errors (a NO or BAD answer, a LoginError, a ProtocolError) are imaplib's.
REFUSED = imaplib.IMAP4.error
T = TypeVar("T")


def _internal_date(value: Any) -> datetime | None:
    # Without a zone offset the date is not a point in time; the register keeps aware times only.
    return value if isinstance(value, datetime) and value.tzinfo is not None else None


class ImapMailbox:
    def __init__(
        self,
        client: IMAPClient,
        identity: str,
        uidvalidity: int,
        transcript: Transcript,
        *,
        watchdog: Watchdog,
        timeout: float,
    ) -> None:
        self.client = client
        self.identity = identity
        self.uidvalidity = uidvalidity
        self.transcript = transcript
        self.watchdog = watchdog
        self.timeout = timeout

    def _command(self, shown: str, command: Callable[[], T]) -> T:
        shown = shown[:200]
        try:
            with self.watchdog.deadline(self.timeout, f"IMAP {self.identity} {shown}"):
                return command()
        except DeadlinePassed as exc:
            self.transcript.add(shown, f"DeadlinePassed: {exc}")
            raise
        except (*NETWORK_ERRORS, REFUSED) as exc:
            self.transcript.add(shown, f"{type(exc).__name__}: {str(exc)[:200]}")
            raise TransientError(f"IMAP {shown}: {str(exc)[:200]}") from exc

    def uids_after(self, uid: int) -> list[int]:
        # "n:*" always includes the highest UID even when it is below n (RFC 3501 6.4.8): filter.
        shown = f"UID SEARCH UID {uid + 1}:*"
        data = self._command(shown, lambda: self.client.search(["UID", f"{uid + 1}:*"]))
        found = sorted(u for u in data if u > uid)
        self.transcript.add(shown, f"{len(found)} UIDs")
        return found

    def fetch(self, uids: Sequence[int], max_bytes: int) -> list[Fetched]:
        if not uids:
            return []
        envelopes: dict[int, tuple[int, datetime | None]] = {}
        answer = self._fetch(uids, "RFC822.SIZE INTERNALDATE")
        for uid, items in answer.items():
            size = items.get(b"RFC822.SIZE")
            if isinstance(size, int):
                envelopes[uid] = (size, _internal_date(items.get(b"INTERNALDATE")))
        whole = [u for u in uids if u in envelopes and envelopes[u][0] <= max_bytes]
        big = [u for u in uids if u in envelopes and envelopes[u][0] > max_bytes]
        bodies = self._bodies(whole, "BODY.PEEK[]", b"BODY[]")
        heads = self._bodies(big, "BODY.PEEK[HEADER]", b"BODY[HEADER]")
        self.transcript.add(
            f"UID FETCH {len(uids)} UIDs",
            f"{len(bodies)} whole ({sum(map(len, bodies.values()))} bytes), {len(heads)} over the cap: headers only",
        )
        out = []
        for uid in uids:
            if uid in bodies:
                out.append(Fetched(uid, envelopes[uid][0], envelopes[uid][1], bodies[uid], True))
            elif uid in heads:
                out.append(
                    Fetched(uid, envelopes[uid][0], envelopes[uid][1], heads[uid][:HEADER_LIMIT], False)
                )
        return out

    def _fetch(self, uids: Sequence[int], items: str) -> dict[int, dict[bytes, Any]]:
        """``{uid: {item: value}}`` of the UIDs asked for (IMAPClient drops unsolicited answers)."""
        answer = self._command(
            f"UID FETCH {','.join(map(str, uids))} ({items})", lambda: self.client.fetch(uids, items.split())
        )
        return dict(answer)

    def _bodies(self, uids: Sequence[int], item: str, answered_as: bytes) -> dict[int, bytes]:
        if not uids:
            return {}
        return {
            uid: body
            for uid, items in self._fetch(uids, item).items()
            if isinstance(body := items.get(answered_as), bytes)
        }

    def mark_seen(self, uids: Sequence[int]) -> None:
        if uids:
            shown = f"UID STORE {len(uids)} UIDs +FLAGS.SILENT (\\Seen)"
            self._command(shown, lambda: self.client.add_flags(uids, [SEEN], silent=True))
            self.transcript.add(shown, "OK")


class _Imap(IMAP4WithTimeout):
    """IMAPClient's plain connection, telling the watchdog where its socket is as soon as there is one
    (the greeting is read inside the constructor)."""

    def __init__(self, host: str, port: int, timeout: float, watchdog: Watchdog) -> None:
        self.watchdog = watchdog
        super().__init__(host, port, timeout)

    def open(self, host: str = "", port: int = 143, timeout: float | None = None) -> None:
        super().open(host, port, timeout)
        self.watchdog.watch(lambda: self.sock)  # read when it fires: STARTTLS replaces the socket


class _ImapTls(IMAP4_TLS):
    def __init__(
        self, host: str, port: int, timeout: float, watchdog: Watchdog, context: ssl.SSLContext
    ) -> None:
        self.watchdog = watchdog
        super().__init__(host, port, context, timeout)

    def open(self, host: str = "", port: int = 993, timeout: float | None = None) -> None:
        super().open(host, port, timeout)
        self.watchdog.watch(lambda: self.sock)


class _Client(IMAPClient):
    """IMAPClient over the connections above: its own would read the greeting before the watchdog
    knows the socket, and a greeting sent a byte at a time would hold the worker past the deadline."""

    def __init__(self, url: ServerUrl, timeout: float, ca_file: str | None, watchdog: Watchdog) -> None:
        self._opening = (watchdog, timeout, tls_context(ca_file) if url.implicit_tls else None)
        super().__init__(url.host, url.port, ssl=url.implicit_tls, timeout=timeout)
        # INTERNALDATE with its zone offset, not converted to this machine's naive local time.
        self.normalise_times = False

    def _create_IMAP4(self) -> imaplib.IMAP4:
        watchdog, timeout, context = self._opening
        if context is not None:
            return _ImapTls(self.host, self.port, timeout, watchdog, context)
        return _Imap(self.host, self.port, timeout, watchdog)


def _connect(url: ServerUrl, timeout: float, ca_file: str | None, watchdog: Watchdog) -> IMAPClient:
    client = _Client(url, timeout, ca_file, watchdog)
    if url.starttls_required:
        if not client.has_capability("STARTTLS"):
            with suppress(*NETWORK_ERRORS, REFUSED):
                client.logout()
            raise PermanentError(
                f"IMAP server {url.host} offers no STARTTLS; obmen logs in in clear text only over loopback "
                "(use imaps://)"
            )
        client.starttls(ssl_context=tls_context(ca_file))
    return client


@contextmanager
def imap_session(
    url: ServerUrl, transcript: Transcript, *, timeout: float, ca_file: str | None
) -> Iterator[ImapMailbox]:
    folder = url.path.lstrip("/")
    watchdog = Watchdog()
    opening = f"IMAP {url.identity()} connect, login, select"
    try:
        with watchdog.deadline(timeout, opening):
            client = _connect(url, timeout, ca_file, watchdog)
    except ssl.SSLCertVerificationError as exc:
        transcript.add(f"CONNECT {url.host}:{url.port}", f"certificate refused: {exc}")
        raise PermanentError(
            f"IMAP {url.identity()}: certificate refused ({exc}); see OBMEN_MAIL_CA_FILE"
        ) from exc
    except DeadlinePassed as exc:
        transcript.add(f"CONNECT {url.host}:{url.port}", f"DeadlinePassed: {exc}")
        raise
    except NETWORK_ERRORS as exc:
        transcript.add(f"CONNECT {url.host}:{url.port}", f"{type(exc).__name__}: {exc}")
        raise TransientError(f"IMAP {url.identity()}: cannot connect ({exc})") from exc
    try:
        transcript.add(
            f"CONNECT {url.host}:{url.port}", "tls" if url.implicit_tls or url.starttls_required else "plain"
        )
        try:
            with watchdog.deadline(timeout, opening):
                client.login(url.username or "", url.password or "")
                transcript.add(f"LOGIN {url.username}", "OK")
                try:
                    selected = client.select_folder(folder)
                except REFUSED as exc:
                    transcript.add(f"SELECT {folder}", f"refused: {str(exc)[:200]}")
                    raise PermanentError(
                        f"IMAP {url.identity()}: cannot select folder {folder!r} ({str(exc)[:200]})"
                    ) from exc
        except NETWORK_ERRORS as exc:
            raise TransientError(f"IMAP {url.identity()}: {exc}") from exc
        except REFUSED as exc:
            transcript.add(f"LOGIN {url.username}", f"refused: {exc}")
            raise PermanentError(f"IMAP {url.identity()}: login refused ({exc})") from exc
        uidvalidity = selected.get(b"UIDVALIDITY")
        if not isinstance(uidvalidity, int):
            raise PermanentError(f"IMAP {url.identity()}: the server sent no UIDVALIDITY for {folder!r}")
        transcript.add(
            f"SELECT {folder}", f"{selected.get(b'EXISTS', 0)} messages, UIDVALIDITY {uidvalidity}"
        )
        yield ImapMailbox(client, url.identity(), uidvalidity, transcript, watchdog=watchdog, timeout=timeout)
    finally:
        _close(client, watchdog, timeout)


def _close(client: IMAPClient, watchdog: Watchdog, timeout: float) -> None:
    """LOGOUT within the deadline; a session whose deadline passed is only shut."""
    if not watchdog.fired:
        with suppress(DeadlinePassed, *NETWORK_ERRORS, REFUSED):
            with watchdog.deadline(timeout, "IMAP LOGOUT"):
                client.logout()
            return
    with suppress(OSError):
        client.shutdown()
