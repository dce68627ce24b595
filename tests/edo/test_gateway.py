"""The EDO API over real HTTP: the cabinet submits a signed package, a real worker sends it through the
emulator, the company routes it, answers through the API, and the cabinet downloads the stamped print
form; every bad upload is refused with its reason and nothing is taken in."""

from __future__ import annotations

from collections.abc import Iterator

import httpx
import pytest
from sqlalchemy import func, select

from models.db import session_scope
from models.edo import ROUTED, STAMPED, EdoPackage
from sandbox.server import Sandbox
from tasks.edo.incoming import fetch
from tasks.machinery.outbox import set_dispatch_mode
from tests.edo.flow import (
    COMPANY_SIGNER,
    CUSTOMER,
    CUSTOMER_INN,
    CUSTOMER_NAME,
    PDF,
    TP,
    edo_settings,
    emulator,
    master_data,
    package,
)
from tests.harness.gateway import GatewayThread
from tests.harness.processes import start_worker
from tests.harness.waiting import wait_for

CABINET = {"Authorization": "Bearer test-cabinet-token"}
WRITE = {"Authorization": "Bearer test-write-token"}
READ = {"Authorization": "Bearer test-read-token"}
TOKENS = "read+write:test-write-token,read:test-read-token,cabinet:test-cabinet-token"


@pytest.fixture
def env(monkeypatch: pytest.MonkeyPatch, _sandbox: Sandbox, obmen_app: object) -> Iterator[dict[str, str]]:
    set_dispatch_mode("inline")
    with edo_settings(
        monkeypatch,
        _sandbox,
        OBMEN_API_TOKENS=TOKENS,
        OBMEN_SYNERDOCS_MAX_FILE_BYTES="20000",
        OBMEN_EDO_MAX_UPLOAD_BYTES="50000",
    ) as settings:
        master_data()
        yield settings


def form(key: str, *, inn: str = CUSTOMER_INN, kind: str = TP) -> dict[str, str]:
    return {
        "package_key": key,
        "customer_inn": inn,
        "customer_name": CUSTOMER_NAME,
        "customer_email": "ivanov@example.ru",
        "title": "Заявка на ТП",
        "document_type": kind,
    }


def files(content: bytes = PDF, signature: bytes | None = None) -> list[tuple[str, tuple[str, bytes, str]]]:
    return [
        ("document", ("zayavka.pdf", content, "application/pdf")),
        (
            "signature",
            ("zayavka.pdf.sig", signature or CUSTOMER.sign(content), "application/pkcs7-signature"),
        ),
    ]


def packages() -> int:
    with session_scope() as session:
        return int(session.scalar(select(func.count()).select_from(EdoPackage)) or 0)


def test_the_cabinet_submits_the_company_answers_and_the_cabinet_downloads_the_stamped_form(
    _sandbox: Sandbox, env: dict[str, str]
) -> None:
    worker = start_worker(env=env, queues="edo", concurrency=2)
    try:
        with GatewayThread() as gw:
            created = httpx.post(
                gw.url + "/edo/packages", data=form("cab-http-1"), files=files(), headers=CABINET
            )
            assert created.status_code == 201, created.text
            package_id = created.json()["id"]
            again = httpx.post(
                gw.url + "/edo/packages", data=form("cab-http-1"), files=files(), headers=CABINET
            )
            assert (again.status_code, again.json()["id"]) == (200, package_id)

            wait_for(lambda: package(package_id).message_id, timeout=60, what="the package sent")
            fetch()  # what beat runs every OBMEN_EDO_FETCH_INTERVAL_S
            assert package(package_id).status == ROUTED
            incoming = httpx.get(gw.url + "/edo/incoming", params={"status": "routed"}, headers=READ).json()
            assert [d["package_id"] for d in incoming] == [package_id]
            assert httpx.get(gw.url + "/edo/overdue", headers=READ).json() == []

            answer_content = PDF + b" TU"
            answered = httpx.post(
                gw.url + "/edo/answers",
                data={
                    "package_key": "ans-http-1",
                    "answers_document_id": str(incoming[0]["document_id"]),
                    "sender_login": "sidorova",
                    "title": "Технические условия",
                },
                files=[
                    ("document", ("tu.pdf", answer_content, "application/pdf")),
                    (
                        "signature",
                        ("tu.pdf.sig", COMPANY_SIGNER.sign(answer_content), "application/octet-stream"),
                    ),
                ],
                headers=WRITE,
            )
            assert answered.status_code == 201, answered.text
            answer_id = answered.json()["id"]
            wait_for(lambda: package(answer_id).status == STAMPED, timeout=60, what="the print form kept")

            mine = httpx.get(gw.url + f"/edo/customers/{CUSTOMER_INN}/packages", headers=CABINET).json()
            assert [p["id"] for p in mine] == [answer_id, package_id]
            [document] = mine[0]["documents"]
            assert [v["version"] for v in document["versions"]] == [1, 2]
            pdf = httpx.get(gw.url + f"/edo/documents/{document['id']}/versions/2", headers=CABINET)
            assert pdf.status_code == 200 and pdf.content.startswith(b"%PDF-")
            xml = httpx.get(gw.url + f"/edo/packages/{answer_id}/xml", headers=READ).json()
            assert {"SendMessage", "PrintDocument"} <= {e["operation"] for e in xml}
    finally:
        worker.stop()
    assert emulator(_sandbox).world.send_calls == 2


def test_bad_uploads_are_refused_with_their_reason_and_nothing_is_taken_in(
    _sandbox: Sandbox, env: dict[str, str]
) -> None:
    set_dispatch_mode("off")
    try:
        with GatewayThread() as gw:
            url = gw.url + "/edo/packages"

            def post(
                data: dict[str, str], parts: list[tuple[str, tuple[str, bytes, str]]], **kw: object
            ) -> httpx.Response:
                return httpx.post(url, data=data, files=parts, headers=kw.get("headers", CABINET))  # type: ignore[arg-type]

            assert post(form("k1"), files(), headers=READ).status_code == 403  # not the cabinet's token
            assert post(form("k1"), files(), headers={}).status_code == 401
            over = post(form("k2"), files(content=PDF * 15))  # a file over 20,000 bytes
            assert over.status_code == 413 and "documents[0].document" in over.text
            bad_inn = post(form("k3", inn="500100732258"), files())
            assert bad_inn.status_code == 422 and "ИНН" in bad_inn.text
            unknown = post(form("k4", kind="poem"), files())
            assert unknown.status_code == 422 and "unknown type 'poem'" in unknown.text
            missing_signature = httpx.post(url, data=form("k5"), files=files()[:1], headers=CABINET)
            assert missing_signature.status_code == 422
            nul = post({**form("k8"), "title": "a\x00b"}, files())  # the edge types refuse it
            assert nul.status_code == 422 and "NUL" in nul.text
            assert packages() == 0

            # A non-CMS signature is taken in, then refused by the check by name (tests/edo/test_flow.py).
            refused = post(form("k6"), files(signature=b"not a CMS"))
            assert refused.status_code == 201
            huge = post(form("k7"), files(content=PDF * 40))  # the request over 50,000 bytes
            assert huge.status_code == 413

            stranger = httpx.post(
                gw.url + "/edo/answers",
                data={
                    "package_key": "a1",
                    "answers_document_id": "1",
                    "sender_login": "stranger",
                    "title": "Ответ",
                },
                files=[
                    ("document", ("a.pdf", PDF, "application/pdf")),
                    ("signature", ("a.sig", COMPANY_SIGNER.sign(PDF), "application/octet-stream")),
                ],
                headers=WRITE,
            )
            assert stranger.status_code == 403 and "may not send" in stranger.text
    finally:
        set_dispatch_mode("inline")
