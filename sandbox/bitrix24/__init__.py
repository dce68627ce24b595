"""The Bitrix24 emulator: the REST API of an inbound webhook (``emulator``) and the portal's
outbound events (``events``)."""

from sandbox.bitrix24.emulator import WEBHOOK_CODE, Bitrix24Emulator, parse_php_query

__all__ = ["WEBHOOK_CODE", "Bitrix24Emulator", "parse_php_query"]
