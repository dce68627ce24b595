"""Shared set-up of the EDO flow tests: the emulator with obmen's settings pointed at it, master
data and routing, signed packages with their files stored, and the register read back."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

import pytest
from cryptography.fernet import Fernet
from sqlalchemy import select

from config.settings import get_settings
from models.db import session_scope
from models.edo import EdoDocument, EdoPackage, store_file
from models.master import Employee
from sandbox.harness import SandboxClock
from sandbox.server import Sandbox
from sandbox.synerdocs.emulator import COMPANY, SynerdocsEmulator
from tasks.edo import register
from tasks.edo.clients import forget_clients
from tasks.edo.register import AnswerIn, DocumentIn, PackageIn
from tests.edo.pki import Signer, signer

CUSTOMER_INN = "500100732259"  # a new customer (ИП), not at the operator yet
CUSTOMER_NAME = "ИП Иванов Иван Иванович"
CUSTOMER_EMAIL = "ivanov@example.ru"
TP = "tp_application"  # заявка на технологическое присоединение
TP_DAYS = 15
CUSTOMER = signer("Иванов Иван Иванович", CUSTOMER_INN)
# An employee of the company signing its answers (the organisation's ИНН in the certificate).
COMPANY_SIGNER = signer("Сидорова Анна Павловна", "352500000017", organization_inn=COMPANY["inn"])
PDF = b"%PDF-1.4\n" + "Заявка на технологическое присоединение".encode() * 20


@contextmanager
def edo_settings(monkeypatch: pytest.MonkeyPatch, box: Sandbox, **extra: str) -> Iterator[dict[str, str]]:
    """Point obmen's settings at the (reset) emulator of ``box`` for the test; the settings given."""
    emulator(box).reset()
    emulator(box).clock = SandboxClock()
    settings = {
        **box.client_settings(),
        "OBMEN_SYNERDOCS_CREDENTIALS_KEY": Fernet.generate_key().decode(),
        "OBMEN_SYNERDOCS_DEADLINE_S": "10",
        **extra,
    }
    for key, value in settings.items():
        monkeypatch.setenv(key, value)
    get_settings.cache_clear()
    forget_clients()
    try:
        yield settings
    finally:
        monkeypatch.undo()
        get_settings.cache_clear()
        forget_clients()


def emulator(box: Sandbox) -> SynerdocsEmulator:
    found = box.emulator("synerdocs")
    assert isinstance(found, SynerdocsEmulator)
    return found


def master_data() -> None:
    """Two employees; applications for grid connection go to the first (15 working days), anything
    else to the second (30)."""
    with session_scope() as session:
        session.add(Employee(id="E1", name="Смирнов Олег", email="smirnov@voek.example"))
        session.add(Employee(id="E2", name="Канцелярия", email="office@voek.example"))
        session.flush()
        register.set_rule(session, TP, "Заявка на технологическое присоединение", "E1", TP_DAYS)
        register.set_rule(session, "complaint", "Жалоба", "E1", 30)
        register.set_rule(session, register.OTHER_TYPE, "Прочее", "E2", 30)
        register.add_sender(session, "sidorova", "E1")


def documents(
    by: Signer,
    files: list[tuple[str, bytes]],
    *,
    document_type: str = TP,
    signature: bytes | None = None,
) -> list[DocumentIn]:
    """Each file stored with its detached signature by ``by`` (or ``signature``, as given)."""
    stored = []
    with session_scope() as session:
        for title, content in files:
            stored.append(
                DocumentIn(
                    sha256=store_file(session, content),
                    file_name=f"{title}.pdf",
                    title=title,
                    document_type=document_type,
                    signature_sha256=store_file(
                        session, signature if signature is not None else by.sign(content)
                    ),
                )
            )
    return stored


def package_in(key: str = "cab-1", **overrides: Any) -> PackageIn:
    values: dict[str, Any] = {
        "package_key": key,
        "customer": {"inn": CUSTOMER_INN, "name": CUSTOMER_NAME, "email": CUSTOMER_EMAIL},
        "documents": documents(CUSTOMER, [("Заявка на ТП", PDF), ("Схема", PDF + b" scheme")]),
    }
    values.update(overrides)
    return PackageIn.model_validate(values)


def submit(data: PackageIn) -> int:
    with session_scope() as session:
        package, _ = register.submit_package(session, data)
        return package.id


def answer(document_id: int, key: str = "ans-1", sender: str = "sidorova", content: bytes = PDF) -> int:
    data = AnswerIn(
        package_key=key,
        answers_document_id=document_id,
        sender_login=sender,
        documents=documents(
            COMPANY_SIGNER, [("Технические условия", content + b" TU")], document_type="answer"
        ),
    )
    with session_scope() as session:
        package, _ = register.send_answer(session, data)
        return package.id


def package(package_id: int) -> EdoPackage:
    with session_scope() as session:
        row = session.get(EdoPackage, package_id)
        assert row is not None
        session.expunge(row)
        return row


def documents_of(package_id: int) -> list[EdoDocument]:
    with session_scope() as session:
        rows = list(
            session.scalars(
                select(EdoDocument).where(EdoDocument.package_id == package_id).order_by(EdoDocument.position)
            )
        )
        session.expunge_all()
        return rows
