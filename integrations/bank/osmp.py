"""The check/pay protocol of Russian payment agents (QIWI/ОСМП style, Сбербанк ЕПС «протокол 2»).

    GET /bank/osmp?command=check&txn_id=1234567&account=<ИНН>&sum=1500.00
    GET /bank/osmp?command=pay&txn_id=1234567&txn_date=20261120143000&account=<ИНН>&sum=1500.00

answered with

    <response><osmp_txn_id>1234567</osmp_txn_id><prv_txn>42</prv_txn><sum>1500.00</sum>
    <result>0</result><comment>OK</comment></response>

``txn_id`` is the idempotency key: a repeated ``pay`` gets the original ``prv_txn`` and result 0.
The query string is read strictly: a parameter given twice, digits other than ASCII 0-9 and a
``txn_date`` outside the payment-date rule of the JSON API (``integrations/bank/dates.py``) are
refused; :func:`parse_request` raises nothing but :class:`OsmpError`.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from datetime import datetime
from decimal import Decimal
from urllib.parse import parse_qsl
from xml.sax.saxutils import escape
from zoneinfo import ZoneInfo

from integrations.bank.dates import payment_date_problem
from integrations.validation import validate_inn

MOSCOW = ZoneInfo("Europe/Moscow")

OK = 0
TEMPORARY_ERROR = 1  # try again later
BAD_ACCOUNT_FORMAT = 4
ACCOUNT_NOT_FOUND = 5
PAYMENT_FORBIDDEN = 7
SUM_TOO_SMALL = 241
SUM_TOO_LARGE = 242
OTHER_ERROR = 300


class OsmpError(Exception):
    def __init__(self, result: int, comment: str) -> None:
        super().__init__(comment)
        self.result = result
        self.comment = comment


@dataclass(frozen=True)
class OsmpRequest:
    command: str
    txn_id: str
    account: str
    sum: Decimal
    txn_date: datetime | None

    @property
    def transaction_id(self) -> str:
        return f"osmp-{self.txn_id}"


MAX_FIELDS = 20
TXN_ID = re.compile(r"[0-9]{1,20}")


def read_query(query: str) -> dict[str, str]:
    """The parameters of a query string, each given at most once."""
    try:
        pairs = parse_qsl(query, keep_blank_values=True, max_num_fields=MAX_FIELDS)
    except ValueError as exc:
        raise OsmpError(OTHER_ERROR, f"more than {MAX_FIELDS} parameters") from exc
    params: dict[str, str] = {}
    for name, value in pairs:
        if name in params:
            raise OsmpError(OTHER_ERROR, "a parameter is given twice")
        params[name] = value
    return params


def echo_txn_id(query: str) -> str:
    """The ``txn_id`` to name in an answer: the one given, when it is one (never the caller's other text)."""
    try:
        txn_id = read_query(query).get("txn_id", "")
    except OsmpError:
        return ""
    return txn_id if TXN_ID.fullmatch(txn_id) else ""


def parse_request(query: str, max_sum: Decimal, now: datetime, tolerance_s: int) -> OsmpRequest:
    params = read_query(query)
    command = params.get("command", "")
    if command not in ("check", "pay"):
        raise OsmpError(OTHER_ERROR, "command must be check or pay")
    txn_id = params.get("txn_id", "")
    if not TXN_ID.fullmatch(txn_id):
        raise OsmpError(OTHER_ERROR, "txn_id must be 1 to 20 ASCII digits")
    account = params.get("account", "")
    try:
        account = validate_inn(account)
    except ValueError as exc:
        raise OsmpError(BAD_ACCOUNT_FORMAT, f"account: {exc}") from exc
    raw_sum = params.get("sum", "")
    if not re.fullmatch(r"-?[0-9]{1,15}(\.[0-9]{1,2})?", raw_sum):
        raise OsmpError(OTHER_ERROR, "sum is rubles with at most 2 decimals after a point, e.g. 1500.00")
    amount = Decimal(raw_sum)
    if amount <= 0:
        raise OsmpError(SUM_TOO_SMALL, "sum must be greater than zero")
    if amount > max_sum:
        raise OsmpError(SUM_TOO_LARGE, f"sum is over {max_sum}")
    txn_date = None
    if command == "pay":
        raw_date = params.get("txn_date", "")
        try:
            if not re.fullmatch(r"[0-9]{14}", raw_date):
                raise ValueError(raw_date)
            txn_date = datetime.strptime(raw_date, "%Y%m%d%H%M%S").replace(tzinfo=MOSCOW)
        except ValueError as exc:
            raise OsmpError(OTHER_ERROR, "txn_date is YYYYMMDDHHMMSS (Moscow time)") from exc
        problem = payment_date_problem(txn_date, now, tolerance_s)
        if problem:
            raise OsmpError(PAYMENT_FORBIDDEN, f"txn_date {problem}")
    return OsmpRequest(command, txn_id, account, amount, txn_date)


def render(
    result: int, comment: str, *, txn_id: str = "", prv_txn: int | None = None, amount: Decimal | None = None
) -> str:
    parts = [f"<osmp_txn_id>{escape(txn_id)}</osmp_txn_id>"]
    if prv_txn is not None:
        parts.append(f"<prv_txn>{prv_txn}</prv_txn>")
    if amount is not None:
        parts.append(f"<sum>{amount.quantize(Decimal('0.01'))}</sum>")
    parts += [f"<result>{result}</result>", f"<comment>{escape(comment)}</comment>"]
    return '<?xml version="1.0" encoding="UTF-8"?>\n<response>' + "".join(parts) + "</response>\n"
