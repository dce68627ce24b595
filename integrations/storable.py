"""What the register store can hold: one rule for task arguments, HTTP input and the record of a bad message.

Postgres refuses a NUL character in text and in JSON, a lone UTF-16 surrogate (JSON can carry
``"\\ud800"``, UTF-8 cannot), an integer beyond 64 bits in a ``bigint`` column, and NaN or an
infinity in JSON. :func:`storable_text` and :func:`storable_int` say so for one value (the gateway's
edge types use them for every parameter); :func:`refuse_unstorable` names the first such part of a
whole document (a task's arguments, a JSON body) before any step runs. The record of a bad message
must hold whatever the message held: :func:`escaped` turns any value into JSON Postgres accepts,
escaped and clipped to a bounded size.
"""

from __future__ import annotations

import json
import math
from collections import deque
from typing import Any

BIGINT_MIN, BIGINT_MAX = -(2**63), 2**63 - 1

# Bounds of one escaped value: a string, the items of a list or an object, nesting, the whole JSON.
TEXT_LIMIT = 4000
ITEMS_LIMIT = 100
DEPTH_LIMIT = 16
JSON_LIMIT = 64_000


def storable_text(value: str, where: str = "text") -> str:
    """``value`` when Postgres can store it as text; ``ValueError`` naming ``where`` otherwise."""
    if "\x00" in value:
        raise ValueError(f"{where}: text holds a NUL character")
    if not value.isascii():
        try:
            value.encode("utf-8")
        except UnicodeEncodeError:
            raise ValueError(f"{where}: text holds a lone surrogate, not a character") from None
    return value


def storable_int(value: int, where: str = "integer") -> int:
    """``value`` when it fits a ``bigint``; ``ValueError`` naming ``where`` otherwise."""
    if not BIGINT_MIN <= value <= BIGINT_MAX:
        raise ValueError(f"{where}: integer beyond 64 bits")
    return value


def refuse_unstorable(value: Any, path: str = "kwargs") -> None:
    """Raise ``ValueError`` naming a part of ``value`` the register store cannot hold.

    Iterative, so that JSON nested as deep as a decoder allows cannot exhaust the stack.
    """
    pending: deque[tuple[str, Any]] = deque([(path, value)])
    while pending:
        where, item = pending.popleft()
        if isinstance(item, str):
            storable_text(item, where)
        elif isinstance(item, bool):
            continue
        elif isinstance(item, int):
            storable_int(item, where)
        elif isinstance(item, float):
            if not math.isfinite(item):
                raise ValueError(f"{where}: {item} is not a number JSON can hold")
        elif isinstance(item, dict):
            for key, inner in item.items():
                pending.append((f"{where} key", key))
                pending.append((f"{where}.{escaped_text(str(key), 100)}", inner))
        elif isinstance(item, list | tuple):
            pending.extend((f"{where}[{index}]", inner) for index, inner in enumerate(item))


def escaped_text(value: str | bytes, limit: int = TEXT_LIMIT) -> str:
    """``value`` as Postgres text of at most ``limit`` characters: NUL and lone surrogates escaped.

    Bytes are read as UTF-8, what is not UTF-8 escaped. What was cut is said at the end
    (``… [5000000 characters]``: the original length).
    """
    if isinstance(value, bytes):
        head, size = value[:limit].decode("utf-8", "backslashreplace"), f"{len(value)} bytes"
    else:
        head, size = value[:limit], f"{len(value)} characters"
    if not head.isascii() or "\x00" in head:
        head = head.encode("utf-8", "backslashreplace").decode("utf-8").replace("\x00", "\\u0000")
    if len(value) <= limit and len(head) <= limit:
        return head
    marker = f"… [{size}]"
    return head[: max(limit - len(marker), 0)] + marker


def escaped(value: Any) -> Any:
    """``value`` as JSON Postgres accepts, whatever it holds, at most about ``JSON_LIMIT`` characters.

    Strings are escaped and clipped; long lists and objects are cut with a note of how many items
    were left out, nesting below ``DEPTH_LIMIT`` with a note; a value JSON has no type for is
    kept as its ``repr``.
    Past ``JSON_LIMIT`` the whole value becomes its clipped JSON text.
    """
    result = _escaped(value, 0)
    text = json.dumps(result, ensure_ascii=False)
    if len(text) <= JSON_LIMIT:
        return result
    return {"clipped_json": escaped_text(text, JSON_LIMIT)}


def _escaped(value: Any, depth: int) -> Any:
    if value is None or isinstance(value, bool):
        return value
    if isinstance(value, int):
        # JSON keeps an integer of any size, but Python writes no more than 4300 digits of one.
        return value if value.bit_length() <= 1000 else f"an integer of {value.bit_length()} bits"
    if isinstance(value, float):
        return value if math.isfinite(value) else str(value)
    if isinstance(value, str):
        return escaped_text(value)
    if isinstance(value, bytes):
        return escaped_text(value)
    if not isinstance(value, dict | list | tuple):
        return escaped_text(repr(value))
    if depth >= DEPTH_LIMIT:
        return f"… nested deeper than {DEPTH_LIMIT} levels"
    if isinstance(value, dict):
        items = list(value.items())
        kept = {escaped_text(str(k), 200): _escaped(v, depth + 1) for k, v in items[:ITEMS_LIMIT]}
        if len(items) > ITEMS_LIMIT:
            kept["…"] = f"{len(items) - ITEMS_LIMIT} more items"
        return kept
    kept_items = [_escaped(item, depth + 1) for item in value[:ITEMS_LIMIT]]
    if len(value) > ITEMS_LIMIT:
        kept_items.append(f"… {len(value) - ITEMS_LIMIT} more items")
    return kept_items
