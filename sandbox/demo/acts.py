"""Demo of the acts flow: an electronic act sent through СБИС, signed, its deal closed; one refused;
an act as a Bitrix24 item moved by a manager and sent by e-mail; one left unsigned past 5 working
days, which gives the manager a Bitrix24 task."""

from __future__ import annotations

from datetime import timedelta
from typing import Any

import httpx

from sandbox.bitrix24 import Bitrix24Emulator
from sandbox.demo import DemoContext
from sandbox.sbis import SbisEmulator

STAGES = {
    "PREPARATION": "Подготовка акта",
    "UC_APPROVED": "Одобрено комиссией",
    "UC_ACT_SENT": "Акт направлен Заявителю",
    "WON": "Услуга оказана",
    "UC_REMARKS": "Услуга оказана, есть замечания",
}
MANAGER = 7
ITEM_TYPE = 1038  # the smart process «Акты» (OBMEN_ACTS_ITEM_ENTITY_TYPE_ID in the demo)
PDF = b"%PDF-1.4 demo act of completed work"


def _act(act_id: int) -> Any:
    from models.acts import Act
    from models.db import session_scope

    with session_scope() as session:
        row = session.get(Act, act_id)
        assert row is not None
        session.expunge(row)
        return row


def _draft(number: str, deal_id: int, act_type: str, send: bool) -> int:
    from models.db import session_scope
    from tasks.acts.register import ActIn, Upload, create_act

    data = ActIn(
        number=number,
        deal_id=deal_id,
        company_id=55,
        act_type=act_type,
        counterparty_inn="7728168971",
        counterparty_kpp="772801001",
        counterparty_name="ООО «Ромашка»",
        edo_operator=None,
        edo_id=None,
        products=["Продвижение продукции на рынке ОАЭ"],
        send=send,
    )
    with session_scope() as session:
        act, _ = create_act(session, data, Upload(f"{number}.pdf", "application/pdf", PDF))
        return act.id


def _stage(b24: Bitrix24Emulator, deal_id: int) -> str:
    with b24.portal.lock:
        return str(b24.portal.deals[deal_id]["STAGE_ID"])


def _electronic(
    ctx: DemoContext, b24: Bitrix24Emulator, sbis: SbisEmulator, number: str, deal_id: int, action: str
) -> None:
    from models.acts import SENT

    act_id = _draft(number, deal_id, "electronic_ul", send=True)
    act = ctx.wait_for(lambda: (a := _act(act_id)).status == SENT and a, f"act {number} to reach СБИС")
    doc = sbis.documents[act.sbis_document_id or ""]
    ctx.say(
        f"act {number} (electronic, deal {deal_id}): drafted with send=true (as POST /acts) → «Отправка в СБИС» → "
        f"СБИС document {doc.id[:8]}… «{doc.state[1]}» → «{act.status}»"
    )
    ctx.wait_for(lambda: _stage(b24, deal_id) == "UC_ACT_SENT", f"deal {deal_id} to follow")
    ctx.say(f"           deal {deal_id} → «{STAGES['UC_ACT_SENT']}»")
    httpx.post(
        f"{ctx.sandbox.url}/_sandbox/sbis/scenario", json={"document": doc.id, "action": action, "after_s": 1}
    ).raise_for_status()
    verb = "signs" if action == "sign" else "refuses to sign"
    final = ctx.wait_for(
        lambda: (a := _act(act_id)).status != SENT and a,
        f"acts.track to see the counterparty's answer to {number}",
    )
    target = "WON" if action == "sign" else "UC_REMARKS"
    ctx.wait_for(lambda: _stage(b24, deal_id) == target, f"deal {deal_id} to follow")
    ctx.say(
        f"           the counterparty {verb} in СБИС → acts.track reads СписокИзменений → «{final.status}»; "
        f"deal {deal_id} → «{STAGES[target]}»"
    )


def _form(ctx: DemoContext, b24: Bitrix24Emulator) -> None:
    """«Одобрено комиссией» → the letter with the form link → the answer → the manager is told."""
    from sqlalchemy import select

    from models.acts import ActFormRequest
    from models.db import session_scope
    from tasks.acts.forms import FormAnswer, answer_form

    b24.add_company(
        {"ID": 56, "TITLE": "ООО «Лютик»", "EMAIL": [{"VALUE": "buh@lutik.example", "VALUE_TYPE": "WORK"}]}
    )
    b24.add_deal(
        {
            "ID": 904,
            "TITLE": "Экспорт мёда",
            "STAGE_ID": "PREPARATION",
            "COMPANY_ID": 56,
            "ASSIGNED_BY_ID": MANAGER,
        }
    )
    httpx.post(
        f"{ctx.sandbox.url}/_sandbox/bitrix24/deals/904/update", json={"STAGE_ID": "UC_APPROVED"}
    ).raise_for_status()
    sink = ctx.sandbox.emulator("smtp")

    def letter() -> Any:
        return next((m for m in sink.received() if "Экспорт мёда" in str(m.message()["subject"])), None)

    sent = ctx.wait_for(letter, "the reconciliation to find the deal and the form letter to go", timeout=90)
    ctx.say(
        "deal 904 → «Одобрено комиссией» in Bitrix24 (no event handler here: acts.deals.reconcile finds "
        f"the change) → acts.form.send → mail.send: «{sent.message()['subject']}» to {', '.join(sent.rcpt_tos)}"
    )
    with session_scope() as session:
        token = session.scalars(select(ActFormRequest.token).where(ActFormRequest.deal_id == 904)).one()
        answer_form(
            session, token, FormAnswer(exchange_method="edo", edo_operator="СБИС", edo_id="2BE-LUTIK")
        )

    def told() -> Any:
        with b24.portal.lock:
            return next((n for n in b24.portal.notifications if "2BE-LUTIK" in n["message"]), None)

    notice = ctx.wait_for(told, "the manager's notification")
    ctx.say(
        f"           the counterparty answers the form (ЭДО, СБИС, 2BE-LUTIK) → user {notice['user_id']}: {notice['message']}"
    )


def _item_of(b24: Bitrix24Emulator, act_id: int) -> dict[str, Any] | None:
    with b24.portal.lock:
        found = b24.smart.items.get(ITEM_TYPE, {}).values()
        return next((dict(i) for i in found if i.get("xmlId") == f"obmen-act-{act_id}"), None)


def _items_and_email(ctx: DemoContext, b24: Bitrix24Emulator) -> None:
    """The act as a Bitrix24 item: a manager moves it there (a stranger's move put back), the scan comes
    from the item, the products from the deal's marked rows, and «sent» is a letter with the act."""
    import base64

    from models.acts import SENT, SIGNED_BY_US

    b24.add_company(
        {
            "ID": 57,
            "TITLE": "ООО «Василёк»",
            "EMAIL": [{"VALUE": "buh@vasilek.example", "VALUE_TYPE": "WORK"}],
        }
    )
    b24.add_deal(
        {
            "ID": 905,
            "TITLE": "Экспорт чая",
            "STAGE_ID": "NEW",
            "COMPANY_ID": 57,
            "ASSIGNED_BY_ID": MANAGER,
            "UF_CRM_OBMEN_ACT_PRODUCTS": ["21"],
        }
    )
    with b24.portal.lock:
        b24.smart.set_rows(
            905,
            [
                {"PRODUCT_ID": 21, "PRODUCT_NAME": "Выставка в Дубае", "PRICE": "50000.00"},
                {"PRODUCT_ID": 22, "PRODUCT_NAME": "Перевод каталога", "PRICE": "7000.00"},
            ],
        )
    from models.db import session_scope
    from tasks.acts.register import ActIn, Upload, create_act

    data = ActIn(number="П-905", deal_id=905, company_id=57, act_type="paper_ul", exchange_method="email")
    with session_scope() as session:
        act_id = create_act(session, data, Upload("П-905.pdf", "application/pdf", PDF))[0].id
    item = ctx.wait_for(lambda: _item_of(b24, act_id), "acts.item.sync to add the act's item")
    act = ctx.wait_for(
        lambda: (a := _act(act_id)).products and a, "acts.deal.sync to read the marked products"
    )
    ctx.wait_for(lambda: _stage(b24, 905) == "PREPARATION", "deal 905 to follow its draft")
    ctx.say(
        f"act П-905 (paper, by e-mail): Bitrix24 item {item['id']} of smart process {ITEM_TYPE}, bound to deal "
        f"{item['parentId2']} and company {item['companyId']}, stage {item['stageId']}; deal 905 → "
        f"«{STAGES['PREPARATION']}»; products from the deal's marked rows: {', '.join(act.products)}"
    )

    def manager(user: int, **fields: Any) -> None:
        with b24.portal.lock:
            b24.smart.manager_update(ITEM_TYPE, int(item["id"]), fields, user)

    signed_by_us = f"DT{ITEM_TYPE}_0:SIGNED_BY_US"
    manager(9, stageId=signed_by_us)
    back = ctx.wait_for(
        lambda: (i := _item_of(b24, act_id)) and i.get("ufCrmObmenActNote") and i,
        "acts.items.reconcile to find the move (no event handler here) and put it back",
        timeout=90,
    )
    ctx.say(
        f"           user 9 moves the item in Bitrix24 → put back to {back['stageId']}: {back['ufCrmObmenActNote']}"
    )
    scan = base64.b64encode(b"%PDF-1.4 demo act signed by us").decode("ascii")
    manager(MANAGER, stageId=signed_by_us, ufCrmObmenActFile=["scan.pdf", scan])
    ctx.wait_for(
        lambda: _act(act_id).status == SIGNED_BY_US, "the manager's move to reach the act", timeout=90
    )
    ctx.say(
        f"           user {MANAGER} (acts group) moves it with the scan in the item → act «{SIGNED_BY_US}»"
    )
    manager(MANAGER, stageId=f"DT{ITEM_TYPE}_0:SENT")
    sink = ctx.sandbox.emulator("smtp")

    def letter() -> Any:
        return next((m for m in sink.received() if "П-905" in str(m.message()["subject"])), None)

    sent = ctx.wait_for(letter, "acts.email.send and mail.send to send the act", timeout=90)
    ctx.wait_for(lambda: _act(act_id).status == SENT, "the act to be sent")
    names = [a.get_filename() for a in sent.message().iter_attachments()]
    ctx.say(
        f"           «Акт направлен заявителю» in Bitrix24 → «Отправка по e-mail» → letter «{sent.message()['subject']}» "
        f"to {', '.join(sent.rcpt_tos)} with {', '.join(names)} → «{SENT}»"
    )


def run(ctx: DemoContext) -> None:
    from sqlalchemy import select

    from models.acts import SENT, SIGNED_BY_US, ActDeadline
    from models.db import session_scope
    from tasks.acts import machine
    from tasks.acts.register import Upload, change_status, lock_act

    b24 = ctx.sandbox.emulator("bitrix24")
    sbis = ctx.sandbox.emulator("sbis")
    assert isinstance(b24, Bitrix24Emulator) and isinstance(sbis, SbisEmulator)
    b24.portal.stages.update(STAGES)
    b24.smart.types[ITEM_TYPE] = "Акты"
    b24.add_company({"ID": 55, "TITLE": "ООО «Ромашка»"})
    for deal_id in (901, 902, 903):
        b24.add_deal(
            {
                "ID": deal_id,
                "TITLE": f"Экспорт, сделка {deal_id}",
                "STAGE_ID": "PREPARATION",
                "COMPANY_ID": 55,
                "ASSIGNED_BY_ID": MANAGER,
            }
        )

    _electronic(ctx, b24, sbis, "Э-901", 901, "sign")
    _electronic(ctx, b24, sbis, "Э-902", 902, "refuse")

    _form(ctx, b24)

    _items_and_email(ctx, b24)

    # A paper act: signed by us, sent — ten days ago (the demo back-dates the sending; beat sweeps).
    act_id = _draft("П-903", 903, "paper_ul", send=False)
    with session_scope() as session:
        act = lock_act(session, act_id)
        change_status(
            session,
            act,
            SIGNED_BY_US,
            actor=machine.MANAGER,
            upload=Upload("scan.pdf", "application/pdf", PDF),
        )
        sent_at = act.updated_at - timedelta(days=10)
        change_status(session, act, SENT, actor=machine.MANAGER, now=sent_at)
    with session_scope() as session:
        due = session.scalars(select(ActDeadline.due_at).where(ActDeadline.act_id == act_id)).one()
    ctx.say(
        f"act П-903 (paper, deal 903): «Подписан с нашей стороны» (scan) → «Акт направлен заявителю» "
        f"on {sent_at:%d.%m.%Y} (back-dated 10 days); due {due:%d.%m.%Y %H:%M} UTC after 5 working days"
    )

    def task() -> dict[str, Any]:
        with b24.portal.lock:
            return next((t for t in b24.portal.tasks.values() if t["ufCrmTask"] == ["D_903"]), {})

    found = ctx.wait_for(task, "the deadline sweep and the task «Указать статус акта»")
    ctx.say(
        f"           acts.deadlines.sweep → Bitrix24 task {found['id']} «{found['title']}» for user "
        f"{found['responsibleId']}, due {found['deadline']}"
    )
    with session_scope() as session:
        fired = session.scalars(select(ActDeadline).where(ActDeadline.act_id == act_id)).one()
        ctx.say(f"           deadline {fired.subject_key}: {fired.status}; later sweeps fire nothing more")
