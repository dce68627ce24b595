"""One deadline for connect, headers and body, and a size cap that holds after decompression,
against real sockets that misbehave."""

from __future__ import annotations

import contextlib
import gzip
import socket
import threading
import time
from collections.abc import Callable, Iterator

import pytest

from integrations.bounded_http import AnswerTooLarge, AnswerUnreadable, BoundedClient, NotSent
from integrations.errors import DeadlinePassed
from integrations.exchange import Exchange

Serve = Callable[[socket.socket], None]


@pytest.fixture
def server() -> Iterator[Callable[[Serve], str]]:
    """A one-connection-at-a-time HTTP server on loopback that answers however ``serve`` says."""
    listener = socket.create_server(("127.0.0.1", 0))
    listener.settimeout(0.2)
    stop = threading.Event()
    handlers: list[Serve] = []

    def run() -> None:
        while not stop.is_set():
            try:
                conn, _ = listener.accept()
            except TimeoutError:
                continue
            with conn:
                conn.settimeout(5)
                data = b""
                while b"\r\n\r\n" not in data:
                    chunk = conn.recv(65536)
                    if not chunk:
                        break
                    data += chunk
                # The client hanging up mid-answer is what a deadline does.
                with contextlib.suppress(OSError):
                    handlers[0](conn)

    thread = threading.Thread(target=run, daemon=True)
    thread.start()

    def start(serve: Serve) -> str:
        handlers.append(serve)
        return f"http://127.0.0.1:{listener.getsockname()[1]}/"

    yield start
    stop.set()
    thread.join(5)
    listener.close()


def fetch(url: str, *, deadline_s: float = 1.0, max_bytes: int = 1_000_000) -> tuple[float, list[Exchange]]:
    recorded: list[Exchange] = []
    client = BoundedClient(deadline_s=deadline_s, max_bytes=max_bytes)
    start = time.monotonic()
    try:
        client.send(
            client.build_request("GET", url), recorder=recorded.append, system="test", operation="get"
        )
    finally:
        client.close()
    return time.monotonic() - start, recorded


def trickle(parts: bytes, every_s: float) -> Serve:
    def serve(conn: socket.socket) -> None:
        for i in range(len(parts)):
            conn.sendall(parts[i : i + 1])
            time.sleep(every_s)

    return serve


def _cut_at_the_deadline(url: str, words: str) -> None:
    client = BoundedClient(deadline_s=1.0, max_bytes=1_000_000)
    start = time.monotonic()
    try:
        with pytest.raises(DeadlinePassed, match=words):
            client.send(client.build_request("GET", url), recorder=lambda e: None, system="t", operation="g")
        assert time.monotonic() - start < 1.6
    finally:
        client.close()


def test_headers_trickling_in_do_not_outlast_the_deadline(server: Callable[[Serve], str]) -> None:
    url = server(trickle(b"HTTP/1.1 200 OK\r\nX-Slow: " + b"a" * 200 + b"\r\n\r\n", 0.05))
    _cut_at_the_deadline(url, r"within 1.0 s \(no headers yet\)")


def test_a_body_trickling_in_does_not_outlast_the_deadline(server: Callable[[Serve], str]) -> None:
    head = b"HTTP/1.1 200 OK\r\nContent-Length: 400\r\n\r\n"

    def serve(conn: socket.socket) -> None:
        conn.sendall(head)
        trickle(b"x" * 400, 0.05)(conn)

    _cut_at_the_deadline(server(serve), "the body was still coming")


def test_a_gzip_bomb_stops_at_the_cap(server: Callable[[Serve], str]) -> None:
    bomb = gzip.compress(b"\0" * 50_000_000, compresslevel=9)
    assert len(bomb) < 100_000

    def serve(conn: socket.socket) -> None:
        conn.sendall(
            b"HTTP/1.1 200 OK\r\nContent-Encoding: gzip\r\nContent-Length: %d\r\n\r\n" % len(bomb) + bomb
        )

    url = server(serve)
    recorded: list[Exchange] = []
    client = BoundedClient(deadline_s=5, max_bytes=1_000_000)
    with pytest.raises(AnswerTooLarge, match="1000000 bytes"):
        client.send(client.build_request("GET", url), recorder=recorded.append, system="t", operation="get")
    assert recorded[0].error and recorded[0].response_status == 200
    client.close()


def test_a_small_gzip_answer_is_read(server: Callable[[Serve], str]) -> None:
    body = gzip.compress("привет".encode() * 1000)

    def serve(conn: socket.socket) -> None:
        conn.sendall(
            b"HTTP/1.1 200 OK\r\nContent-Encoding: gzip\r\nContent-Length: %d\r\n\r\n" % len(body) + body
        )

    url = server(serve)
    client = BoundedClient(deadline_s=5, max_bytes=1_000_000)
    answer = client.send(client.build_request("GET", url), recorder=lambda e: None, system="t", operation="g")
    assert answer.content == "привет".encode() * 1000
    client.close()


def test_a_plain_answer_over_the_cap_is_refused(server: Callable[[Serve], str]) -> None:
    def serve(conn: socket.socket) -> None:
        conn.sendall(b"HTTP/1.1 200 OK\r\nContent-Length: 3000000\r\n\r\n" + b"x" * 3_000_000)

    with pytest.raises(AnswerTooLarge):
        fetch(server(serve), deadline_s=5)


def test_an_encoding_we_did_not_ask_for_is_refused(server: Callable[[Serve], str]) -> None:
    def serve(conn: socket.socket) -> None:
        conn.sendall(b"HTTP/1.1 200 OK\r\nContent-Encoding: br\r\nContent-Length: 4\r\n\r\nxxxx")

    with pytest.raises(AnswerUnreadable, match="br"):
        fetch(server(serve), deadline_s=5)


def test_connection_refused_is_try_later_and_recorded() -> None:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    recorded: list[Exchange] = []
    client = BoundedClient(deadline_s=2, max_bytes=1000)
    with pytest.raises(NotSent, match="ConnectError"):
        client.send(
            client.build_request("GET", f"http://127.0.0.1:{port}/"),
            recorder=recorded.append,
            system="t",
            operation="g",
        )
    assert (recorded[0].error or "").startswith("NotSent: ") and recorded[0].response_status is None
    client.close()


def test_requests_ask_for_identity(server: Callable[[Serve], str]) -> None:
    def serve(conn: socket.socket) -> None:
        conn.sendall(b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok")

    recorded: list[Exchange] = []
    client = BoundedClient(deadline_s=5, max_bytes=1000)
    answer = client.send(
        client.build_request("GET", server(serve)), recorder=recorded.append, system="t", operation="g"
    )
    assert answer.content == b"ok"
    assert recorded[0].request_headers["accept-encoding"] == "identity"
    client.close()
