"""One client per process and configuration: made after the fork (pool processes must not share
connections), closed and forgotten when tests point the settings elsewhere."""

from __future__ import annotations

import os
import threading
from collections.abc import Callable, Hashable
from typing import Generic, Protocol, TypeVar


class Closable(Protocol):
    def close(self) -> None: ...


C = TypeVar("C", bound=Closable)


class ClientCache(Generic[C]):
    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._clients: dict[tuple[int, Hashable], C] = {}

    def get(self, config: Hashable, make: Callable[[], C]) -> C:
        key = (os.getpid(), config)
        with self._lock:
            client = self._clients.get(key)
            if client is None:
                client = self._clients[key] = make()
            return client

    def forget(self) -> None:
        with self._lock:
            for client in self._clients.values():
                client.close()
            self._clients.clear()
