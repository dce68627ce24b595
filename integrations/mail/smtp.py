"""Sending letters by SMTP (RFC 5321), each exchange reported to the recorder.

A 4xx answer or a lost connection is a ``TransientError`` (try later); a 5xx answer (no such
recipient, refused sender, failed login) or a server that will not do STARTTLS where it must is a
``PermanentError``. The recorded exchange carries the server's answer to DATA (its queue id), and
the letter's Message-ID as the correlation id, so a resend can be recognised. Each letter (MAIL,
RCPT, DATA, and the connect, greeting, STARTTLS and login when it opens the connection) runs under
one deadline of ``timeout`` seconds, the QUIT under one of its own (:mod:`integrations.mail.deadline`):
a server that trickles its greeting or its answers is cut off, ``DeadlinePassed``.
"""

from __future__ import annotations

import base64
import contextlib
import smtplib
import socket
import ssl
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from email.policy import compat32
from email.utils import encode_rfc2231, formataddr, formatdate, parseaddr

from integrations.errors import DeadlinePassed, PermanentError, TransientError
from integrations.exchange import Exchange, Recorder, clip, timed
from integrations.mail.deadline import Watchdog
from integrations.mail.urls import ServerUrl, parse_smtp_url, tls_context


@dataclass(frozen=True)
class Attachment:
    filename: str
    content_type: str
    data: bytes

    @classmethod
    def from_json(cls, item: dict[str, str]) -> Attachment:
        return cls(item["filename"], item["content_type"], base64.b64decode(item["data_b64"]))

    def b64(self) -> str:
        return base64.b64encode(self.data).decode("ascii")


@dataclass(frozen=True)
class Envelope:
    """A letter as SMTP carries it: the envelope's sender and recipient, and the bytes of DATA."""

    sender: str
    recipient: str
    message_id: str
    data: bytes


# The addresses and the attachments' names are folded as ``Message.as_bytes`` under compat32 folds them.
_FOLD = compat32.clone(linesep="\r\n")


def _header(name: str, value: str) -> str:
    return _FOLD.fold(name, value).removesuffix("\r\n")


# UTF-8 bytes in one encoded word: 56 characters of base64, a word of 68, a first line of 77 after
# "Subject: ".
_WORD_BYTES = 42


def _encoded_words(text: str) -> str:
    """``text`` as RFC 2047 encoded words (UTF-8, base64), one a line, never splitting a character.

    A reader joins adjacent words without the folding between them, so every space of the text
    survives: Python 3.11's default policy drops the one where it folds a long subject («2026-000123на
    смену»). Written here because ``Header`` costs most of what a letter costs to write."""
    data = text.encode("utf-8")
    words = []
    start = 0
    while start < len(data):
        end = min(start + _WORD_BYTES, len(data))
        while end < len(data) and data[end] & 0xC0 == 0x80:  # a continuation byte: not a place to cut
            end -= 1
        words.append(f"=?utf-8?b?{base64.b64encode(data[start:end]).decode('ascii')}?=")
        start = end
    return "\r\n ".join(words)


# A MIME entity: its header lines and its body, CRLF-terminated.
_Entity = tuple[list[str], bytes]


def _base64(headers: list[str], data: bytes) -> _Entity:
    return [*headers, "Content-Transfer-Encoding: base64"], base64.encodebytes(data).replace(b"\n", b"\r\n")


def _text(subtype: str, text: str) -> _Entity:
    return _base64([f'Content-Type: text/{subtype}; charset="utf-8"'], text.encode("utf-8"))


def _attachment(item: Attachment) -> _Entity:
    maintype, _, subtype = item.content_type.partition("/")
    disposition = f"attachment; filename*={encode_rfc2231(item.filename, 'utf-8')}"
    return _base64(
        [
            f"Content-Type: {maintype or 'application'}/{subtype or 'octet-stream'}",
            _header("Content-Disposition", disposition),
        ],
        item.data,
    )


def _multipart(subtype: str, parts: Sequence[_Entity]) -> _Entity:
    # A fixed boundary is safe: a delimiter line begins with "-", which no line of a base64 body or of
    # the part headers written here can; an inner multipart's differs from the outer's by its subtype.
    boundary = f"=_obmen_{subtype}".encode("ascii")
    body = b"".join(b"--%s\r\n%s\r\n" % (boundary, _entity_bytes(part)) for part in parts)
    return [
        f'Content-Type: multipart/{subtype}; boundary="{boundary.decode()}"'
    ], body + b"--%s--\r\n" % boundary


def _entity_bytes(entity: _Entity) -> bytes:
    headers, body = entity
    return "".join(f"{line}\r\n" for line in headers).encode("ascii") + b"\r\n" + body


def build_message(
    *,
    sender: str,
    to_address: str,
    to_name: str | None,
    subject: str,
    text: str,
    html: str | None,
    message_id: str,
    attachments: Sequence[Attachment] = (),
) -> Envelope:
    """A letter with a plain text and, when given, an HTML alternative, and its attachments.

    Written out here rather than by ``email.message``: its generator folds every header of every part
    through ``Header`` and compiles a regular expression for each boundary, most of the CPU a letter
    costs to send. The bodies are what it would write (base64 in lines of 76).
    """
    body = (
        _multipart("alternative", [_text("plain", text), _text("html", html)])
        if html
        else _text("plain", text)
    )
    if attachments:
        body = _multipart("mixed", [body, *(_attachment(item) for item in attachments)])
    name, address = parseaddr(sender)
    headers, content = body
    letter = [
        _header("From", formataddr((name, address), charset="utf-8")),
        _header("To", formataddr((to_name or "", to_address), charset="utf-8")),
        f"Subject: {_encoded_words(subject)}",
        f"Message-ID: {message_id}",
        f"Date: {formatdate(localtime=False, usegmt=True)}",
        "MIME-Version: 1.0",
        *headers,
    ]
    return Envelope(address, to_address, message_id, _entity_bytes((letter, content)))


NETWORK_ERRORS = (OSError, socket.timeout, smtplib.SMTPServerDisconnected)


def _refusal(what: str, code: int, reply: bytes | str) -> Exception:
    text = reply.decode("utf-8", "replace") if isinstance(reply, bytes) else reply
    error = f"SMTP {what}: {code} {text}"
    return PermanentError(error) if 500 <= code < 600 else TransientError(error)


class SmtpSender:
    """Sends letters, each under its own deadline. A letter sent alone has a connection of its own;
    the letters sent inside :meth:`connection` (a batch) share one, opened by the first and closed at
    the end of the batch: a connection kept longer would die quietly between batches."""

    def __init__(self, url: str, *, timeout: float, recorder: Recorder, ca_file: str | None = None) -> None:
        self.url: ServerUrl = parse_smtp_url(url)
        self.timeout = timeout
        self.recorder = recorder
        self.ca_file = ca_file
        self._keep = False
        self._client: smtplib.SMTP | None = None
        self._watchdog: Watchdog | None = None

    @contextlib.contextmanager
    def connection(self) -> Iterator[SmtpSender]:
        """Send the letters of this block over one connection (QUIT at the end)."""
        self._keep = True
        try:
            yield self
        finally:
            self._keep = False
            self._close()

    def _connect(self, watchdog: Watchdog) -> smtplib.SMTP:
        url = self.url
        client: smtplib.SMTP
        if url.implicit_tls:
            client = smtplib.SMTP_SSL(timeout=self.timeout, context=tls_context(self.ca_file))
        else:
            client = smtplib.SMTP(timeout=self.timeout)
        watchdog.watch(lambda: client.sock)  # read when it fires: STARTTLS replaces the socket
        client.connect(url.host, url.port)
        client.ehlo_or_helo_if_needed()
        if url.starttls_required:
            if not client.has_extn("starttls"):
                client.close()
                raise PermanentError(
                    f"SMTP server {url.host} offers no STARTTLS; obmen sends in clear text only over loopback"
                )
            client.starttls(context=tls_context(self.ca_file))
            client.ehlo()
        if url.username:
            client.login(url.username, url.password or "")
        return client

    def _transfer(self, sender: str, recipient: str, data: bytes) -> tuple[int, str]:
        if self._watchdog is None:
            self._watchdog = Watchdog(lingers=self._keep)
        try:
            with self._watchdog.deadline(self.timeout, f"SMTP {self.url.identity()}"):
                return self._letter(self._watchdog, sender, recipient, data)
        except (PermanentError, TransientError):
            self._reset()  # the server refused this letter: the connection may serve the next
            raise
        except BaseException:
            self._close()
            raise
        finally:
            if not self._keep:
                self._close()

    def _letter(self, watchdog: Watchdog, sender: str, recipient: str, data: bytes) -> tuple[int, str]:
        kept = self._client
        if kept is not None:
            try:
                code, reply = kept.mail(sender)
            except smtplib.SMTPServerDisconnected:
                # Closed between two letters (the server's idle timeout): nothing of this one was sent.
                self._close()
                kept = None
        client = self._client = kept or self._connect(watchdog)
        if kept is None:
            code, reply = client.mail(sender)
        if code != 250:
            raise _refusal(f"MAIL FROM {sender}", code, reply)
        code, reply = client.rcpt(recipient)
        if code not in (250, 251):
            raise _refusal(f"RCPT TO {recipient}", code, reply)
        code, reply = client.data(data)
        if code != 250:
            raise _refusal("DATA", code, reply)
        return code, reply.decode("utf-8", "replace")

    def _reset(self) -> None:
        """Forget a refused letter's envelope (RSET), or the connection when that fails too."""
        if self._client is None or not self._keep:
            return
        try:
            code, _ = self._client.rset()
        except (*NETWORK_ERRORS, smtplib.SMTPException):
            code = 0
        if code != 250:
            self._close()

    def _close(self) -> None:
        """QUIT within a deadline of its own; a connection whose deadline passed is only shut."""
        client, watchdog = self._client, self._watchdog
        self._client = self._watchdog = None
        if watchdog is None:
            return
        try:
            if client is None:
                return
            if watchdog.fired:
                client.close()
                return
            with watchdog.deadline(self.timeout, f"SMTP {self.url.identity()} QUIT"):
                client.quit()
        except (*NETWORK_ERRORS, smtplib.SMTPException, DeadlinePassed):
            if client is not None:
                client.close()
        finally:
            watchdog.close()

    def send(self, message: Envelope, *, business_key: str | None = None) -> str:
        """Send ``message`` to its recipient; returns the server's answer to DATA."""
        sender, recipient, data = message.sender, message.recipient, message.data
        exchange = Exchange(
            system="smtp",
            operation="send",
            url=self.url.identity(),
            request_headers={"From": sender, "To": recipient, "Message-ID": message.message_id},
            request_body=clip(data),
            correlation_id=message.message_id,
            business_key=business_key,
        )
        with timed() as elapsed:
            try:
                code, reply = self._transfer(sender, recipient, data)
                exchange.response_status, exchange.response_body = code, reply
            except DeadlinePassed as exc:
                exchange.error = f"DeadlinePassed: {exc}"
                raise
            except (PermanentError, TransientError) as exc:
                exchange.error = str(exc)
                raise
            except smtplib.SMTPAuthenticationError as exc:
                exchange.error = f"login refused: {exc.smtp_code}"
                raise PermanentError(f"SMTP {self.url.identity()}: login refused ({exc.smtp_code})") from exc
            except smtplib.SMTPResponseException as exc:
                exchange.error = f"{exc.smtp_code} {exc.smtp_error!r}"
                raise _refusal("session", exc.smtp_code, exc.smtp_error) from exc
            except ssl.SSLCertVerificationError as exc:
                exchange.error = f"certificate refused: {exc}"
                raise PermanentError(f"SMTP {self.url.identity()}: certificate refused ({exc})") from exc
            except (*NETWORK_ERRORS, smtplib.SMTPException) as exc:
                exchange.error = f"{type(exc).__name__}: {exc}"
                raise TransientError(f"SMTP {self.url.identity()}: {exc}") from exc
            finally:
                exchange.duration_ms = elapsed()
                self.recorder(exchange)
        return f"{code} {reply}"
