"""The SMS the billing flow sends subscribers (seed 001), each keyed by what it is about so that it
goes once: the payment reminder and its repeat, the disconnection warning, «вы подключены»."""

from __future__ import annotations

from models.master import Subscriber
from models.payments import Accrual
from tasks.sms.outgoing import Outgoing


def _month(accrual: Accrual) -> str:
    return accrual.period.strftime("%m.%Y")


def _about_accrual(subscriber: Subscriber, accrual: Accrual, kind: str, key: str, text: str) -> Outgoing:
    return Outgoing(
        key=f"{kind}:{subscriber.inn}:{accrual.period:%Y-%m}{key}",
        kind=kind,
        phone=subscriber.phone,
        subscriber_inn=subscriber.inn,
        text=f"{text} Оплатите в приложении банка по ИНН {subscriber.inn}.",
    )


def payment_reminder(subscriber: Subscriber, accrual: Accrual, n: int) -> Outgoing:
    """The ``n``-th reminder of an accrual (1: when it is charged, 2: the repeat)."""
    lead = "Начислена абонентская плата" if n == 1 else "Напоминаем: не оплачена абонентская плата"
    text = f"{lead} за {_month(accrual)}: {accrual.due} руб."
    return _about_accrual(subscriber, accrual, "reminder", f":{n}", text)


def disconnection_warning(subscriber: Subscriber, accrual: Accrual) -> Outgoing:
    text = f"Задолженность за {_month(accrual)} ({accrual.due} руб.) не оплачена: услуга будет отключена."
    return _about_accrual(subscriber, accrual, "disconnect_warning", "", text)


def connected(number: str, inn: str, phone: str | None) -> Outgoing:
    return Outgoing(
        key=f"connected:{number}",
        kind="connected",
        phone=phone,
        subscriber_inn=inn,
        text=f"Вы подключены! Заявка № {number} выполнена. Спасибо, что выбрали нас.",
    )
