"""Reading JSON another system sent: whatever the bytes, the value or a ``ValueError``.

``json.loads`` raises ``RecursionError``, not ``ValueError``, on arrays or objects nested deeper than
the interpreter's stack (``[`` × 100 000 is 100 KB): a hostile answer would end a step with an
untyped crash. Every client that reads JSON from outside reads it here.
"""

from __future__ import annotations

import json
from typing import Any


def loads(content: bytes | str, **options: Any) -> Any:
    """``json.loads(content, **options)``; a ``ValueError`` for anything that is not readable JSON."""
    try:
        return json.loads(content, **options)
    except RecursionError:
        raise ValueError("the JSON is nested too deeply to read") from None
