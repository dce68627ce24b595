"""Acts by e-mail: the counterparty chose e-mail, so «Акт направлен заявителю» is a letter from obmen.

The manager's «sent» lands the act on «Отправка по e-mail»; ``acts.email.send`` writes the letter to
the mail outbox (``queue_letter``, keyed ``act-email:<act id>``: once, however often the step runs)
with the act's newest file attached (the scan signed by us), and looks again every
``OBMEN_ACTS_EMAIL_CHECK_S`` until ``mail.send`` has sent it; then the act is «Акт направлен
заявителю» as of the letter's sending, and is tracked like a paper act (5 working days, the task).
"""

from __future__ import annotations

from typing import Any

from sqlalchemy import select
from sqlalchemy.orm import Session

from integrations.mail.smtp import Attachment
from models.acts import Act, ActFile
from tasks.acts.forms import counterparty
from tasks.machinery.bitrix24 import bitrix24_client


def act_letter(session: Session, act: Act, key: str) -> dict[str, Any]:
    """The letter that sends ``act`` by e-mail: to the deal's company, its newest file attached."""
    _, company, email = counterparty(bitrix24_client(), act.deal_id, key)
    file = session.scalars(
        select(ActFile).where(ActFile.act_id == act.id).order_by(ActFile.id.desc()).limit(1)
    ).one()
    return {
        "to_address": email,
        "to_name": str(company.get("TITLE") or "") or None,
        "subject": f"Акт выполненных работ № {act.number} от {act.act_date:%d.%m.%Y}",
        "text": (
            "Здравствуйте!\n\n"
            f"Направляем акт выполненных работ № {act.number} от {act.act_date:%d.%m.%Y}. Пожалуйста, "
            "подпишите его и пришлите скан подписанного акта в ответ на это письмо.\n"
        ),
        "attachments": [Attachment(file.name, file.content_type, file.content)],
    }
