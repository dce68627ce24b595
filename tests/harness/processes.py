"""Real processes for tests: ``obmen`` commands, Celery workers, throwaway Redis and Postgres servers."""

from __future__ import annotations

import atexit
import contextlib
import os
import shutil
import signal
import subprocess
import sys
import tempfile
import threading
from collections.abc import Mapping
from pathlib import Path

from tests.harness.waiting import wait_for

BIN = Path(sys.executable).parent
OBMEN = str(BIN / "obmen")


def env_with(overrides: Mapping[str, str] | None = None) -> dict[str, str]:
    env = dict(os.environ)
    env.update(overrides or {})
    return env


def obmen(
    *args: str, env: Mapping[str, str] | None = None, timeout: float = 120
) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [OBMEN, *args], env=env_with(env), capture_output=True, text=True, timeout=timeout, check=False
    )


_LIVE: set[Process] = set()


@atexit.register
def _kill_leftovers() -> None:
    """A process a failed test or benchmark forgot must not keep consuming a later session's queues."""
    for process in list(_LIVE):
        process.kill()


class Process:
    """A child process whose combined output is collected, for waiting on log lines."""

    def __init__(self, argv: list[str], env: Mapping[str, str] | None = None, cwd: str | None = None) -> None:
        self.argv = argv
        # A worker's OBMEN_WORKER_READY_FILE (``start_worker``).
        self.ready_file: Path | None = None
        self.output: list[str] = []
        self._lock = threading.Lock()
        self.proc = subprocess.Popen(
            argv,
            env=env_with(env),
            cwd=cwd,
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            text=True,
            start_new_session=True,
        )
        self._reader = threading.Thread(target=self._read, daemon=True)
        self._reader.start()
        _LIVE.add(self)

    def _read(self) -> None:
        assert self.proc.stdout is not None
        for line in self.proc.stdout:
            with self._lock:
                self.output.append(line)

    def text(self) -> str:
        with self._lock:
            return "".join(self.output)

    def wait_for_output(self, needle: str, timeout: float = 30) -> None:
        def seen() -> bool:
            if self.proc.poll() is not None and needle not in self.text():
                raise AssertionError(
                    f"{self.argv[:3]} exited with {self.proc.returncode}:\n{self.text()[-3000:]}"
                )
            return needle in self.text()

        wait_for(seen, timeout=timeout, what=f"{needle!r} in the output of {self.argv[:3]}")

    def kill(self, sig: int = signal.SIGKILL) -> None:
        """Signal the whole process group (a prefork worker is a parent and its children)."""
        if self.proc.poll() is None:
            os.killpg(self.proc.pid, sig)
            self.proc.wait(timeout=30)
        _LIVE.discard(self)

    def stop(self) -> None:
        if self.proc.poll() is None:
            os.killpg(self.proc.pid, signal.SIGTERM)
            try:
                self.proc.wait(timeout=20)
            except subprocess.TimeoutExpired:
                self.kill()
        _LIVE.discard(self)


def start_worker(
    env: Mapping[str, str] | None = None,
    concurrency: int = 2,
    pool: str = "prefork",
    queues: str | None = None,
) -> Process:
    argv = [OBMEN, "worker", "-c", str(concurrency), "-P", pool, "--without-mingle", "--without-gossip"]
    if queues:
        argv += ["-Q", queues]
    ready = Path(tempfile.mkdtemp(prefix="obmen-worker-")) / "ready"
    worker = Process(
        argv, env={"OBMEN_LOG_JSON": "false", **(env or {}), "OBMEN_WORKER_READY_FILE": str(ready)}
    )
    worker.ready_file = ready

    def is_ready() -> bool:
        if worker.proc.poll() is not None:
            raise AssertionError(f"worker exited with {worker.proc.returncode}:\n{worker.text()[-3000:]}")
        return ready.exists()

    try:
        wait_for(is_ready, timeout=60, what="the worker to be ready")
    except BaseException:
        worker.kill()
        raise
    return worker


def free_port() -> int:
    import socket

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


class RedisServer:
    """A redis-server of the test's own, on its own port, that the test may stop and start."""

    def __init__(self) -> None:
        self.port = free_port()
        self.dir = tempfile.mkdtemp(prefix="obmen-redis-")
        self.proc: subprocess.Popen[bytes] | None = None

    @property
    def url(self) -> str:
        return f"redis://127.0.0.1:{self.port}/0"

    def start(self) -> None:
        import redis

        self.proc = subprocess.Popen(
            [
                shutil.which("redis-server") or "redis-server",
                "--port",
                str(self.port),
                "--bind",
                "127.0.0.1",
                "--save",
                "",
                "--appendonly",
                "no",
                "--dir",
                self.dir,
            ],
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        client = redis.Redis(port=self.port, socket_connect_timeout=0.5)

        def up() -> bool:
            try:
                return bool(client.ping())
            except redis.RedisError:
                return False

        wait_for(up, timeout=15, what=f"redis on port {self.port}")

    def stop(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            self.proc.send_signal(signal.SIGKILL)
            self.proc.wait(timeout=10)

    def close(self) -> None:
        self.stop()
        shutil.rmtree(self.dir, ignore_errors=True)


class PostgresServer:
    """A throwaway Postgres cluster of the test's own (initdb + pg_ctl), that the test may stop."""

    def __init__(self) -> None:
        versions = sorted(Path("/usr/lib/postgresql").glob("*/bin/pg_ctl"))
        if not versions:
            raise RuntimeError(
                "no PostgreSQL server binaries under /usr/lib/postgresql (Debian package postgresql)"
            )
        self.bin = versions[-1].parent
        self.port = free_port()
        self.dir = Path(tempfile.mkdtemp(prefix="obmen-pg-"))
        self.data = self.dir / "data"
        self._as_postgres = os.geteuid() == 0
        if self._as_postgres:
            shutil.chown(self.dir, "postgres", "postgres")
        self._run(
            str(self.bin / "initdb"), "-D", str(self.data), "-A", "trust", "-U", "postgres", "--no-sync"
        )

    def _run(self, *argv: str) -> None:
        cmd = list(argv)
        if self._as_postgres:
            cmd = ["runuser", "-u", "postgres", "--", *cmd]
        subprocess.run(cmd, check=True, capture_output=True, cwd=self.dir, timeout=120)

    @property
    def url(self) -> str:
        return f"postgresql+psycopg://postgres@127.0.0.1:{self.port}/postgres"

    def start(self) -> None:
        opts = f"-p {self.port} -k {self.dir} -c listen_addresses=127.0.0.1 -c fsync=off"
        self._run(
            str(self.bin / "pg_ctl"),
            "-D",
            str(self.data),
            "-o",
            opts,
            "-l",
            str(self.dir / "log"),
            "-w",
            "start",
        )

    def stop(self) -> None:
        self._run(str(self.bin / "pg_ctl"), "-D", str(self.data), "-m", "immediate", "-w", "stop")

    def close(self) -> None:
        with contextlib.suppress(subprocess.CalledProcessError):
            self.stop()
        shutil.rmtree(self.dir, ignore_errors=True)
