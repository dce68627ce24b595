"""The SMS gateway as obmen uses it, and its client for SMSC (smsc.ru, HTTP API).

:class:`SmsGateway` is the one interface the steps call: ``send`` a message under our own id,
``status`` of a message by that id, ``balance``. Another provider means another class behind it.

SMSC's protocol (``https://smsc.ru/sys/``), every answer asked for as JSON (``fmt=3``):

* ``send.php`` with ``login``, ``psw``, ``phones``, ``mes``, ``id`` (ours: SMSC files the message
  under it), ``charset=utf-8``: ``{"id": <id>, "cnt": <parts>}`` or ``{"error", "error_code"}``;
* ``status.php`` with ``login``, ``psw``, ``phone``, ``id``: ``{"status": N, "last_timestamp", "err"}``
  where N is -3 not found, -1 waiting, 0 handed to the operator, 1 delivered, 2 read, 3 expired,
  4 link opened, 20 cannot be delivered, 22 bad number, 23 forbidden, 24 no money, 25 unreachable;
* ``balance.php`` with ``login``, ``psw``: ``{"balance": "123.45", "currency": "RUR"}``.

Requests are form POSTs through :class:`~integrations.bounded_http.BoundedClient`; the password
never reaches the exchange log. The account's pace is kept by an injected limiter shared across
workers; SMSC's own "too many requests" (error 9) comes back as :class:`SmsThrottled`.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, replace
from decimal import Decimal, InvalidOperation
from typing import Any, Literal, Protocol
from urllib.parse import urlencode

from integrations import jsonsafe
from integrations.bounded_http import BoundedClient
from integrations.errors import TransientError
from integrations.exchange import Exchange, Recorder, discard
from integrations.ratelimit import RateLimiter, Slot
from integrations.sms.errors import SmsThrottled, SmsUnavailable, error_for

SYSTEM = "sms"
# SMSC's answers are a few hundred bytes.
MAX_ANSWER_BYTES = 64_000
_PASSWORD = re.compile(r"(psw=)[^&]*")

State = Literal["unknown", "pending", "delivered", "failed"]
DELIVERED_CODES = frozenset({1, 2, 4})
FAILED_CODES = frozenset({3, 20, 22, 23, 24, 25})
STATUS_WORDS = {
    -3: "не найдено",
    -1: "ожидает отправки",
    0: "передано оператору",
    1: "доставлено",
    2: "прочитано",
    3: "просрочено",
    4: "открыта ссылка",
    20: "невозможно доставить",
    22: "неверный номер",
    23: "запрещено",
    24: "недостаточно средств",
    25: "недоступный номер",
}


@dataclass(frozen=True)
class Delivery:
    """What the provider knows of one message."""

    state: State
    code: int

    @property
    def words(self) -> str:
        return f"{self.code} ({STATUS_WORDS.get(self.code, 'неизвестный статус')})"


def delivery_of(code: int) -> Delivery:
    if code == -3:
        return Delivery("unknown", code)
    if code in DELIVERED_CODES:
        return Delivery("delivered", code)
    if code in FAILED_CODES:
        return Delivery("failed", code)
    return Delivery("pending", code)


class SmsGateway(Protocol):
    def send(self, message_id: int, phone: str, text: str, *, key: str) -> int:
        """Hand the message over under ``message_id``; returns how many SMS parts it took."""

    def status(self, message_id: int, phone: str, *, key: str) -> Delivery: ...

    def balance(self) -> Decimal: ...


class SmscClient:
    def __init__(
        self,
        url: str,
        login: str,
        password: str,
        *,
        sender: str = "",
        recorder: Recorder = discard,
        limiter: RateLimiter | None = None,
        max_wait_s: float = 0.1,
        timeout_s: float = 30.0,
        max_answer_bytes: int = MAX_ANSWER_BYTES,
    ) -> None:
        if not url.startswith(("http://", "https://")):
            raise ValueError("the SMSC URL looks like https://smsc.ru/sys")
        self.base = url.rstrip("/")
        self._auth = {"login": login, "psw": password}
        self.sender = sender
        self._recorder = recorder
        self._limiter = limiter
        self.max_wait_s = max_wait_s
        self._http = BoundedClient(deadline_s=timeout_s, max_bytes=max_answer_bytes)

    def close(self) -> None:
        self._http.close()

    def send(self, message_id: int, phone: str, text: str, *, key: str) -> int:
        slot = self._reserve(key)
        if not slot.granted:
            raise SmsThrottled(
                f"SMSC send.php: our pace for the account is spent; next slot in {slot.wait_s:.1f} s",
                retry_after_s=slot.wait_s,
            )
        params = {"phones": phone, "mes": text, "id": str(message_id), "charset": "utf-8"}
        if self.sender:
            params["sender"] = self.sender
        answer = self._call("send.php", params, key)
        if "id" not in answer:
            raise SmsUnavailable(f"SMSC send.php: an answer without id: {str(answer)[:200]}")
        return _int(answer.get("cnt", 1), "cnt")

    def status(self, message_id: int, phone: str, *, key: str) -> Delivery:
        answer = self._call("status.php", {"phone": phone, "id": str(message_id)}, key)
        return delivery_of(_int(answer.get("status"), "status"))

    def balance(self) -> Decimal:
        answer = self._call("balance.php", {}, None)
        try:
            return Decimal(str(answer.get("balance")))
        except InvalidOperation as exc:
            raise SmsUnavailable(f"SMSC balance.php: no balance in {str(answer)[:200]}") from exc

    def _reserve(self, key: str) -> Slot:
        if self._limiter is None:
            return Slot(True, 0.0)
        return self._limiter.reserve(1, max_wait_s=self.max_wait_s, key=key)

    def _record(self, exchange: Exchange) -> None:
        self._recorder(
            replace(
                exchange,
                url=_PASSWORD.sub(r"\1***", exchange.url or ""),
                request_body=_PASSWORD.sub(r"\1***", exchange.request_body or ""),
            )
        )

    def _call(self, script: str, params: dict[str, str], key: str | None) -> dict[str, Any]:
        body = urlencode({**self._auth, **params, "fmt": "3"})
        request = self._http.build_request(
            "POST",
            f"{self.base}/{script}",
            content=body.encode(),
            headers={"Content-Type": "application/x-www-form-urlencoded"},
        )
        try:
            answer = self._http.send(
                request, recorder=self._record, system=SYSTEM, operation=script, business_key=key
            )
        except TransientError as exc:
            raise SmsUnavailable(str(exc)) from exc
        if answer.status_code != 200:
            raise SmsUnavailable(f"SMSC {script}: HTTP {answer.status_code}")
        try:
            parsed = jsonsafe.loads(answer.content)
        except ValueError:
            parsed = None
        if not isinstance(parsed, dict):
            text = answer.content[:200].decode("utf-8", errors="replace")
            raise SmsUnavailable(f"SMSC {script}: not an SMSC answer: {text!r}")
        if "error_code" in parsed:
            raise error_for(
                _int(parsed["error_code"], "error_code"), str(parsed.get("error", ""))[:300], script
            )
        return parsed


def _int(value: Any, name: str) -> int:
    if isinstance(value, bool):
        raise SmsUnavailable(f"SMSC answered {name}={value!r}, not a number")
    try:
        return int(value)
    except (TypeError, ValueError) as exc:
        raise SmsUnavailable(f"SMSC answered {name}={str(value)[:40]!r}, not a number") from exc
