"""JSON with one meaning per document, for everything obmen reads from outside.

``json.loads`` lets the last of two equal keys win (``{"amount": "10.00", "amount": "20.00"}`` reads
as 20.00), accepts ``NaN`` and ``Infinity``, guesses UTF-16 and UTF-32 from the first bytes, and fails
with errors of other types on 5,000-digit numbers or deep nesting. :func:`loads` refuses each of
these with a :class:`json.JSONDecodeError`, so every caller has one error to turn into a 422.
"""

from __future__ import annotations

import json
from typing import Any


def _unique_keys(pairs: list[tuple[str, Any]]) -> dict[str, Any]:
    document: dict[str, Any] = {}
    for key, value in pairs:
        if key in document:
            raise ValueError(f"the key {key[:100]!r} appears twice")
        document[key] = value
    return document


def _no_constant(name: str) -> Any:
    raise ValueError(f"{name} is not a JSON number")


def loads(raw: bytes | str) -> Any:
    """The document in ``raw`` (UTF-8 when bytes); ``json.JSONDecodeError`` for anything ambiguous."""
    try:
        text = raw.decode("utf-8") if isinstance(raw, bytes) else raw
        return json.loads(text, object_pairs_hook=_unique_keys, parse_constant=_no_constant)
    except json.JSONDecodeError:
        raise
    except (ValueError, RecursionError) as exc:
        # UnicodeDecodeError is a ValueError; so are a repeated key, NaN and an over-long number.
        message = "nested too deeply" if isinstance(exc, RecursionError) else str(exc)
        raise json.JSONDecodeError(message, "", 0) from exc
