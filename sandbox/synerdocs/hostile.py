"""Answers a careful client must survive: DTDs and entities, huge or compressed-bomb bodies, a server
that holds its headers or trickles its body, a status line and headers that trickle byte by byte.

The kinds that need a real answer (``truncated``, ``unknown_enum``, ``extra_members``, ``drip_body``,
``slow_headers``)
execute the request first, as an operator that did the work but whose answer went wrong would have.
"""

from __future__ import annotations

import asyncio
import socket
import threading
import time
import zlib
from functools import cache
from typing import TYPE_CHECKING

from starlette.requests import Request
from starlette.responses import Response
from starlette.types import Receive, Scope, Send

if TYPE_CHECKING:
    from sandbox.synerdocs.emulator import SynerdocsEmulator

XML = "text/xml; charset=utf-8"
ENVELOPE_HEAD = (
    b'<s:Envelope xmlns:s="http://schemas.xmlsoap.org/soap/envelope/"><s:Body>'
    b'<GetMessagesResponse xmlns="http://synerdocs.ru"><GetMessagesResult '
    b'xmlns:a="http://schemas.datacontract.org/2004/07/Midway.ObjectModel">'
)
ENVELOPE_TAIL = b"</GetMessagesResult></GetMessagesResponse></s:Body></s:Envelope>"

BILLION_LAUGHS = b"""<?xml version="1.0"?>
<!DOCTYPE lolz [
 <!ENTITY lol "lol">
 <!ENTITY lol2 "&lol;&lol;&lol;&lol;&lol;&lol;&lol;&lol;&lol;&lol;">
 <!ENTITY lol3 "&lol2;&lol2;&lol2;&lol2;&lol2;&lol2;&lol2;&lol2;&lol2;&lol2;">
 <!ENTITY lol4 "&lol3;&lol3;&lol3;&lol3;&lol3;&lol3;&lol3;&lol3;&lol3;&lol3;">
 <!ENTITY lol5 "&lol4;&lol4;&lol4;&lol4;&lol4;&lol4;&lol4;&lol4;&lol4;&lol4;">
 <!ENTITY lol6 "&lol5;&lol5;&lol5;&lol5;&lol5;&lol5;&lol5;&lol5;&lol5;&lol5;">
]>
<s:Envelope xmlns:s="http://schemas.xmlsoap.org/soap/envelope/"><s:Body>
<AuthenticateResponse xmlns="http://synerdocs.ru"><AuthenticateResult>&lol6;</AuthenticateResult>
</AuthenticateResponse></s:Body></s:Envelope>"""


def external_entity(target: str) -> bytes:
    return f"""<?xml version="1.0"?>
<!DOCTYPE s:Envelope [<!ENTITY xxe SYSTEM "{target}">]>
<s:Envelope xmlns:s="http://schemas.xmlsoap.org/soap/envelope/"><s:Body>
<AuthenticateResponse xmlns="http://synerdocs.ru"><AuthenticateResult>&xxe;</AuthenticateResult>
</AuthenticateResponse></s:Body></s:Envelope>""".encode()


@cache
def gzip_bomb(size: int) -> bytes:
    """A gzip stream of ``size`` zero bytes: about a thousandth of that on the wire."""
    compressor = zlib.compressobj(9, zlib.DEFLATED, 31)
    block = bytes(1 << 20)
    parts = [compressor.compress(block) for _ in range(size >> 20)]
    parts.append(compressor.flush())
    return b"".join(parts)


class HostileAnswer(Response):
    def __init__(self, emulator: SynerdocsEmulator, kind: str, request: Request) -> None:
        super().__init__()
        self.emulator = emulator
        self.kind = kind
        self.request = request

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        kind, extra = self.kind, self.emulator.knobs.extra
        if kind == "drip_body":
            real = await self._real()
            await _start(send, real.status_code)
            interval = float(extra.get("drip_interval_s", 0.5))
            for i in range(0, len(real.body), 16):
                await send(
                    {"type": "http.response.body", "body": bytes(real.body[i : i + 16]), "more_body": True}
                )
                await asyncio.sleep(interval)
            await send({"type": "http.response.body", "body": b"", "more_body": False})
            return
        if kind == "huge":
            await _start(send, 200)
            padding = b"<a:MessageInfo><a:From>" + b"x" * 65_000 + b"</a:From></a:MessageInfo>"
            await send({"type": "http.response.body", "body": ENVELOPE_HEAD, "more_body": True})
            for _ in range(int(extra.get("huge_bytes", 64_000_000)) // len(padding)):
                await send({"type": "http.response.body", "body": padding, "more_body": True})
            await send({"type": "http.response.body", "body": ENVELOPE_TAIL, "more_body": False})
            return
        if kind == "slow_headers":
            real = await self._real()
            await asyncio.sleep(float(extra.get("slow_s", 30.0)))
            await real(scope, receive, send)
            return
        response: Response
        if kind == "dtd":
            response = Response(BILLION_LAUGHS, media_type=XML)
        elif kind == "entity":
            response = Response(
                external_entity(str(extra.get("entity_target", "file:///etc/passwd"))), media_type=XML
            )
        elif kind == "gzip_bomb":
            response = Response(
                gzip_bomb(int(extra.get("bomb_bytes", 200 << 20))),
                media_type=XML,
                headers={"content-encoding": "gzip"},
            )
        elif kind == "empty_200":
            response = Response(b"", media_type=XML)
        elif kind in ("truncated", "unknown_enum", "extra_members"):
            real = await self._real()
            content = bytes(real.body)
            if kind == "truncated":
                content = content[: len(content) // 2]
            elif kind == "extra_members":
                # A newer service: a member the published contract does not have yet, after the known ones.
                content = content.replace(
                    b"</a:Organization>", b"<a:ZNewMember>1</a:ZNewMember></a:Organization>"
                )
            else:
                content = content.replace(b">DeliveredToRecipient<", b">Teleported<").replace(
                    b">SentToRecipient<", b">Teleported<"
                )
            response = Response(content, status_code=real.status_code, media_type=XML)
        else:
            response = Response(
                b"<html><head><title>500 Internal Server Error</title></head><body>"
                b"<h1>Internal Server Error</h1><hr><address>IIS</address></body></html>",
                status_code=500,
                media_type="text/html",
            )
        await response(scope, receive, send)

    async def _real(self) -> Response:
        return self.emulator.answer(await self.request.body(), self.request.headers.get("soapaction"))


async def _start(send: Send, status: int) -> None:
    await send(
        {"type": "http.response.start", "status": status, "headers": [(b"content-type", XML.encode())]}
    )


class DripServer:
    """A side listener whose every answer trickles its status line and headers one byte at a time
    (``extra.drip_interval_s`` apart): each byte comes well within a read timeout, the whole never
    within a deadline. Each connection gives up after ``extra.drip_total_s`` (default 60 s)."""

    def __init__(self, emulator: SynerdocsEmulator) -> None:
        self.emulator = emulator
        self._socket: socket.socket | None = None
        self._stop = threading.Event()
        self.url = ""

    def start(self, host: str) -> None:
        self._stop.clear()
        self._socket = socket.create_server((host, 0))
        self._socket.settimeout(0.2)
        port = self._socket.getsockname()[1]
        self.url = f"http://{host}:{port}"
        threading.Thread(target=self._serve, name="synerdocs-drip", daemon=True).start()

    def stop(self) -> None:
        self._stop.set()
        if self._socket is not None:
            self._socket.close()
            self._socket = None

    def _serve(self) -> None:
        listener = self._socket
        while listener is not None and not self._stop.is_set():
            try:
                connection, _ = listener.accept()
            except TimeoutError:
                continue
            except OSError:
                return
            threading.Thread(target=self._drip, args=(connection,), daemon=True).start()

    def _drip(self, connection: socket.socket) -> None:
        extra = self.emulator.knobs.extra
        interval = float(extra.get("drip_interval_s", 0.5))
        give_up = time.monotonic() + float(extra.get("drip_total_s", 60.0))
        head = (
            b"HTTP/1.1 200 OK\r\nContent-Type: text/xml; charset=utf-8\r\n"
            + b"X-Padding: "
            + b"." * 400
            + b"\r\n\r\n"
        )
        with connection:
            connection.settimeout(5)
            try:
                connection.recv(65536)  # the request's first bytes; the rest is never read
                for byte in head:
                    if self._stop.is_set() or time.monotonic() > give_up:
                        return
                    connection.sendall(bytes([byte]))
                    time.sleep(interval)
            except OSError:
                return  # the client hung up: what a careful client does
