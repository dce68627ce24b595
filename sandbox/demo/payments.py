"""Demo of seed 001: a bank asks a debt and pays, the payment is posted, the deal goes to «Оплачено»,
and a subscriber who does not pay is escalated to a disconnection task."""

from __future__ import annotations

import hashlib
import hmac
import json
import threading
import time
from typing import Any

import httpx
import uvicorn
from celery import current_app
from sqlalchemy import select

from config.settings import get_settings
from models.db import session_scope
from models.payments import Accrual, BillingDeadline, DealPaidMark, Payment
from sandbox.bitrix24 import Bitrix24Emulator
from sandbox.demo import DemoContext
from sandbox.server import free_port
from tasks.machinery.master_data import import_master_data

PAYER = "500100732259"
DEBTOR = "7707083893"


class DemoBank:
    """The bank's application: it signs with its own code, as a real bank would."""

    def __init__(self, url: str, secret: str) -> None:
        self.http = httpx.Client(base_url=url, timeout=30)
        self.secret = secret.encode()

    def _headers(self, method: str, path: str, body: bytes) -> dict[str, str]:
        ts = str(int(time.time()))
        message = f"{ts}\n{method}\n{path}\n".encode() + body
        sig = hmac.new(self.secret, message, hashlib.sha256).hexdigest()
        return {
            "X-Obmen-Timestamp": ts,
            "X-Obmen-Signature": f"sha256={sig}",
            "Content-Type": "application/json",
        }

    def debt(self, inn: str) -> httpx.Response:
        path = f"/bank/v1/customers/{inn}"
        return self.http.get(path, headers=self._headers("GET", path, b""))

    def pay(self, payment: dict[str, Any]) -> httpx.Response:
        body = json.dumps(payment, ensure_ascii=False).encode()
        return self.http.post(
            "/bank/v1/payments", content=body, headers=self._headers("POST", "/bank/v1/payments", body)
        )


def demo_gateway() -> tuple[uvicorn.Server, str]:
    from workers.gateway.app import create_app

    port = free_port()
    server = uvicorn.Server(
        uvicorn.Config(create_app(), host="127.0.0.1", port=port, log_level="warning", lifespan="off")
    )
    threading.Thread(target=server.run, name="demo-gateway", daemon=True).start()
    deadline = time.monotonic() + 10
    while not server.started and time.monotonic() < deadline:
        time.sleep(0.02)
    return server, f"http://127.0.0.1:{port}"


def run(ctx: DemoContext) -> None:
    portal = ctx.sandbox.emulator("bitrix24")
    assert isinstance(portal, Bitrix24Emulator)
    deals = [
        int(portal.add_deal({"TITLE": title})["ID"])
        for title in ("ИП Сидоров: связь", "ООО «Должник»: связь")
    ]
    with session_scope() as session:
        report = import_master_data(
            session,
            {
                "employees": [{"id": "E7", "name": "Иванова Анна", "bitrix24_user_id": 11}],
                "tariffs": [{"code": "BASE", "name": "Базовый", "monthly_fee": "1500.00"}],
                "subscribers": [
                    {
                        "inn": PAYER,
                        "name": "ИП Сидоров",
                        "phone": "+79990000001",
                        "tariff": "BASE",
                        "contract": "Д-1",
                        "bitrix24_deal_id": deals[0],
                        "responsible": "E7",
                    },
                    {
                        "inn": DEBTOR,
                        "name": "ООО «Должник»",
                        "phone": "+79990000002",
                        "tariff": "BASE",
                        "contract": "Д-2",
                        "bitrix24_deal_id": deals[1],
                        "responsible": "E7",
                    },
                ],
            },
        )
    ctx.say(f"master data imported: {report.inserted}")

    current_app.send_task("billing.accrue", kwargs={"period": "2026-11"})
    ctx.wait_for(
        lambda: _accrual_statuses() == ["unpaid", "unpaid"], "the accruals and their reminder processes"
    )
    workflows = portal.portal.workflows
    ctx.say(
        f"billing.accrue 2026-11: 2 accruals of 1500.00 ₽; reminder processes started in Bitrix24 "
        f"({', '.join(w['document_id'][2] for w in workflows)}), deals in «{portal.portal.stages[portal.portal.deals[deals[0]]['STAGE_ID']]}»"
    )

    server, url = demo_gateway()
    try:
        bank = DemoBank(url, get_settings().bank_secrets()[0].decode())
        debt = bank.debt(PAYER)
        ctx.say(f"bank: GET /bank/v1/customers/{PAYER} -> {debt.status_code} {debt.json()}")
        payment = {
            "transaction_id": "SBP-2026-000123",
            "inn": PAYER,
            "amount": debt.json()["debt"],
            "paid_at": "2026-11-20T10:15:00+03:00",
            "purpose": "Оплата услуг связи за ноябрь 2026, договор Д-1",
            "payer_name": "Сидоров Иван Петрович",
        }
        first = bank.pay(payment)
        again = bank.pay(payment)
        ctx.say(
            f"bank: POST /bank/v1/payments -> {first.status_code} {first.json()}; the same again -> {again.status_code}"
        )
        posted = ctx.wait_for(lambda: _payment("SBP-2026-000123"), "the payment to be posted")
        ctx.say(
            f"payments.post: payment {posted.id} {posted.status}, allocated to the November accrual, remainder {posted.remainder}"
        )
        ctx.wait_for(lambda: _mark_done(), "crm.mark_deal_paid")
        deal = portal.portal.deals[deals[0]]
        ctx.say(
            f"crm.mark_deal_paid: deal {deals[0]} now in «{portal.portal.stages[deal['STAGE_ID']]}» ({deal['STAGE_ID']}); payment control stops"
        )
        ctx.say(f"bank: GET debt again -> {bank.debt(PAYER).json()['debt']}")
    finally:
        server.should_exit = True

    ctx.say(f"{DEBTOR} does not pay: deadlines are rows, billing.escalate (beat) fires them when due")
    ctx.wait_for(
        lambda: any(t["title"] == "Отключить абонента" for t in portal.portal.tasks.values()),
        "the disconnection task",
        timeout=90,
    )
    with session_scope() as session:
        fired = session.execute(
            select(BillingDeadline.kind, BillingDeadline.status).order_by(BillingDeadline.id)
        ).all()
    ctx.say(f"escalation: {[f'{k}: {s}' for k, s in fired]}")
    task = next(t for t in portal.portal.tasks.values() if t["title"] == "Отключить абонента")
    ctx.say(
        f"Bitrix24 task #{task['id']} «{task['title']}» for user {task['responsibleId']} on {task['ufCrmTask']}: {task['description']}"
    )


def _accrual_statuses() -> list[str]:
    with session_scope() as session:
        return list(session.scalars(select(Accrual.status).order_by(Accrual.id)))


def _payment(transaction_id: str) -> Payment | None:
    with session_scope() as session:
        row = session.scalars(
            select(Payment).where(Payment.transaction_id == transaction_id, Payment.status == "posted")
        ).first()
        if row is not None:
            session.expunge(row)
        return row


def _mark_done() -> bool:
    with session_scope() as session:
        return session.scalar(select(DealPaidMark.status)) == "done"
