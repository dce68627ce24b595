"""The mail sandboxes: an SMTP sink that keeps every letter it is sent, and a mailbox into which
the emulators' letters (SEP notifications) are delivered where obmen reads mail.

Neither imports obmen's mail client: the sink speaks SMTP through aiosmtpd, the mailbox delivers
with plain file operations (Maildir) or imaplib's APPEND (a real IMAP server, in tests).
"""

from __future__ import annotations

import asyncio
import contextlib
import imaplib
import itertools
import logging
import os
import shutil
import tempfile
import threading
import time
from collections.abc import Iterable
from dataclasses import dataclass
from datetime import UTC, datetime
from email import message_from_bytes
from email.policy import default as default_policy
from pathlib import Path
from typing import Any
from urllib.parse import unquote, urlsplit

from aiosmtpd.controller import Controller
from starlette.requests import Request
from starlette.responses import JSONResponse
from starlette.routing import BaseRoute, Route

from sandbox.harness import Emulator, Letter, Mailroom, SandboxClock
from sandbox.server import free_port


@dataclass
class Received:
    seq: int
    at: str
    mail_from: str
    rcpt_tos: list[str]
    data: bytes

    def message(self) -> Any:
        return message_from_bytes(self.data, policy=default_policy)

    def as_json(self) -> dict[str, Any]:
        msg = self.message()
        return {
            "seq": self.seq,
            "at": self.at,
            "mail_from": self.mail_from,
            "rcpt_tos": self.rcpt_tos,
            "subject": str(msg["subject"] or ""),
            "message_id": str(msg["message-id"] or ""),
            "size": len(self.data),
            "raw": self.data.decode("utf-8", errors="replace"),
        }


class _SinkHandler:
    def __init__(self, sink: SmtpSink) -> None:
        self.sink = sink

    async def handle_RCPT(self, server: Any, session: Any, envelope: Any, address: str, options: Any) -> str:
        fault = self.sink._pick_fault()
        if fault == "smtp_550":
            return f"550 5.1.1 <{address}>: mailbox unavailable (sandbox fault)"
        if fault is not None:
            return "451 4.3.0 try again later (sandbox fault)"
        envelope.rcpt_tos.append(address)
        return "250 2.1.5 OK"

    async def handle_DATA(self, server: Any, session: Any, envelope: Any) -> str:
        seq = self.sink.keep(envelope.mail_from, list(envelope.rcpt_tos), bytes(envelope.content))
        return f"250 2.0.0 OK: queued as SANDBOX{seq}"


class SmtpSink(Emulator):
    """Accepts every letter (unless a fault knob says otherwise) and keeps it for tests and the demo.

    Faults (``PUT /_sandbox/smtp/knobs``, ``fault`` + ``fault_next`` or ``error_rate``): ``smtp_550``
    refuses the recipient for good; any other fault answers 451 (try later). ``GET
    /_sandbox/smtp/drip`` names a side port whose greeting trickles a byte at a time.
    """

    system = "smtp"
    prefix = "/smtp"

    def __init__(self, clock: SandboxClock, mailroom: Mailroom | None = None) -> None:
        super().__init__(clock, mailroom)
        self.smtp_port = 0
        self.host = "127.0.0.1"
        self.messages: list[Received] = []
        self._lock = threading.Lock()
        self._seq = itertools.count(1)
        self._controller: Controller | None = None

    def drip_head(self) -> bytes:
        """The ``drip_headers`` side port is an SMTP server whose greeting trickles."""
        return b"220 sandbox ESMTP " + b"." * 400 + b"\r\n"

    def keep(self, mail_from: str, rcpt_tos: list[str], data: bytes) -> int:
        seq = next(self._seq)
        at = datetime.now(UTC).isoformat()
        with self._lock:
            self.messages.append(Received(seq, at, mail_from, rcpt_tos, data))
        self.log.add(
            at=at,
            sandbox_at=self.clock.now().isoformat(),
            method="SMTP",
            path="DATA",
            query="",
            headers={"mail_from": mail_from, "rcpt_tos": ",".join(rcpt_tos)},
            body=data.decode("utf-8", errors="replace")[:100_000],
            status=250,
        )
        return seq

    def received(self) -> list[Received]:
        with self._lock:
            return list(self.messages)

    def _port(self, host: str) -> int:
        if not self.smtp_port:
            self.smtp_port = free_port(host)
        return self.smtp_port

    def client_settings(self, base_url: str) -> dict[str, str]:
        host = urlsplit(base_url).hostname or self.host
        return {"OBMEN_SMTP_URL": f"smtp://{host}:{self._port(host)}"}

    def start(self, host: str) -> None:
        # aiosmtpd logs five INFO lines per connection; the request log keeps what matters.
        logging.getLogger("mail.log").setLevel(logging.WARNING)
        self.host = host
        self._controller = Controller(
            _SinkHandler(self), hostname=host, port=self._port(host), ready_timeout=30
        )
        self._controller.start()

    def stop(self) -> None:
        if self._controller is not None:
            self._controller.stop()
            self._controller = None

    def reset(self) -> None:
        super().reset()
        with self._lock:
            self.messages.clear()

    def control_routes(self) -> Iterable[BaseRoute]:
        async def messages(request: Request) -> JSONResponse:
            since = int(request.query_params.get("since", 0))
            return JSONResponse([m.as_json() for m in self.received() if m.seq > since])

        async def clear(request: Request) -> JSONResponse:
            with self._lock:
                self.messages.clear()
            return JSONResponse({"cleared": True})

        return [Route("/messages", messages, methods=["GET"]), Route("/messages", clear, methods=["DELETE"])]


class SandboxMailbox(Emulator):
    """Delivers every letter sent through the sandbox's mailroom into the mailbox obmen reads.

    ``deliver_to`` is ``maildir:///path`` or ``imap://user:pass@host:port/FOLDER`` (a real IMAP
    server, which the letters are APPENDed to); unset, a Maildir in a temporary directory is made.
    ``POST /_sandbox/mailbox/letters?to=ADDRESS`` delivers a raw letter given as the request body.
    ``GET /_sandbox/mailbox/drip`` names a side port: an IMAP server whose greeting trickles.
    """

    system = "mailbox"
    prefix = "/mailbox"

    def __init__(self, clock: SandboxClock, mailroom: Mailroom | None = None) -> None:
        super().__init__(clock, mailroom)
        self.deliver_to: str | None = None
        self.delivered: list[tuple[str, int]] = []
        self._own_dir: str | None = None
        self._subscribed_to: Mailroom | None = None
        self._lock = threading.Lock()
        self._imap: imaplib.IMAP4 | None = None
        self._seq = itertools.count(1)

    def drip_head(self) -> bytes:
        """The ``drip_headers`` side port is an IMAP server whose greeting trickles."""
        return b"* OK [CAPABILITY IMAP4rev1] sandbox " + b"." * 400 + b"\r\n"

    def target(self) -> str:
        if self.deliver_to is None:
            self._own_dir = tempfile.mkdtemp(prefix="obmen-sandbox-mail-")
            self.deliver_to = f"maildir://{self._own_dir}"
        return self.deliver_to

    def client_settings(self, base_url: str) -> dict[str, str]:
        return {"OBMEN_IMAP_URL": self.target()}

    def start(self, host: str) -> None:
        target = urlsplit(self.target())
        if target.scheme == "maildir":
            for sub in ("tmp", "new", "cur"):
                Path(unquote(target.path), sub).mkdir(parents=True, exist_ok=True)
        if self._subscribed_to is not self.mailroom:
            self.mailroom.subscribe(self.deliver)
            self._subscribed_to = self.mailroom

    def stop(self) -> None:
        with self._lock:
            if self._imap is not None:
                with contextlib.suppress(OSError, imaplib.IMAP4.error):
                    self._imap.logout()
                self._imap = None
        if self._own_dir is not None:
            shutil.rmtree(self._own_dir, ignore_errors=True)

    def deliver(self, letter: Letter) -> None:
        target = urlsplit(self.target())
        with self._lock:
            if target.scheme == "maildir":
                self._to_maildir(Path(unquote(target.path)), letter.raw)
            elif target.scheme in ("imap", "imaps"):
                self._to_imap(target, letter.raw)
            else:
                raise ValueError(f"the sandbox mailbox cannot deliver to {target.scheme}://")
            self.delivered.append((letter.to, len(letter.raw)))

    def _to_maildir(self, root: Path, raw: bytes) -> None:
        # Maildir delivery: write under tmp/, then rename into new/ (atomic on one filesystem).
        name = f"{time.time_ns()}.M{next(self._seq)}P{os.getpid()}.obmen-sandbox"
        tmp = root / "tmp" / name
        tmp.write_bytes(raw)
        os.rename(tmp, root / "new" / name)

    def _to_imap(self, target: Any, raw: bytes) -> None:
        folder = unquote(target.path).strip("/") or "INBOX"
        for attempt in (1, 2):
            try:
                if self._imap is None:
                    cls = imaplib.IMAP4_SSL if target.scheme == "imaps" else imaplib.IMAP4
                    client = cls(target.hostname, target.port or (993 if target.scheme == "imaps" else 143))
                    client.login(unquote(target.username or ""), unquote(target.password or ""))
                    self._imap = client
                typ, data = self._imap.append(f'"{folder}"', None, None, raw)
                if typ != "OK":
                    raise RuntimeError(f"APPEND to {folder} refused: {data!r}")
                return
            except (OSError, imaplib.IMAP4.abort):
                self._imap = None
                if attempt == 2:
                    raise

    def control_routes(self) -> Iterable[BaseRoute]:
        async def letters(request: Request) -> JSONResponse:
            return JSONResponse({"target": self.target().split("@")[-1], "delivered": len(self.delivered)})

        async def deliver(request: Request) -> JSONResponse:
            body = await request.body()
            to = request.query_params.get("to", "")
            await asyncio.to_thread(self.mailroom.send, to, body)
            return JSONResponse({"delivered": len(self.delivered)})

        return [Route("/letters", letters, methods=["GET"]), Route("/letters", deliver, methods=["POST"])]
