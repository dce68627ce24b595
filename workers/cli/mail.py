"""``obmen fetch-mail``: read the SEP mailbox now."""

from __future__ import annotations

import json
import sys

import click


@click.command("fetch-mail")
def fetch_mail() -> None:
    """Read the SEP mailbox now («Получить письма»; beat does it every OBMEN_MAIL_POLL_INTERVAL_S)."""
    from tasks.machinery.outbox import relay_all
    from tasks.mail.intake import fetch_mail as do_fetch
    from workers.cli.output import following, publishing

    publishing()
    with following("fetching mail") as follow:
        report = do_fetch(on_batch=follow)
    relay_all()
    click.echo(json.dumps(report.as_dict(), ensure_ascii=False))
    if report.error:
        sys.exit(2)
