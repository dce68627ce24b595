"""Demo of mail intake: SEP letters arrive in the mailbox, their codes are filed and the right
people are told by e-mail; a newsletter and a second delivery of one letter change nothing.

The letters go through the sandbox's mailroom exactly as the SEP emulator sends them, so the
mailbox, beat's ``mail.fetch``, the worker and the SMTP sink are the real path.
"""

from __future__ import annotations

from email.header import Header
from email.mime.text import MIMEText
from email.utils import formatdate

from sqlalchemy import func, select

from models.db import session_scope
from models.mail import MailMessage, OutgoingLetter
from models.master import Employee
from models.outbox import Outbox
from models.sep_codes import SepConfirmationCode
from sandbox.demo import DemoContext, ScenarioFailed
from tasks.machinery.master_data import import_master_data

TECHNICAL = "sep@leasing.example.ru"
MASTER = {
    "organizations": [{"inn": "7702070139", "kpp": "770201001", "name": "ООО «Демо-Лизинг»"}],
    "employees": [
        {"id": "DM-1", "name": "Иванова Анна", "email": "anna@leasing.example.ru"},
        {"id": "DM-2", "name": "Петров Пётр", "email": "petr@leasing.example.ru"},
        {"id": "DM-3", "name": "Смирнова Ольга (ответственная за СЭП)", "email": "olga@leasing.example.ru"},
    ],
    "assets": [
        {"inventory_number": "ОС-0101", "name": "Scania R450", "vin": "XTA210990Y2765432",
         "epts": "164301000012345", "responsible": "DM-1", "organization_inn": "7702070139"},
        {"inventory_number": "ОС-0102", "name": "КамАЗ 54901", "vin": "XTC654321K1234567",
         "responsible": "DM-2", "organization_inn": "7702070139"},
        {"inventory_number": "ОС-0103", "name": "MAN TGX (ЭПТС не записан в 1С)", "vin": "WMA06XZZ9LP123456",
         "responsible": "DM-2", "organization_inn": "7702070139"},
    ],
    "sep_settings": {"organization_inn": "7702070139", "technical_email": TECHNICAL, "responsible": "DM-3"},
}  # fmt: skip
SUBJECTS = {
    "ownership": "СЭП: заявление № {n} на смену собственника",
    "lease": "СЭП: заявление № {n} на внесение сведений о лизинге",
    "entered": "СЭП: сведения о лизинге внесены, заявление № {n}",
}


def sep_letter(kind: str, number: str, lines: list[str], message_id: str) -> bytes:
    """A SEP notification in the DESIGN.md format, as the SEP emulator sends it."""
    letter = MIMEText("\n".join([f"Номер заявления: {number}", *lines]) + "\n", "plain", "utf-8")
    letter["From"] = "=?utf-8?b?0KHQrdCf?= <notify@sep.elpts.ru>"  # СЭП
    letter["To"] = TECHNICAL
    letter["Subject"] = Header(SUBJECTS[kind].format(n=number), "utf-8")  # type: ignore[assignment]
    letter["Date"] = formatdate(usegmt=True)
    letter["Message-ID"] = message_id
    return letter.as_bytes()


def letters() -> list[tuple[str, bytes]]:
    ownership = sep_letter(
        "ownership", "2026-000123",
        ["Номер ЭПТС: 164301000012345", "VIN: XTA210990Y2765432", "Код подтверждения: 482913",
         "Подтвердить до: 02.12.2026"],
        "<demo-1@sep.elpts.ru>",
    )  # fmt: skip
    newsletter = MIMEText("Скидки на шины до конца недели!", "plain", "utf-8")
    newsletter["From"] = "news@tyres.example.com"
    newsletter["Subject"] = Header("Рассылка: шины", "utf-8")  # type: ignore[assignment]
    return [
        ("ownership change, full VIN", ownership),
        ("lease application, masked VIN", sep_letter(
            "lease", "2026-000124",
            ["Номер ЭПТС: 164301000054321", "VIN: XTC*******1234567", "Код подтверждения: 551177",
             "Подтвердить до: 05.12.2026"],
            "<demo-2@sep.elpts.ru>",
        )),
        ("ownership change, ЭПТС only", sep_letter(
            "ownership", "2026-000125",
            ["Номер ЭПТС: 164301000077777", "Код подтверждения: 300400", "Подтвердить до: 07.12.2026"],
            "<demo-3@sep.elpts.ru>",
        )),
        ("ownership change, Cyrillic letters in the VIN", sep_letter(
            "ownership", "2026-000126",
            ["VIN: WМА06ХZZ9LР123456", "Код подтверждения: 909090", "Подтвердить до: 09.12.2026"],
            "<demo-4@sep.elpts.ru>",
        )),
        ("lease entered (no code)", sep_letter(
            "entered", "2026-000124", ["Номер ЭПТС: 164301000054321", "VIN: XTC*******1234567"],
            "<demo-5@sep.elpts.ru>",
        )),
        ("the first letter delivered a second time", ownership),
        ("a newsletter", newsletter.as_bytes()),
    ]  # fmt: skip


def _summary() -> tuple[list[MailMessage], list[SepConfirmationCode], list[OutgoingLetter], dict[str, str]]:
    with session_scope() as session:
        found = list(session.scalars(select(MailMessage).order_by(MailMessage.id)))
        filed = list(session.scalars(select(SepConfirmationCode).order_by(SepConfirmationCode.id)))
        sent = list(session.scalars(select(OutgoingLetter).order_by(OutgoingLetter.id)))
        names = {e.id: e.name for e in session.scalars(select(Employee))}
    return found, filed, sent, names


def run(ctx: DemoContext) -> None:
    with session_scope() as session:
        report = import_master_data(session, MASTER)
    if report.errors:
        raise ScenarioFailed(f"demo master data refused: {report.errors}")
    ctx.say("master data: 3 employees, 3 assets (ОС-0103 has no ЭПТС recorded), SEP-responsible DM-3")
    with session_scope() as session:
        before = session.scalar(select(func.count()).select_from(MailMessage)) or 0
    sink = ctx.sandbox.emulator("smtp")
    already_sent = len(sink.received())
    batch = letters()
    for _, raw in batch:
        ctx.sandbox.mailroom.send(TECHNICAL, raw)
    ctx.say(
        f"{len(batch)} letters delivered to the mailbox ({ctx.sandbox.emulator('mailbox').target().split('://')[0]})"
    )

    def settled() -> bool:
        found, _, sent, _ = _summary()
        mine = found[before:]
        return (
            len(mine) == len(batch)
            and all(m.status != "new" for m in mine)
            and all(le.status == "sent" for le in sent)
        )

    ctx.wait_for(settled, "every letter read and every notification sent", timeout=120)
    found, filed, sent, names = _summary()
    for (what, _), message in zip(batch, found[before:], strict=True):
        line = f"mail_messages {message.id} ({what}): {message.status}"
        if message.status == "processed":
            line += f", {message.kind} {message.application_number} -> {names[message.responsible_id or '']}"
            line += f" [{message.match_reason}]"
            vin = ((message.result or {}).get("sep") or {}).get("vin") or {}
            if vin.get("lookalikes"):
                mapped = ", ".join(
                    f"{m['cyrillic']}->{m['latin']} at {m['position']}" for m in vin["lookalikes"]
                )
                line += f" (Cyrillic look-alikes mapped: {mapped})"
        else:
            line += f" [{message.reason}]"
        ctx.say(line)
    for code in filed:
        ctx.say(
            f"code filed: application {code.application_number}, code {code.code}, until {code.valid_until}, "
            f"asset {code.asset_inventory_number or '—'}, responsible {code.responsible_id}"
        )
    received = sink.received()[already_sent:]
    for letter in received:
        ctx.say(f"SMTP sink got: to {', '.join(letter.rcpt_tos)} — «{letter.message()['subject']}»")
    if len(received) != 5 or len(filed) != 4:
        raise ScenarioFailed(f"expected 4 codes and 5 notifications, got {len(filed)} and {len(received)}")
    with session_scope() as session:
        waiting = session.scalar(
            select(func.count()).where(Outbox.task_name == "sep.request_application_data")
        )
    ctx.say(
        f"next step: {waiting} outbox rows for sep.request_application_data (the SEP exchange takes them)"
    )
