"""PHP-style query strings (``fields[TITLE]=x&DOCUMENT_ID[0]=crm``): how ``batch`` carries commands."""

from __future__ import annotations

from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from decimal import Decimal
from typing import Any
from urllib.parse import quote


@dataclass(frozen=True)
class Ref:
    """A reference to an earlier command's result inside a batch: ``$result[key][field]...``."""

    key: str
    path: tuple[str, ...] = ()
    # Text before the reference, e.g. "DEAL_" for a business-process document id.
    prefix: str = ""

    def render(self) -> str:
        return quote(self.prefix, safe="") + f"$result[{self.key}]" + "".join(f"[{p}]" for p in self.path)


def _scalar(value: Any) -> str:
    if isinstance(value, Ref):
        # Bitrix substitutes references in the raw command string, so they stay unencoded.
        return value.render()
    if value is None:
        return ""
    if isinstance(value, bool):
        return "Y" if value else "N"
    if isinstance(value, Decimal):
        return format(value, "f")
    return quote(str(value), safe="")


def _pairs(value: Any, name: str) -> Iterator[str]:
    if isinstance(value, Mapping):
        for key, item in value.items():
            yield from _pairs(item, f"{name}[{key}]")
    elif isinstance(value, list | tuple):
        for index, item in enumerate(value):
            yield from _pairs(item, f"{name}[{index}]")
    else:
        yield f"{quote(name, safe='[]')}={_scalar(value)}"


def build_query(params: Mapping[str, Any]) -> str:
    return "&".join(pair for key, value in params.items() for pair in _pairs(value, str(key)))


def command(method: str, params: Mapping[str, Any] | None = None) -> str:
    """One batch command: ``method?query``."""
    query = build_query(params or {})
    return f"{method}?{query}" if query else method
