"""Open the mailbox ``OBMEN_IMAP_URL`` names. Each session reports one exchange to the recorder when it
closes: a transcript of the commands and a one-line answer to each, never the letters themselves
(they are in ``mail_messages``)."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager

from integrations.exchange import Exchange, Recorder, timed
from integrations.mail.imap import imap_session
from integrations.mail.mailbox import Mailbox, Transcript
from integrations.mail.maildir import maildir_session
from integrations.mail.urls import MaildirUrl, parse_mailbox_url


@contextmanager
def open_mailbox(
    url: str, *, timeout: float, recorder: Recorder, ca_file: str | None = None
) -> Iterator[Mailbox]:
    """A logged-in mailbox with its folder selected; closed, and its exchange recorded, on exit."""
    parsed = parse_mailbox_url(url)
    transcript = Transcript()
    exchange = Exchange(system="mail", operation="read mailbox", url=parsed.identity())
    with timed() as elapsed:
        try:
            if isinstance(parsed, MaildirUrl):
                with maildir_session(parsed, transcript) as box:
                    yield box
            else:
                with imap_session(parsed, transcript, timeout=timeout, ca_file=ca_file) as box:
                    yield box
        except Exception as exc:
            exchange.error = f"{type(exc).__name__}: {exc}"
            raise
        finally:
            exchange.duration_ms = elapsed()
            exchange.request_body = transcript.text()
            recorder(exchange)
