"""The Synerdocs clients of the EDO flow: one per account and configuration, reporting to the exchange log.

Every exchange a step makes about a package carries the package key as ``business_key`` (the
package's «XML» tab reads them back by it): the step opens :func:`about` around its calls, and the
recorder stamps the key on each exchange made inside it.
"""

from __future__ import annotations

import threading
from collections.abc import Iterator
from contextlib import contextmanager
from contextvars import ContextVar

from config.settings import get_settings
from integrations.errors import PermanentError
from integrations.exchange import Exchange
from integrations.synerdocs.client import Credentials, SynerdocsClient, SynerdocsConfig
from models.edo import EdoBox
from tasks.machinery.exchange import record_exchange

_about: ContextVar[str | None] = ContextVar("edo_package_key", default=None)
_lock = threading.Lock()
_clients: dict[tuple[SynerdocsConfig, str, str], SynerdocsClient] = {}


class NoAccount(PermanentError):
    """No account obmen holds may act for a box."""


@contextmanager
def about(package_key: str) -> Iterator[None]:
    """Stamp ``package_key`` on every exchange recorded inside the block."""
    token = _about.set(package_key)
    try:
        yield
    finally:
        _about.reset(token)


def record_edo_exchange(exchange: Exchange) -> None:
    exchange.business_key = _about.get() or exchange.business_key
    record_exchange(exchange)


def _config() -> SynerdocsConfig:
    s = get_settings()
    return SynerdocsConfig(
        url=s.url("synerdocs_url"),
        application_id=s.synerdocs_application_id,
        connect_timeout_s=s.synerdocs_connect_timeout_s,
        deadline_s=s.synerdocs_deadline_s,
        max_answer_bytes=s.synerdocs_max_answer_bytes,
        max_file_bytes=s.synerdocs_max_file_bytes,
        operator_code=s.synerdocs_operator_code,
    )


def _client(login: str, password: str) -> SynerdocsClient:
    """Parsing the WSDL takes tens of milliseconds and a token lives an hour: one client per account."""
    key = (_config(), login, password)
    with _lock:
        client = _clients.get(key)
        if client is None:
            client = _clients[key] = SynerdocsClient(
                key[0], Credentials(login, password), recorder=record_edo_exchange
            )
        return client


def company_client() -> SynerdocsClient:
    """The company's default account (``OBMEN_SYNERDOCS_LOGIN``/``_PASSWORD``)."""
    s = get_settings()
    if not s.synerdocs_login or s.synerdocs_password is None or not s.synerdocs_box:
        raise NoAccount("OBMEN_SYNERDOCS_LOGIN, _PASSWORD and _BOX must be set to exchange EDO documents")
    return _client(s.synerdocs_login, s.synerdocs_password.get_secret_value())


def box_client(box: EdoBox) -> SynerdocsClient:
    """The account of a box in the register: the default one from the settings, any other by its
    password decrypted with ``OBMEN_SYNERDOCS_CREDENTIALS_KEY``."""
    if box.is_default:
        return company_client()
    key = get_settings().synerdocs_credentials_key
    return _client(box.login, box.password(key.get_secret_value() if key else None))


def forget_clients() -> None:
    """Close every client (tests point the settings elsewhere between runs)."""
    with _lock:
        for client in _clients.values():
            client.close()
        _clients.clear()
