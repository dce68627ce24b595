"""Letters of the acts flow, behind one function with the shape of the mail flow's ``queue_letter``.

INTERIM: the mail flow (branch ``issue-3-mail``) builds the outbox-driven ``mail.send`` step over the
``outgoing_letters`` register; once it is merged, this module is replaced by
``from tasks.mail_send import queue_letter``. Until then the letter goes out at once over
``OBMEN_SMTP_URL`` from inside the calling step (a step repeated after a crash between the SMTP
answer and its commit would send it twice; ``mail.send`` closes that window).
"""

from __future__ import annotations

import smtplib
from email.message import EmailMessage
from email.utils import formataddr, make_msgid
from urllib.parse import urlsplit

from sqlalchemy.orm import Session

from config.settings import get_settings
from integrations.errors import PermanentError, TransientError

FROM = "obmen@localhost"


def queue_letter(
    session: Session,
    *,
    business_key: str,
    to_address: str,
    subject: str,
    text: str,
    to_name: str | None = None,
    source: str | None = None,
) -> int | None:
    smtp = get_settings().smtp_url
    if smtp is None:
        raise PermanentError("OBMEN_SMTP_URL is not set: letters to counterparties cannot go out")
    url = urlsplit(smtp.get_secret_value())
    message = EmailMessage()
    message["From"] = FROM
    message["To"] = formataddr((to_name or "", to_address))
    message["Subject"] = subject
    message["Message-ID"] = make_msgid(idstring=business_key.replace(":", "."))
    message.set_content(text)
    try:
        client_cls = smtplib.SMTP_SSL if url.scheme == "smtps" else smtplib.SMTP
        with client_cls(url.hostname or "127.0.0.1", url.port or 25, timeout=30) as client:
            if url.username:
                client.login(url.username, url.password or "")
            client.send_message(message)
    except (OSError, smtplib.SMTPException) as exc:
        raise TransientError(f"SMTP: {type(exc).__name__}: {exc}") from exc
    return None
