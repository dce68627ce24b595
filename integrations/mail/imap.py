"""The IMAP backend (RFC 3501 over imaplib): UID SEARCH past a cursor, FETCH in two steps (sizes
first, then bodies, or only the header block of a message over the size cap), STORE \\Seen.

Network trouble is a ``TransientError`` (the next poll tries again); a refused login, a missing
folder or a server that will not do STARTTLS is a ``PermanentError`` (someone must fix the settings).
Connecting (greeting, STARTTLS, LOGIN, SELECT) and then each command with its answer run under one
deadline of ``timeout`` seconds (:mod:`integrations.mail.deadline`): a server that trickles its
answer is cut off, ``DeadlinePassed``.
"""

from __future__ import annotations

import imaplib
import re
import socket
import ssl
from collections.abc import Iterator, Sequence
from contextlib import contextmanager, suppress
from datetime import datetime
from typing import Any

from imap_tools.imap_utf7 import utf7_encode

from integrations.errors import DeadlinePassed, PermanentError, TransientError
from integrations.mail.deadline import Watchdog
from integrations.mail.mailbox import HEADER_LIMIT, Fetched, Transcript
from integrations.mail.urls import ServerUrl, tls_context

_UID = re.compile(rb"\bUID (\d+)")
_SIZE = re.compile(rb"\bRFC822\.SIZE (\d+)")
_DATE = re.compile(rb'\bINTERNALDATE "([^"]+)"')
NETWORK_ERRORS = (OSError, socket.timeout, imaplib.IMAP4.abort, ssl.SSLError)


def _quote(folder: str) -> str:
    encoded = utf7_encode(folder).decode("ascii")
    return '"' + encoded.replace("\\", "\\\\").replace('"', '\\"') + '"'


def _internal_date(meta: bytes) -> datetime | None:
    found = _DATE.search(meta)
    if not found:
        return None
    try:
        return datetime.strptime(found.group(1).decode().strip(), "%d-%b-%Y %H:%M:%S %z")
    except ValueError:
        return None


def _uid_set(uids: Sequence[int]) -> str:
    return ",".join(str(u) for u in uids)


class ImapMailbox:
    def __init__(
        self,
        client: imaplib.IMAP4,
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

    def _uid(self, command: str, *args: str) -> list[Any]:
        shown = f"UID {command} {' '.join(args)}"[:200]
        try:
            with self.watchdog.deadline(self.timeout, f"IMAP {self.identity} {shown}"):
                typ, data = self.client.uid(command, *args)
        except DeadlinePassed as exc:
            self.transcript.add(shown, f"DeadlinePassed: {exc}")
            raise
        except NETWORK_ERRORS as exc:
            self.transcript.add(shown, f"{type(exc).__name__}: {exc}")
            raise TransientError(f"IMAP {shown}: {exc}") from exc
        except imaplib.IMAP4.error as exc:
            self.transcript.add(shown, f"error: {exc}")
            raise PermanentError(f"IMAP {shown}: {exc}") from exc
        if typ != "OK":
            self.transcript.add(shown, f"{typ} {data!r:.200}")
            raise TransientError(f"IMAP {shown}: {typ} {data!r:.200}")
        return list(data)

    def uids_after(self, uid: int) -> list[int]:
        # "n:*" always includes the highest UID even when it is below n (RFC 3501 6.4.8): filter.
        data = self._uid("SEARCH", f"UID {uid + 1}:*")
        found = sorted(u for u in (int(x) for x in (data[0] or b"").split()) if u > uid)
        self.transcript.add(f"UID SEARCH UID {uid + 1}:*", f"{len(found)} UIDs")
        return found

    def fetch(self, uids: Sequence[int], max_bytes: int) -> list[Fetched]:
        if not uids:
            return []
        envelopes: dict[int, tuple[int, datetime | None]] = {}
        for line in self._uid("FETCH", _uid_set(uids), "(UID RFC822.SIZE INTERNALDATE)"):
            meta = line[0] if isinstance(line, tuple) else line
            if not isinstance(meta, bytes):
                continue
            uid_found, size_found = _UID.search(meta), _SIZE.search(meta)
            if uid_found and size_found:
                envelopes[int(uid_found.group(1))] = (int(size_found.group(1)), _internal_date(meta))
        whole = [u for u in uids if u in envelopes and envelopes[u][0] <= max_bytes]
        big = [u for u in uids if u in envelopes and envelopes[u][0] > max_bytes]
        bodies = self._bodies(whole, "BODY.PEEK[]") if whole else {}
        heads = self._bodies(big, "BODY.PEEK[HEADER]") if big else {}
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

    def _bodies(self, uids: Sequence[int], item: str) -> dict[int, bytes]:
        """``{uid: literal}``; the UID may come before the literal or after it, in the closing bytes."""
        found: dict[int, bytes] = {}
        data = self._uid("FETCH", _uid_set(uids), f"(UID {item})")
        pending: bytes | None = None
        for part in data:
            if isinstance(part, tuple):
                meta, literal = part[0], part[1]
                uid_found = _UID.search(meta)
                if uid_found:
                    found[int(uid_found.group(1))] = literal
                    pending = None
                else:
                    pending = literal
            elif isinstance(part, bytes) and pending is not None and (uid_found := _UID.search(part)):
                found[int(uid_found.group(1))] = pending
                pending = None
        return found

    def mark_seen(self, uids: Sequence[int]) -> None:
        if uids:
            self._uid("STORE", _uid_set(uids), "+FLAGS.SILENT", r"(\Seen)")
            self.transcript.add(f"UID STORE {len(uids)} UIDs +FLAGS.SILENT (\\Seen)", "OK")


class _Imap(imaplib.IMAP4):
    """imaplib's client, telling the watchdog where its socket is as soon as there is one."""

    def __init__(self, host: str, port: int, timeout: float, watchdog: Watchdog) -> None:
        self.watchdog = watchdog
        super().__init__(host, port, timeout)

    def open(self, host: str = "", port: int = 143, timeout: float | None = None) -> None:
        super().open(host, port, timeout)
        self.watchdog.watch(lambda: self.sock)  # read when it fires: STARTTLS replaces the socket


class _ImapTls(imaplib.IMAP4_SSL):
    def __init__(
        self, host: str, port: int, timeout: float, watchdog: Watchdog, context: ssl.SSLContext
    ) -> None:
        self.watchdog = watchdog
        super().__init__(host, port, ssl_context=context, timeout=timeout)

    def open(self, host: str = "", port: int | None = None, timeout: float | None = None) -> None:
        super().open(host, port, timeout)
        self.watchdog.watch(lambda: self.sock)


def _connect(url: ServerUrl, timeout: float, ca_file: str | None, watchdog: Watchdog) -> imaplib.IMAP4:
    if url.implicit_tls:
        return _ImapTls(url.host, url.port, timeout, watchdog, tls_context(ca_file))
    client = _Imap(url.host, url.port, timeout, watchdog)
    if url.starttls_required:
        if "STARTTLS" not in client.capabilities:
            with suppress(*NETWORK_ERRORS, imaplib.IMAP4.error):
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
                typ, data = client.select(_quote(folder))
        except NETWORK_ERRORS as exc:
            raise TransientError(f"IMAP {url.identity()}: {exc}") from exc
        except imaplib.IMAP4.error as exc:
            transcript.add(f"LOGIN {url.username}", f"refused: {exc}")
            raise PermanentError(f"IMAP {url.identity()}: login refused ({exc})") from exc
        if typ != "OK":
            transcript.add(f"SELECT {folder}", f"{typ} {data!r:.200}")
            raise PermanentError(f"IMAP {url.identity()}: cannot select folder {folder!r} ({data!r:.200})")
        _, validity = client.response("UIDVALIDITY")
        if not validity or validity[0] is None:
            raise PermanentError(f"IMAP {url.identity()}: the server sent no UIDVALIDITY for {folder!r}")
        uidvalidity = int(validity[0])
        transcript.add(f"SELECT {folder}", f"{int(data[0] or 0)} messages, UIDVALIDITY {uidvalidity}")
        yield ImapMailbox(client, url.identity(), uidvalidity, transcript, watchdog=watchdog, timeout=timeout)
    finally:
        _close(client, watchdog, timeout)


def _close(client: imaplib.IMAP4, watchdog: Watchdog, timeout: float) -> None:
    """LOGOUT within the deadline; a session whose deadline passed is only shut."""
    if not watchdog.fired:
        with suppress(DeadlinePassed, *NETWORK_ERRORS, imaplib.IMAP4.error):
            with watchdog.deadline(timeout, "IMAP LOGOUT"):
                client.logout()
            return
    with suppress(OSError):
        client.shutdown()
