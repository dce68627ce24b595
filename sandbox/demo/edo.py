"""Demo of the EDO flow (seed 002): a customer's application for grid connection signed in the cabinet,
its box registered at the operator, the package received by the company and routed, the answer
signed and sent with the operator's stamped print form as version 2, within its deadline, and the
customer signing it back."""

from __future__ import annotations

from typing import Any

from sandbox.demo import DemoContext
from sandbox.synerdocs.emulator import COMPANY, SynerdocsEmulator
from sandbox.synerdocs.signatures import sign_detached

CUSTOMER_INN = "500100732259"
CUSTOMER = "ИП Иванов Иван Иванович"
APPLICATION = b"%PDF-1.4 demo: " + "Заявка на технологическое присоединение, 15 кВт".encode()
SCHEME = b"%PDF-1.4 demo: " + "Схема расположения энергопринимающих устройств".encode()
ANSWER = b"%PDF-1.4 demo: " + "Технические условия на технологическое присоединение".encode()


def _package(package_id: int) -> Any:
    from models.db import session_scope
    from models.edo import EdoPackage

    with session_scope() as session:
        row = session.get(EdoPackage, package_id)
        assert row is not None
        session.expunge(row)
        return row


def _detail(package_id: int) -> Any:
    from models.db import session_scope
    from tasks.edo.queries import package

    with session_scope() as session:
        return package(session, package_id)


def _stored(files: list[tuple[str, bytes]], signer: str, inn: str, kind: str) -> list[Any]:
    from models.db import session_scope
    from models.edo import store_file
    from tasks.edo.register import DocumentIn

    with session_scope() as session:
        return [
            DocumentIn(
                sha256=store_file(session, content),
                file_name=f"{title}.pdf",
                title=title,
                document_type=kind,
                signature_sha256=store_file(session, sign_detached(signer, inn, content)),
            )
            for title, content in files
        ]


def _setup() -> None:
    from models.db import session_scope
    from models.master import Employee
    from tasks.edo import register

    with session_scope() as session:
        for employee_id, name, email in (
            ("voek-tp", "Смирнов Олег (технологическое присоединение)", "smirnov@voek.example"),
            ("voek-office", "Канцелярия", "office@voek.example"),
        ):
            if session.get(Employee, employee_id) is None:
                session.add(Employee(id=employee_id, name=name, email=email))
        session.flush()
        register.set_rule(session, "tp_application", "Заявка на ТП", "voek-tp", 15)
        register.set_rule(session, register.OTHER_TYPE, "Прочее", "voek-office", 30)
        register.add_sender(session, "smirnov", "voek-tp")


def run(ctx: DemoContext) -> None:
    from models.db import session_scope
    from models.edo import ROUTED, SIGNED, STAMPED
    from tasks.edo.entries import send_answer, submit_package
    from tasks.edo.register import AnswerIn, CustomerIn, PackageIn
    from tasks.machinery.workdays import MOSCOW

    operator = ctx.sandbox.emulator("synerdocs")
    assert isinstance(operator, SynerdocsEmulator)
    _setup()
    documents = _stored(
        [("Заявка на ТП", APPLICATION), ("Схема", SCHEME)],
        "Иванов Иван Иванович",
        CUSTOMER_INN,
        "tp_application",
    )
    with session_scope() as session:
        package_id = submit_package.plain(
            session,
            PackageIn(
                package_key="demo-cabinet-1",
                customer=CustomerIn(inn=CUSTOMER_INN, name=CUSTOMER, email="ivanov@example.ru"),
                documents=documents,
            ),
        )
    ctx.say(f"cabinet: {CUSTOMER} signed 2 documents (detached CMS) → package demo-cabinet-1")
    sent = ctx.wait_for(
        lambda: (p := _package(package_id)).status == ROUTED and p, "the company to route the package"
    )
    box = operator.world.organization_by_box(sent.from_box or "")
    ctx.say(
        f"Synerdocs: no box for ИНН {CUSTOMER_INN} → registered ({box.status if box else '?'}, {sent.from_box[:8]}…) "
        f"→ signatures checked → SendMessage at {sent.sent_at.astimezone(MOSCOW):%H:%M:%S} МСК (the operator's time)"
    )
    incoming = _detail(package_id).documents
    first = incoming[0]
    ctx.say(
        f"company: edo.fetch read the message → «{first.title}» routed to {first.responsible_id}, "
        f"answer due {first.answer_due_at:%d.%m.%Y} (15 working days)"
    )
    answer_docs = _stored(
        [("Технические условия", ANSWER)], "АО ВОЭК, Смирнов О.", "00" + COMPANY["inn"], "answer"
    )
    with session_scope() as session:
        answer_id = send_answer.plain(
            session,
            AnswerIn(
                package_key="demo-answer-1",
                answers_document_id=first.id,
                sender_login="smirnov",
                documents=answer_docs,
            ),
        )
    stamped = ctx.wait_for(
        lambda: _package(answer_id).status in (STAMPED, SIGNED) and _detail(answer_id),
        "the answer's print form",
    )
    [document] = stamped.documents
    versions = ", ".join(f"v{v.version} {v.file_name} ({v.size} B)" for v in document.versions)
    ctx.say(
        f"answer: signed by smirnov, sent at {stamped.sent_at.astimezone(MOSCOW):%H:%M:%S} МСК; versions: {versions}"
    )
    answered = _detail(package_id).documents[0]
    kept = answered.answered_at is not None and answered.answer_due_at is not None
    ctx.say(
        f"deadline: answered {answered.answered_at.astimezone(MOSCOW):%d.%m.%Y %H:%M} ≤ due {answered.answer_due_at:%d.%m.%Y} → "
        f"{'kept' if kept and answered.answered_at <= answered.answer_due_at else 'MISSED'}"
    )
    ctx.wait_for(lambda: _package(answer_id).status == SIGNED, "the customer to sign the answer", timeout=90)
    ctx.say("customer: signed the answer in the cabinet → the answer «signed» (its signature kept)")
