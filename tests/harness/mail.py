"""What the mail tests share: settings for one test, the mail master data, register reads."""

from __future__ import annotations

import json
import os
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from sqlalchemy import select

from config.settings import get_settings
from models.db import session_scope
from models.mail import MailMessage, OutgoingLetter
from models.outbox import Outbox
from models.sep_codes import SepConfirmationCode
from tasks.machinery.master_data import import_master_data

MASTER = Path(__file__).resolve().parents[1] / "data" / "mail_master.json"


@contextmanager
def settings_env(**env: str) -> Iterator[None]:
    """``OBMEN_*`` settings for the code under test in this process, restored afterwards."""
    saved = {key: os.environ.get(key) for key in env}
    os.environ.update(env)
    get_settings.cache_clear()
    try:
        yield
    finally:
        for key, value in saved.items():
            if value is None:
                os.environ.pop(key, None)
            else:
                os.environ[key] = value
        get_settings.cache_clear()


def load_master(**changes: Any) -> None:
    document = json.loads(MASTER.read_text())
    document.update(changes)
    with session_scope() as session:
        report = import_master_data(session, document)
    assert report.errors == [], report.errors


def messages() -> list[MailMessage]:
    with session_scope() as session:
        return list(session.scalars(select(MailMessage).order_by(MailMessage.id)))


def codes() -> list[SepConfirmationCode]:
    with session_scope() as session:
        return list(session.scalars(select(SepConfirmationCode).order_by(SepConfirmationCode.id)))


def letters() -> list[OutgoingLetter]:
    with session_scope() as session:
        return list(session.scalars(select(OutgoingLetter).order_by(OutgoingLetter.id)))


def outbox(task_name: str) -> list[Outbox]:
    with session_scope() as session:
        return list(session.scalars(select(Outbox).where(Outbox.task_name == task_name).order_by(Outbox.id)))
