"""The payment the bank reports (PostCustomersInfo) and the debt answer (GetCustomerInfo).

Amounts are decimal strings in rubles (at most 2 decimals, > 0, ASCII digits), never floats. The
body is JSON with one meaning (``integrations/strictjson.py``: a repeated key is refused, not
resolved); texts are what the register store can hold (``integrations/storable.py``); the payment
date follows the rule OSMP follows too (``integrations/bank/dates.py``). A field that fails is named
in the answer; :func:`read_payment` raises nothing else.
"""

from __future__ import annotations

import hashlib
import json
from datetime import UTC, datetime
from decimal import Decimal
from typing import Annotated, Any, Literal

from pydantic import (
    AfterValidator,
    AwareDatetime,
    BaseModel,
    BeforeValidator,
    ConfigDict,
    Field,
    ValidationError,
)

from integrations import strictjson
from integrations.bank.dates import payment_date_problem
from integrations.storable import storable_text
from integrations.validation import Inn, parse_money

# Numeric(14, 2): the register keeps 12 integer digits.
COLUMN_LIMIT = Decimal("999999999999.99")


def parse_amount(value: object) -> Decimal:
    if not isinstance(value, str):
        raise ValueError(
            f'an amount is a decimal string in rubles such as "1500.00", not {type(value).__name__}'
        )
    amount = parse_money(value)
    if amount <= 0:
        raise ValueError("an amount must be greater than zero")
    if amount > COLUMN_LIMIT:
        raise ValueError("the amount is too large")
    return amount


Amount = Annotated[Decimal, BeforeValidator(parse_amount)]
# NUL and lone surrogates are refused here, a 422, instead of failing the insert or the hash, a 500.
Text = Annotated[str, AfterValidator(storable_text)]


class PaymentIn(BaseModel):
    model_config = ConfigDict(extra="forbid", strict=True)

    transaction_id: str = Field(min_length=1, max_length=64, pattern=r"^[A-Za-z0-9][A-Za-z0-9._:\-]*$")
    inn: Inn
    amount: Amount
    currency: Literal["RUB"] = "RUB"
    paid_at: Annotated[AwareDatetime, Field(strict=False)]
    purpose: Text = Field(max_length=500)
    payer_name: Text | None = Field(None, max_length=300)

    def check_limits(self, max_amount: Decimal, now: datetime, tolerance_s: int) -> list[tuple[str, str]]:
        """Rules that depend on settings and the clock."""
        errors = []
        if self.amount > max_amount:
            errors.append(("amount", f"more than the largest accepted payment ({max_amount})"))
        problem = payment_date_problem(self.paid_at, now, tolerance_s)
        if problem:
            errors.append(("paid_at", problem))
        return errors

    def content_hash(self) -> str:
        """The same payment hashes the same however the bank formatted it ("1500" = "1500.00")."""
        canonical = {
            "inn": self.inn,
            "amount": format(self.amount.quantize(Decimal("0.01")), "f"),
            "currency": self.currency,
            "paid_at": self.paid_at.astimezone(UTC).isoformat(),
            "purpose": self.purpose,
            "payer_name": self.payer_name,
        }
        return hashlib.sha256(json.dumps(canonical, sort_keys=True, ensure_ascii=False).encode()).hexdigest()


def field_errors(exc: ValidationError) -> list[dict[str, str]]:
    out = []
    for err in exc.errors():
        field = ".".join(str(p) for p in err["loc"]) or "body"
        message = str(err["msg"]).removeprefix("Value error, ")
        if err["type"] == "missing":
            message = "is required"
        elif err["type"] == "extra_forbidden":
            message = "is not a field of a payment"
        out.append({"field": field, "message": message})
    return out


def read_payment(
    raw: bytes, max_amount: Decimal, now: datetime, tolerance_s: int
) -> PaymentIn | list[dict[str, str]]:
    """The payment in ``raw``, or the errors naming each bad field (and nothing raised)."""
    try:
        document: Any = strictjson.loads(raw)
    except json.JSONDecodeError as exc:
        return [{"field": "body", "message": f"not JSON: {exc}"}]
    if not isinstance(document, dict):
        return [{"field": "body", "message": "must be a JSON object"}]
    try:
        payment = PaymentIn.model_validate(document)
    except ValidationError as exc:
        return field_errors(exc)
    problems = payment.check_limits(max_amount, now, tolerance_s)
    return [{"field": f, "message": m} for f, m in problems] if problems else payment
