"""Demo of seed 004: the site asks for an invoice, 1C makes it, obmen keeps it with its PDF; the
order page's one-time link works once; 1C corrects the invoice (version 2); the bank pays naming it
the way payers do; the customer's list shows it paid."""

from __future__ import annotations

from typing import Any

import httpx

from config.settings import get_settings
from sandbox.demo import DemoContext, ScenarioFailed
from sandbox.demo.payments import DemoBank, demo_gateway
from sandbox.onec import OnecEmulator

CUSTOMER = "7707083893"
ORDER = "ЗК-2026-0042"


def _site_token() -> str:
    for token in get_settings().tokens():
        if token.grants("invoices"):
            return token.token.get_secret_value()
    raise ScenarioFailed("OBMEN_API_TOKENS has no token with the invoices scope")


def run(ctx: DemoContext) -> None:
    onec = ctx.sandbox.emulator("onec")
    assert isinstance(onec, OnecEmulator)
    onec.knobs.update({"extra": {"call_ms": 50}})
    server, url = demo_gateway()
    try:
        site = httpx.Client(base_url=url, headers={"Authorization": f"Bearer {_site_token()}"}, timeout=30)
        _scenario(ctx, site, onec, url)
    finally:
        server.should_exit = True


def _scenario(ctx: DemoContext, site: httpx.Client, onec: OnecEmulator, url: str) -> None:
    body = {"order_id": ORDER, "amount": "1250000.00", "customer_inn": CUSTOMER, "source": "site"}
    asked = site.post("/invoices/requests", json=body)
    ctx.say(
        f"site: POST /invoices/requests {ORDER}, 1 250 000.00 ₽ -> {asked.status_code} {asked.json()['status']}"
    )
    request_id = asked.json()["id"]
    state: dict[str, Any] = ctx.wait_for(
        lambda: (r := site.get(f"/invoices/requests/{request_id}").json())["status"] == "done" and r,
        "1C's invoice in the register",
    )
    invoice = state["invoice"]
    ctx.say(
        f"invoices.ask_onec: 1C made invoice № {invoice['number']} (id {invoice['onec_id'][:8]}…), "
        f"PDF stored, version {invoice['version']}, {invoice['payment_label']}"
    )
    calls = onec.stats()["calls"]
    again = site.post("/invoices/requests", json=body)
    ctx.say(
        f"site: the same request again -> {again.status_code}, from the register ({onec.stats()['calls'] - calls} calls to 1C)"
    )

    link = site.post(f"/invoices/{invoice['id']}/links").json()["url"]
    first, second = httpx.get(link), httpx.get(link)
    ctx.say(
        f"order page: one-time link -> {first.status_code} {first.headers['content-type']} "
        f"({len(first.content)} bytes); used twice -> {second.status_code}"
    )

    httpx.post(
        ctx.sandbox.url + "/_sandbox/onec/scenario", json={"invoice": invoice["onec_id"], "action": "correct"}
    ).raise_for_status()
    site.post("/invoices/changes").raise_for_status()
    detail: dict[str, Any] = ctx.wait_for(
        lambda: (d := site.get(f"/invoices/{invoice['id']}").json())["version"] == 2 and d,
        "the correction as version 2",
    )
    versions = ", ".join(f"v{v['version']} {v['file_sha256'][:8]}…" for v in detail["versions"])
    ctx.say(f"1C corrected the wording; push -> invoices.poll_changes -> invoices.apply_update: {versions}")

    short = invoice["number"].split("-")[-1].lstrip("0")
    purpose = f"Оплата по сч. {short} от {invoice['issued_at'][8:10]}.{invoice['issued_at'][5:7]}.{invoice['issued_at'][:4]} за автомобиль, в т.ч. НДС"
    bank = DemoBank(url, get_settings().bank_secrets()[0].decode())
    paid = bank.pay(
        {
            "transaction_id": "PP-2026-7781",
            "inn": CUSTOMER,
            "amount": "1250000.00",
            "paid_at": "2026-12-02T11:00:00+03:00",
            "purpose": purpose,
            "payer_name": "ООО «Покупатель»",
        }
    )
    ctx.say(f"bank: POST /bank/v1/payments «{purpose}» -> {paid.status_code}")
    ctx.wait_for(
        lambda: site.get(f"/invoices/{invoice['id']}").json()["payment_status"] == "paid",
        "the invoice paid by the bank payment",
    )
    listed = site.get("/invoices", params={"customer_inn": CUSTOMER}).json()["invoices"]
    for row in listed:
        ctx.say(
            f"customer's list: № {row['number']} {row['order_id']} {row['amount']} ₽ — {row['payment_label']}, "
            f"paid {row['paid_amount']}, version {row['version']}"
        )
