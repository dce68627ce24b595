"""One SEP client per process, configured from the settings, reporting to the SEP recorder."""

from __future__ import annotations

import threading

from config.settings import get_settings
from integrations.sep.client import SepClient, SepClientConfig
from tasks.sep.record import record_sep_exchange

_lock = threading.Lock()
_clients: dict[SepClientConfig, SepClient] = {}


def sep_client() -> SepClient:
    """Parsing the WSDL takes tens of milliseconds: it is done once per process and configuration."""
    s = get_settings()
    config = SepClientConfig(
        url=s.url("sep_url"),
        connect_timeout_s=s.sep_connect_timeout_s,
        read_timeout_s=s.sep_read_timeout_s,
        operation_timeout_s=s.sep_operation_timeout_s,
        max_response_bytes=s.sep_max_response_bytes,
    )
    with _lock:
        client = _clients.get(config)
        if client is None:
            client = _clients[config] = SepClient(config, recorder=record_sep_exchange)
        return client
