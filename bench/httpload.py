"""A lean HTTP/1.1 load generator: keep-alive connections on asyncio streams, no client library.

A general-purpose client (httpx) spends a few milliseconds of CPU per request; on a two-core machine
that would be measured instead of the gateway. Here a request is bytes built up front and an answer
is a status line, headers and a Content-Length body.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field


@dataclass
class LoadResult:
    latencies_s: list[float] = field(default_factory=list)
    statuses: list[int] = field(default_factory=list)
    elapsed_s: float = 0.0

    def percentile_ms(self, q: float) -> float:
        ordered = sorted(self.latencies_s)
        return ordered[min(len(ordered) - 1, int(len(ordered) * q))] * 1000


def request_bytes(method: str, path: str, host: str, body: bytes, headers: dict[str, str]) -> bytes:
    lines = [f"{method} {path} HTTP/1.1", f"Host: {host}", f"Content-Length: {len(body)}"]
    lines += [f"{k}: {v}" for k, v in headers.items()]
    return ("\r\n".join(lines) + "\r\n\r\n").encode("latin-1") + body


async def _read_answer(reader: asyncio.StreamReader) -> int:
    head = await reader.readuntil(b"\r\n\r\n")
    status = int(head.split(b" ", 2)[1])
    length = 0
    for line in head.split(b"\r\n")[1:]:
        name, _, value = line.partition(b":")
        if name.strip().lower() == b"content-length":
            length = int(value.strip())
    if length:
        await reader.readexactly(length)
    return status


async def _run(
    host: str, port: int, requests: Sequence[Callable[[], bytes]], concurrency: int, rate: float | None
) -> LoadResult:
    result = LoadResult()
    cursor = iter(range(len(requests)))
    started = time.perf_counter()

    async def connection() -> None:
        reader, writer = await asyncio.open_connection(host, port)
        try:
            for index in cursor:
                sent = time.perf_counter()
                if rate is not None:
                    # Open loop: request i is due at i / rate. Its latency counts from then, so time
                    # spent waiting for a free connection is in the figure (no coordinated omission).
                    due = started + index / rate
                    await asyncio.sleep(max(0.0, due - sent))
                    sent = due
                payload = requests[index]()
                writer.write(payload)
                status = await _read_answer(reader)
                result.latencies_s.append(time.perf_counter() - sent)
                result.statuses.append(status)
        finally:
            writer.close()

    await asyncio.gather(*(connection() for _ in range(concurrency)))
    result.elapsed_s = time.perf_counter() - started
    return result


def run_load(
    host: str, port: int, requests: Sequence[Callable[[], bytes]], concurrency: int, rate: float | None = None
) -> LoadResult:
    """Send every request (built lazily, so signatures are fresh) over ``concurrency`` connections:
    each as soon as the one before on its connection is answered (closed loop), or, with ``rate``,
    at ``rate`` requests a second whatever the answers (open loop, ``concurrency`` connections at most)."""
    return asyncio.run(_run(host, port, requests, concurrency, rate))
