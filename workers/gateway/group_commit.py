"""Group commit: the requests that arrive together are written in one transaction.

A bank's 2xx waits for a durable commit. Written alone, every request pays for its own round trips
and its own WAL flush, and under load the requests queue behind each other's flushes. Here one
group is written at a time, and the requests that arrive meanwhile form the next group: one
statement per kind of row and one commit serve them all, and no request waits for more than the
group ahead of it. With a single request in flight a group is that request: no added delay.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable, Sequence
from typing import Generic, TypeVar

from starlette.concurrency import run_in_threadpool

Item = TypeVar("Item")
Result = TypeVar("Result")


class GroupCommit(Generic[Item, Result]):
    """Runs ``write(items) -> results`` (one transaction, one result per item) for waiting groups.

    An exception of a type in ``shared`` (the store is down) fails the whole group; any other fails
    the group's items one by one, each written alone, so one bad item never fails the others.
    """

    def __init__(
        self,
        write: Callable[[list[Item]], Sequence[Result]],
        *,
        shared: tuple[type[Exception], ...],
        max_group: int = 200,
    ) -> None:
        self._write = write
        self._shared = shared
        self._max_group = max_group
        self._loop: asyncio.AbstractEventLoop | None = None
        self._waiting: list[tuple[Item, asyncio.Future[Result]]] = []
        self._writer: asyncio.Task[None] | None = None

    async def submit(self, item: Item) -> Result:
        loop = asyncio.get_running_loop()
        if loop is not self._loop:
            # A new event loop (a test client's): what the old one left is gone with it.
            self._loop, self._waiting, self._writer = loop, [], None
        future: asyncio.Future[Result] = loop.create_future()
        self._waiting.append((item, future))
        if self._writer is None:
            self._writer = loop.create_task(self._write_groups())
        return await future

    async def _write_groups(self) -> None:
        try:
            while self._waiting:
                group = self._waiting[: self._max_group]
                del self._waiting[: self._max_group]
                await self._write_group(group)
        finally:
            if self._writer is asyncio.current_task():
                self._writer = None

    async def _write_group(self, group: list[tuple[Item, asyncio.Future[Result]]]) -> None:
        # A future already done was cancelled (its client went away): its row is written anyway.
        try:
            results = await run_in_threadpool(self._write, [item for item, _ in group])
        except self._shared as exc:
            for _, future in group:
                if not future.done():
                    future.set_exception(exc)
        except Exception as exc:
            if len(group) > 1:
                for one in group:
                    await self._write_group([one])
            elif not group[0][1].done():
                group[0][1].set_exception(exc)
        else:
            for (_, future), result in zip(group, results, strict=True):
                if not future.done():
                    future.set_result(result)
