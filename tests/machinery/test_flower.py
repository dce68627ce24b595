"""Flower, started the documented ways (`obmen flower`, `celery -A workers.app flower`), refuses
unauthenticated access."""

from __future__ import annotations

import subprocess

import httpx

from tests.harness.processes import BIN, OBMEN, Process, env_with, free_port
from tests.harness.waiting import wait_for


def test_flower_answers_401_without_credentials_and_200_with_them() -> None:
    port = free_port()
    flower = Process(
        [OBMEN, "flower", f"--port={port}", "--address=127.0.0.1"],
        env={"OBMEN_FLOWER_BASIC_AUTH": "ops:s3cret"},
    )
    try:
        url = f"http://127.0.0.1:{port}"

        def up() -> httpx.Response | None:
            try:
                return httpx.get(url + "/", timeout=2)
            except httpx.TransportError:
                return None

        anonymous = wait_for(up, timeout=60, what="flower to listen")
        assert anonymous.status_code == 401
        assert httpx.get(url + "/api/workers", timeout=5).status_code == 401
        assert httpx.get(url + "/", auth=("ops", "wrong"), timeout=5).status_code == 401
        assert httpx.get(url + "/", auth=("ops", "s3cret"), timeout=5).status_code == 200
        # docker-compose's healthcheck: Flower's own probe answers without credentials, says only OK.
        probe = httpx.get(url + "/healthcheck", timeout=5)
        assert (probe.status_code, probe.text) == (200, "OK")
    finally:
        flower.stop()


def test_flower_without_any_auth_refuses_to_start() -> None:
    env = env_with()
    for key in ("OBMEN_FLOWER_BASIC_AUTH", "FLOWER_BASIC_AUTH", "FLOWER_AUTH"):
        env.pop(key, None)
    result = subprocess.run(
        [str(BIN / "celery"), "-A", "workers.app", "flower", f"--port={free_port()}"],
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert result.returncode != 0
    assert "refuses to start Flower without authentication" in result.stderr
