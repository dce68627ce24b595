"""Hostile answers, the same for every emulator: each is a fault kind (knob ``fault``) a careful client
must survive in bounded time with a typed error.

* ``dtd`` — a billion-laughs DOCTYPE before the emulator's own answer document;
* ``entity`` — an external entity naming ``extra.entity_target`` (default ``file:///etc/passwd``;
  an ``http://`` URL tests that nothing is fetched);
* ``pi_flood`` — ``extra.pi_count`` (default 30 000) processing instructions before the real answer:
  legal XML, read normally by a parser; a pattern over the bytes once backtracked on 30 of them;
* ``slow_headers`` — the request is executed, and nothing is sent for ``extra.slow_s`` (default 30);
* ``drip_body`` — the real answer's headers at once, its body 16 bytes every ``extra.drip_interval_s``
  (default 0.5): each read well within a read timeout, the whole never within a deadline;
* ``huge`` — an answer of ``extra.huge_bytes`` (default 64 MB), streamed;
* ``gzip_bomb`` — ``extra.bomb_bytes`` (default 200 MB) of zeros, gzip-encoded (a thousandth on the wire);
* ``deep_json`` — ``[`` × ``extra.json_depth`` (default 100 000): deeper than a recursive parser's stack;
* ``drip_headers`` — from a side port (``GET /_sandbox/<system>/drip`` gives its address; an ASGI
  server cannot trickle its own status line): the greeting or status line and headers, one byte every
  ``extra.drip_interval_s``. For an HTTP emulator an HTTP head, for the SMTP sink a ``220`` greeting,
  for the mailbox an IMAP ``* OK`` greeting (:meth:`sandbox.harness.Emulator.drip_head`).

The kinds that need a real answer execute the request through the emulator's own routes first, as a
system that did the work but whose answer went wrong would have. Nothing here knows a client.
"""

from __future__ import annotations

import asyncio
import socket
import threading
import time
import zlib
from collections.abc import Callable
from functools import cache
from typing import TYPE_CHECKING, Any

from starlette.responses import Response
from starlette.types import Message, Receive, Scope, Send

if TYPE_CHECKING:
    from sandbox.harness import Emulator

KINDS = frozenset(
    {
        "dtd",
        "entity",
        "pi_flood",
        "slow_headers",
        "drip_body",
        "huge",
        "gzip_bomb",
        "deep_json",
        "drip_headers",
    }
)
XML = "text/xml; charset=utf-8"
LAUGHS = b"""<!DOCTYPE lolz [
 <!ENTITY lol "lol">
 <!ENTITY lol2 "&lol;&lol;&lol;&lol;&lol;&lol;&lol;&lol;&lol;&lol;">
 <!ENTITY lol3 "&lol2;&lol2;&lol2;&lol2;&lol2;&lol2;&lol2;&lol2;&lol2;&lol2;">
 <!ENTITY lol4 "&lol3;&lol3;&lol3;&lol3;&lol3;&lol3;&lol3;&lol3;&lol3;&lol3;">
 <!ENTITY lol5 "&lol4;&lol4;&lol4;&lol4;&lol4;&lol4;&lol4;&lol4;&lol4;&lol4;">
 <!ENTITY lol6 "&lol5;&lol5;&lol5;&lol5;&lol5;&lol5;&lol5;&lol5;&lol5;&lol5;">
]>
"""


def billion_laughs(document: bytes) -> bytes:
    """``document`` (with ``{value}`` where a text goes) after a DOCTYPE whose entity grows to 10⁶."""
    return b'<?xml version="1.0"?>\n' + LAUGHS + document.replace(b"{value}", b"&lol6;")


def external_entity(document: bytes, target: str) -> bytes:
    return (
        b'<?xml version="1.0"?>\n'
        + f'<!DOCTYPE answer [<!ENTITY xxe SYSTEM "{target}">]>\n'.encode()
        + document.replace(b"{value}", b"&xxe;")
    )


@cache
def _zeros_member() -> bytes:
    compressor = zlib.compressobj(9, zlib.DEFLATED, 31)
    return compressor.compress(bytes(1 << 20)) + compressor.flush()


def gzip_bomb(size: int) -> bytes:
    """``size`` zero bytes gzip-encoded, about a thousandth of that on the wire: one member of a
    mebibyte of zeros, repeated (a gzip stream may hold many members, RFC 1952)."""
    return _zeros_member() * max(1, size >> 20)


class HostileAnswer(Response):
    """The answer of one hostile ``kind`` from ``emulator`` to the request in ``scope``."""

    def __init__(self, emulator: Emulator, kind: str) -> None:
        super().__init__()
        self.emulator = emulator
        self.kind = kind

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        kind, extra = self.kind, self.emulator.knobs.extra
        document = self.emulator.hostile_document
        if kind == "dtd":
            await Response(billion_laughs(document), media_type=XML)(scope, receive, send)
        elif kind == "entity":
            target = str(extra.get("entity_target", "file:///etc/passwd"))
            await Response(external_entity(document, target), media_type=XML)(scope, receive, send)
        elif kind == "gzip_bomb":
            bomb = gzip_bomb(int(extra.get("bomb_bytes", 200 << 20)))
            gzipped = {"content-encoding": "gzip"}
            await Response(bomb, media_type=self.emulator.content_type, headers=gzipped)(scope, receive, send)
        elif kind == "deep_json":
            nested = b"[" * int(extra.get("json_depth", 100_000))
            await Response(nested, media_type="application/json")(scope, receive, send)
        elif kind == "huge":
            await self._huge(send, int(extra.get("huge_bytes", 64_000_000)))
        else:
            status, headers, body = await self._real(scope, receive)
            if kind == "pi_flood":
                flood = b'<?xml version="1.0"?>' + b"<?x?>" * int(extra.get("pi_count", 30_000))
                await _answer(send, status, headers, flood + _without_declaration(body))
            elif kind == "slow_headers":
                await asyncio.sleep(float(extra.get("slow_s", 30.0)))
                await _answer(send, status, headers, body)
            else:  # drip_body
                await send({"type": "http.response.start", "status": status, "headers": _plain(headers)})
                interval = float(extra.get("drip_interval_s", 0.5))
                for i in range(0, len(body), 16):
                    await send({"type": "http.response.body", "body": body[i : i + 16], "more_body": True})
                    await asyncio.sleep(interval)
                await send({"type": "http.response.body", "body": b"", "more_body": False})

    async def _real(self, scope: Scope, receive: Receive) -> tuple[int, list[Any], bytes]:
        messages: list[Message] = []

        async def keep(message: Message) -> None:
            messages.append(message)

        await self.emulator.route(scope, receive, keep)
        start = next(m for m in messages if m["type"] == "http.response.start")
        body = b"".join(m.get("body", b"") for m in messages if m["type"] == "http.response.body")
        return start["status"], list(start.get("headers", [])), body

    async def _huge(self, send: Send, size: int) -> None:
        head, _, tail = self.emulator.hostile_document.partition(b"{value}")
        content_type = self.emulator.content_type.encode()
        await send(
            {"type": "http.response.start", "status": 200, "headers": [(b"content-type", content_type)]}
        )
        await send({"type": "http.response.body", "body": head, "more_body": True})
        padding = b"x" * 65_536
        for _ in range(size // len(padding)):
            await send({"type": "http.response.body", "body": padding, "more_body": True})
        await send({"type": "http.response.body", "body": tail, "more_body": False})


def _without_declaration(body: bytes) -> bytes:
    if body.startswith(b"<?xml"):
        return body[body.index(b"?>") + 2 :]
    return body


def _plain(headers: list[Any]) -> list[Any]:
    """The headers without the length: the body is sent as it comes."""
    return [(k, v) for k, v in headers if k.lower() != b"content-length"]


async def _answer(send: Send, status: int, headers: list[Any], body: bytes) -> None:
    await send({"type": "http.response.start", "status": status, "headers": _plain(headers)})
    await send({"type": "http.response.body", "body": body, "more_body": False})


class DripServer:
    """A side listener whose every connection gets ``head()`` one byte at a time
    (``extra.drip_interval_s`` apart), then nothing. It reads what the client sends first (an HTTP
    request) only when there is something to read: SMTP and IMAP clients wait for the greeting.
    Each connection gives up after ``extra.drip_total_s`` (default 60 s). Started on first use."""

    def __init__(self, head: Callable[[], bytes], extra: Callable[[], dict[str, Any]]) -> None:
        self._head = head
        self._extra = extra
        self._socket: socket.socket | None = None
        self._stop = threading.Event()
        self._lock = threading.Lock()
        self.address: tuple[str, int] | None = None

    def start(self, host: str) -> tuple[str, int]:
        with self._lock:
            if self.address is None:
                self._stop.clear()
                self._socket = socket.create_server((host, 0))
                self._socket.settimeout(0.2)
                self.address = (host, self._socket.getsockname()[1])
                threading.Thread(target=self._serve, name="sandbox-drip", daemon=True).start()
            return self.address

    def stop(self) -> None:
        with self._lock:
            self._stop.set()
            if self._socket is not None:
                self._socket.close()
            self._socket, self.address = None, None

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
        extra = self._extra()
        interval = float(extra.get("drip_interval_s", 0.5))
        give_up = time.monotonic() + float(extra.get("drip_total_s", 60.0))
        with connection:
            connection.settimeout(interval)
            try:
                for byte in self._head():
                    if self._stop.is_set() or time.monotonic() > give_up:
                        return
                    connection.sendall(bytes([byte]))
                    try:
                        if connection.recv(65_536) == b"":
                            return  # the client hung up: what a careful client does
                    except TimeoutError:
                        pass  # nothing to read, which is the interval between two bytes
            except OSError:
                return
