"""The check/pay protocol of Russian payment agents (QIWI/ОСМП style, Сбербанк ЕПС «протокол 2»).

    GET /bank/osmp?command=check&txn_id=1234567&account=<ИНН>&sum=1500.00
    GET /bank/osmp?command=pay&txn_id=1234567&txn_date=20261120143000&account=<ИНН>&sum=1500.00

answered with

    <response><osmp_txn_id>1234567</osmp_txn_id><prv_txn>42</prv_txn><sum>1500.00</sum>
    <result>0</result><comment>OK</comment></response>

``txn_id`` is the idempotency key: a repeated ``pay`` gets the original ``prv_txn`` and result 0.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import datetime
from decimal import Decimal
from xml.sax.saxutils import escape
from zoneinfo import ZoneInfo

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


def parse_request(params: Mapping[str, str], max_sum: Decimal) -> OsmpRequest:
    command = params.get("command", "")
    if command not in ("check", "pay"):
        raise OsmpError(OTHER_ERROR, "command must be check or pay")
    txn_id = params.get("txn_id", "")
    if not re.fullmatch(r"\d{1,20}", txn_id):
        raise OsmpError(OTHER_ERROR, "txn_id must be 1 to 20 digits")
    account = params.get("account", "")
    try:
        account = validate_inn(account)
    except ValueError as exc:
        raise OsmpError(BAD_ACCOUNT_FORMAT, f"account: {exc}") from exc
    raw_sum = params.get("sum", "")
    if not re.fullmatch(r"-?\d{1,15}(\.\d{1,2})?", raw_sum):
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
            txn_date = datetime.strptime(raw_date, "%Y%m%d%H%M%S").replace(tzinfo=MOSCOW)
        except ValueError as exc:
            raise OsmpError(OTHER_ERROR, "txn_date is YYYYMMDDHHMMSS (Moscow time)") from exc
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
