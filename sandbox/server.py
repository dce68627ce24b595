"""Serving the sandbox: in a background thread (tests, demo) or in the foreground (``obmen sandbox``)."""

from __future__ import annotations

import socket
import threading
import time

import uvicorn

from sandbox.harness import Emulator, Mailroom, SandboxClock, build_app


def free_port(host: str = "127.0.0.1") -> int:
    with socket.socket() as s:
        s.bind((host, 0))
        return int(s.getsockname()[1])


def all_emulators(clock: SandboxClock, mailroom: Mailroom) -> list[Emulator]:
    """Every emulator the sandbox serves (``sandbox/registry.py``)."""
    from sandbox.registry import EMULATORS

    return [cls(clock, mailroom) for cls in EMULATORS]


class Sandbox:
    """The sandbox server with its emulators, started on loopback."""

    def __init__(
        self,
        emulators: list[Emulator] | None = None,
        host: str = "127.0.0.1",
        port: int = 0,
        scale: float = 1.0,
    ) -> None:
        self.clock = SandboxClock(scale)
        self.mailroom = Mailroom()
        self.emulators = emulators if emulators is not None else all_emulators(self.clock, self.mailroom)
        for emulator in self.emulators:
            emulator.clock = self.clock
            emulator.mailroom = self.mailroom
        self.host = host
        self.port = port or free_port(host)
        config = uvicorn.Config(
            build_app(self.emulators, self.clock),
            host=host,
            port=self.port,
            log_level="warning",
            lifespan="off",
        )
        self._server = uvicorn.Server(config)
        self._thread: threading.Thread | None = None

    @property
    def url(self) -> str:
        return f"http://{self.host}:{self.port}"

    def emulator(self, system: str) -> Emulator:
        return next(e for e in self.emulators if e.system == system)

    def client_settings(self) -> dict[str, str]:
        settings: dict[str, str] = {}
        for emulator in self.emulators:
            settings.update(emulator.client_settings(self.url))
        return settings

    def start(self) -> Sandbox:
        for emulator in self.emulators:
            emulator.start(self.host)
        self._thread = threading.Thread(target=self._server.run, name="sandbox", daemon=True)
        self._thread.start()
        deadline = time.monotonic() + 10
        while not self._server.started:
            if time.monotonic() > deadline or not self._thread.is_alive():
                raise RuntimeError(f"sandbox did not start on {self.url}")
            time.sleep(0.02)
        return self

    def serve_forever(self) -> None:
        for emulator in self.emulators:
            emulator.start(self.host)
        try:
            self._server.run()
        finally:
            self._stop_emulators()

    def stop(self) -> None:
        self._server.should_exit = True
        if self._thread is not None:
            self._thread.join(timeout=10)
        self._stop_emulators()

    def _stop_emulators(self) -> None:
        for emulator in self.emulators:
            emulator.stop()
            emulator.drip.stop()

    def __enter__(self) -> Sandbox:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()
