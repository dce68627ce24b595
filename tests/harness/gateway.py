"""The gateway served over real HTTP from a thread of the test process."""

from __future__ import annotations

import threading
import time
from typing import Any

import uvicorn

from tests.harness.processes import free_port


class GatewayThread:
    def __init__(self, app: Any = None) -> None:
        """``create_app()``'s gateway, or ``app`` (the gateway with a route a test adds)."""
        from workers.gateway.app import create_app

        self.port = free_port()
        self._server = uvicorn.Server(
            uvicorn.Config(
                app or create_app(), host="127.0.0.1", port=self.port, log_level="warning", lifespan="off"
            )
        )
        self._thread = threading.Thread(target=self._server.run, daemon=True)

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def __enter__(self) -> GatewayThread:
        self._thread.start()
        deadline = time.monotonic() + 10
        while not self._server.started:
            if time.monotonic() > deadline:
                raise RuntimeError("gateway did not start")
            time.sleep(0.02)
        return self

    def __exit__(self, *exc: object) -> None:
        self._server.should_exit = True
        self._thread.join(timeout=10)
