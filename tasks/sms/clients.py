"""The SMS gateway client as tasks use it: the exchange recorder and the account's shared limiter
injected; one per process and configuration, made after the fork."""

from __future__ import annotations

import os
import threading

from config.settings import get_settings
from integrations.ratelimit import Bucket
from integrations.sms import SmscClient, SmsGateway
from tasks.machinery.exchange import record_exchange
from tasks.machinery.ratelimit import limiter_for

_lock = threading.Lock()
_clients: dict[tuple[int, str, str], SmscClient] = {}


def sms_client() -> SmsGateway:
    settings = get_settings()
    url, login = settings.url("sms_url"), settings.url("sms_login")
    key = (os.getpid(), url, login)
    with _lock:
        client = _clients.get(key)
        if client is None:
            client = _clients[key] = SmscClient(
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
        return client


def forget_clients() -> None:
    """Tests that point the settings at another sandbox."""
    with _lock:
        for client in _clients.values():
            client.close()
        _clients.clear()
