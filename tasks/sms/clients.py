"""The SMS gateway client as tasks use it: the exchange recorder and the account's shared limiter
injected; one per process and configuration."""

from __future__ import annotations

from config.settings import get_settings
from integrations.ratelimit import Bucket
from integrations.sms import SmscClient, SmsGateway
from tasks.machinery.clients import ClientCache
from tasks.machinery.exchange import record_exchange
from tasks.machinery.ratelimit import limiter_for

_clients: ClientCache[SmscClient] = ClientCache()


def sms_client() -> SmsGateway:
    settings = get_settings()
    url, login = settings.url("sms_url"), settings.url("sms_login")

    def make() -> SmscClient:
        return SmscClient(
            url,
            login,
            settings.url("sms_password"),
            sender=settings.sms_sender,
            recorder=record_exchange,
            # One pace per account: every worker sending under this login spends it.
            limiter=limiter_for(
                settings, f"sms:{login}", Bucket(settings.sms_rate_per_s, settings.sms_burst)
            ),
            max_wait_s=settings.sms_max_wait_s,
            timeout_s=settings.sms_timeout_s,
        )

    return _clients.get((url, login), make)


def forget_clients() -> None:
    """Tests that point the settings at another sandbox."""
    _clients.forget()
