"""The sandbox harness: prefixes, request log, fault knobs, compressed time — over real HTTP."""

from __future__ import annotations

from collections.abc import Iterable, Iterator

import httpx
import pytest
from starlette.requests import Request
from starlette.responses import JSONResponse, PlainTextResponse
from starlette.routing import BaseRoute, Route

from sandbox.harness import Emulator, SandboxClock
from sandbox.server import Sandbox


class Echo(Emulator):
    system = "echo"
    prefix = "/echo"

    def routes(self) -> Iterable[BaseRoute]:
        async def root(request: Request) -> PlainTextResponse:
            return PlainTextResponse(f"root {request.url.query}")

        async def say(request: Request) -> JSONResponse:
            return JSONResponse({"said": (await request.body()).decode(), "at": self.clock.now().isoformat()})

        return [Route("/", root, methods=["GET"]), Route("/say", say, methods=["POST"])]

    def client_settings(self, base_url: str) -> dict[str, str]:
        return {"OBMEN_ECHO_URL": base_url + self.prefix}


@pytest.fixture
def box() -> Iterator[Sandbox]:
    clock = SandboxClock()
    with Sandbox([Echo(clock)]) as sandbox:
        yield sandbox


def test_emulator_is_served_under_its_prefix_including_the_bare_one(box: Sandbox) -> None:
    assert httpx.get(box.url + "/echo?wsdl").text == "root wsdl"
    assert httpx.post(box.url + "/echo/say", content="привет").json()["said"] == "привет"
    assert box.client_settings() == {"OBMEN_ECHO_URL": box.url + "/echo"}


def test_request_log_is_readable_and_clearable(box: Sandbox) -> None:
    httpx.post(box.url + "/echo/say", content="one")
    log = httpx.get(box.url + "/_sandbox/echo/requests").json()
    assert [(e["method"], e["path"], e["body"], e["status"]) for e in log] == [
        ("POST", "/echo/say", "one", 200)
    ]
    assert httpx.get(box.url + f"/_sandbox/echo/requests?since={log[-1]['seq']}").json() == []
    httpx.delete(box.url + "/_sandbox/echo/requests")
    assert httpx.get(box.url + "/_sandbox/echo/requests").json() == []


def test_fault_knobs(box: Sandbox) -> None:
    assert (
        httpx.put(box.url + "/_sandbox/echo/knobs", json={"fault_next": 2, "fault": "html_500"}).status_code
        == 200
    )
    first, second, third = (httpx.post(box.url + "/echo/say", content="x") for _ in range(3))
    assert (first.status_code, second.status_code, third.status_code) == (500, 500, 200)
    assert "<html>" in first.text
    assert httpx.put(box.url + "/_sandbox/echo/knobs", json={"no_such": 1}).status_code == 400
    log = box.emulator("echo").log.since()
    assert [e.fault for e in log] == ["html_500", "html_500", None]


def test_latency_knob_delays_answers(box: Sandbox) -> None:
    httpx.put(box.url + "/_sandbox/echo/knobs", json={"latency_ms": 300})
    assert httpx.post(box.url + "/echo/say", content="x").elapsed.total_seconds() >= 0.3


def test_clock_can_be_advanced_and_sped_up(box: Sandbox) -> None:
    before = box.clock.now()
    moved = httpx.post(box.url + "/_sandbox/clock", json={"advance_s": 3 * 86400, "scale": 60}).json()
    assert moved["scale"] == 60
    assert (box.clock.now() - before).total_seconds() >= 3 * 86400
    assert box.clock.seconds(60) == 1.0
