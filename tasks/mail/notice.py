"""The personal notification about a SEP letter: what the responsible employee reads (in Russian,
plain text and HTML), and the business key that makes it one letter per notice."""

from __future__ import annotations

from dataclasses import dataclass
from html import escape

from integrations.mail.sep import Kind, SepNotice
from tasks.mail.matching import Match

WHAT = {
    Kind.OWNERSHIP_CHANGE: "заявление на смену собственника",
    Kind.LEASE_APPLICATION: "заявление на внесение сведений о лизинге (код лизингополучателя)",
    Kind.LEASE_ENTERED: "сведения о лизинге внесены",
    Kind.OTHER: "уведомление СЭП",
}


@dataclass(frozen=True)
class Notice:
    business_key: str
    subject: str
    text: str
    html: str


def business_key(notice: SepNotice) -> str:
    """One notification per notice, however often the letter arrives (two UIDs, two Message-IDs)."""
    return f"sep-notice:{notice.kind.value}:{notice.application_number}:{notice.code or '-'}"


def compose(notice: SepNotice, match: Match, message_id: int) -> Notice:
    asset = match.asset
    vin = notice.vin.value if notice.vin else None
    vin_shown: str | None
    if asset is not None and asset.vin and vin and vin != asset.vin:
        vin_shown = f"{asset.vin} (в письме: {notice.vin.as_written if notice.vin else vin})"
    else:
        vin_shown = (asset.vin if asset is not None else None) or (
            notice.vin.as_written if notice.vin else None
        )
    rows = [
        (
            "Основное средство",
            f"{asset.inventory_number} {asset.name}" if asset is not None else "не определено",
        ),
        ("VIN", vin_shown or "—"),
        ("ЭПТС", notice.epts or (asset.epts if asset is not None else None) or "—"),
        ("Заявление", notice.application_number or "—"),
    ]
    if notice.code:
        rows.append(("Код подтверждения", notice.code))
    if notice.confirm_by:
        rows.append(("Подтвердить до", notice.confirm_by.strftime("%d.%m.%Y")))
    what = WHAT[notice.kind]
    about = f", {asset.name} ({asset.inventory_number})" if asset is not None else ""
    if notice.code:
        subject = f"СЭП: код {notice.code}, {what.split(' (')[0]} № {notice.application_number}{about}"
    else:
        subject = f"СЭП: {what}, заявление № {notice.application_number}{about}"
    greeting = f"{match.responsible.name}, здравствуйте."
    why = f"Почему письмо вам: {match.reason}."
    source = f"Письмо СЭП в реестре obmen: mail_messages № {message_id}."
    text = "\n".join(
        [
            greeting,
            "",
            f"Пришло уведомление СЭП: {what}.",
            "",
            *(f"{k}: {v}" for k, v in rows),
            "",
            why,
            source,
        ]
    )
    cells = "".join(f"<tr><th align='left'>{escape(k)}</th><td>{escape(v)}</td></tr>" for k, v in rows)
    html = (
        f"<html><body><p>{escape(greeting)}</p><p>Пришло уведомление СЭП: <b>{escape(what)}</b>.</p>"
        f"<table cellpadding='4'>{cells}</table>"
        f"<p style='color:#666'>{escape(why)}<br>{escape(source)}</p></body></html>"
    )
    return Notice(business_key(notice), subject, text, html)
