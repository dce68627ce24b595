"""The СБИС client as the acts flow uses it: one per configuration, reporting to the exchange log."""

from __future__ import annotations

from functools import lru_cache

from config.settings import get_settings
from integrations.errors import PermanentError
from integrations.sbis.client import SbisClient
from tasks.machinery.exchange import record_exchange


@lru_cache(maxsize=4)
def _client(url: str, login: str, password: str, timeout: float) -> SbisClient:
    return SbisClient(url, login, password, recorder=record_exchange, timeout=timeout)


def sbis_client() -> SbisClient:
    s = get_settings()
    if not s.sbis_login or s.sbis_password is None:
        raise PermanentError(
            "OBMEN_SBIS_LOGIN and OBMEN_SBIS_PASSWORD must be set to exchange acts with СБИС"
        )
    return _client(s.url("sbis_url"), s.sbis_login, s.sbis_password.get_secret_value(), s.sbis_timeout_s)
