"""SMS to subscribers: the gateway interface, its SMSC (smsc.ru) client, typed errors, phone numbers.
No Celery here."""

from integrations.sms.client import Delivery, SmscClient, SmsGateway
from integrations.sms.errors import (
    SmsAccountRefused,
    SmsBalanceExhausted,
    SmsError,
    SmsRefused,
    SmsThrottled,
    SmsUnavailable,
)
from integrations.sms.phones import NotAMobileNumber, mobile_number

__all__ = [
    "Delivery",
    "NotAMobileNumber",
    "SmsAccountRefused",
    "SmsBalanceExhausted",
    "SmsError",
    "SmsGateway",
    "SmsRefused",
    "SmsThrottled",
    "SmsUnavailable",
    "SmscClient",
    "mobile_number",
]
