"""The 1C client as the invoice flow uses it: configured from the settings, its session leases shared
by every worker on this broker (one process's leases in the embedded demo), reporting to the
exchange log. One client per process and configuration, made after the fork."""

from __future__ import annotations

import os
import threading

import redis

from config.celery import is_embedded
from config.settings import Settings, get_settings
from integrations.errors import PermanentError
from integrations.onec.client import OnecClient
from integrations.onec.sessions import LocalSessions, RedisSessions, SessionSlots
from tasks.machinery.exchange import record_exchange

SESSIONS = "onec"

_lock = threading.Lock()
_clients: dict[tuple[int, str, str, int], OnecClient] = {}


def _sessions(settings: Settings) -> SessionSlots:
    if is_embedded(settings):
        return LocalSessions(settings.onec_max_sessions)
    client = redis.Redis.from_url(
        settings.broker_url,
        socket_timeout=settings.broker_socket_timeout_s,
        socket_connect_timeout=settings.broker_socket_timeout_s,
    )
    return RedisSessions(client, SESSIONS, settings.onec_max_sessions)


def onec_client(settings: Settings | None = None) -> OnecClient:
    s = settings or get_settings()
    if not s.onec_user or s.onec_password is None:
        raise PermanentError("OBMEN_ONEC_USER and OBMEN_ONEC_PASSWORD must be set to ask 1C for invoices")
    url = s.url("onec_url")
    key = (os.getpid(), url, s.onec_user, s.onec_max_sessions)
    with _lock:
        client = _clients.get(key)
        if client is None:
            client = _clients[key] = OnecClient(
                url,
                s.onec_user,
                s.onec_password,
                sessions=_sessions(s),
                max_file_bytes=s.invoice_max_file_bytes,
                recorder=record_exchange,
                deadline_s=s.onec_timeout_s,
                max_wait_s=s.onec_max_wait_s,
                busy_retry_s=s.onec_busy_retry_s,
            )
        return client


def forget_clients() -> None:
    """Tests that point the settings at another sandbox."""
    with _lock:
        for client in _clients.values():
            client.close()
        _clients.clear()
