"""The Bitrix24 client as tasks use it: the exchange recorder and the shared portal limiter injected.

One client per process (and per webhook URL), made after the fork, so pool processes do not share
connections.
"""

from __future__ import annotations

import os
import threading
from urllib.parse import urlsplit

from config.settings import Settings, get_settings
from integrations.bitrix24 import Bitrix24Client
from integrations.ratelimit import Bucket
from tasks.machinery.exchange import record_exchange
from tasks.machinery.ratelimit import limiter_for

_lock = threading.Lock()
_clients: dict[tuple[int, str], Bitrix24Client] = {}


class Bitrix24NotConfigured(RuntimeError):
    pass


def bitrix24_client(settings: Settings | None = None) -> Bitrix24Client:
    settings = settings or get_settings()
    if settings.bitrix24_webhook_url is None:
        raise Bitrix24NotConfigured("OBMEN_BITRIX24_WEBHOOK_URL is not set")
    url = settings.bitrix24_webhook_url.get_secret_value()
    key = (os.getpid(), url)
    with _lock:
        client = _clients.get(key)
        if client is None:
            bucket = Bucket(settings.bitrix24_rate_per_s, settings.bitrix24_burst)
            # One bucket per portal: every webhook of a portal spends the same budget.
            portal = urlsplit(url).netloc
            client = Bitrix24Client(
                url,
                recorder=record_exchange,
                limiter=limiter_for(settings, f"bitrix24:{portal}", bucket),
                max_wait_s=settings.bitrix24_max_wait_s,
                timeout_s=settings.bitrix24_timeout_s,
            )
            _clients[key] = client
        return client


def forget_clients() -> None:
    """Tests that point the settings at another sandbox."""
    with _lock:
        for client in _clients.values():
            client.close()
        _clients.clear()
