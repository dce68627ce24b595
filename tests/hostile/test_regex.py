"""No regular expression in ``integrations/`` takes more than linear time on hostile text.

Every module-level pattern is run over inputs built to make a backtracking matcher work hard: each
word of the pattern's own source repeated (``заявлени`` × 20 000: a ``\\w*`` after it used to scan to
the end of the run from every start), runs of spaces, dashes and digits, and the processing-instruction
flood that held the SEP client for minutes. A pattern that does not finish within the budget fails.
"""

from __future__ import annotations

import importlib
import pkgutil
import re
import signal
import time
from collections.abc import Iterator
from types import FrameType
from typing import Any

import integrations

SIZE = 20_000
# A linear pattern takes milliseconds here (the heaviest, 1C's invoice item, a third of a second);
# a quadratic one takes minutes.
BUDGET_S = 2.0


def _patterns_in(value: Any) -> Iterator[re.Pattern[Any]]:
    if isinstance(value, re.Pattern):
        yield value
    elif isinstance(value, list | tuple):
        for item in value:
            yield from _patterns_in(item)


def _all_patterns() -> list[tuple[str, re.Pattern[Any]]]:
    found: dict[tuple[str, str], re.Pattern[Any]] = {}
    for info in pkgutil.walk_packages(integrations.__path__, "integrations."):
        module = importlib.import_module(info.name)
        for name, value in vars(module).items():
            for pattern in _patterns_in(value):
                found.setdefault((f"{info.name}.{name}", str(pattern.pattern)), pattern)
    return sorted(((where, pattern) for (where, _), pattern in found.items()), key=lambda p: p[0])


def _attacks(pattern: re.Pattern[Any]) -> Iterator[str]:
    source = pattern.pattern if isinstance(pattern.pattern, str) else pattern.pattern.decode("latin-1")
    source = re.sub(r"\(\?P<\w+>|\\[a-zA-Z]", " ", source)  # not group names, not escapes
    words = sorted(set(re.findall(r"[^\W\d_]{3,}", source)), key=lambda w: (-len(w), w))
    for word in words[:8]:
        yield word * (SIZE // len(word))
        yield word + " " * SIZE
    for filler in (" ", "-", "1", "a", "я", "<?x?>", "=?"):
        yield filler * (SIZE // len(filler))
    yield '"' + "A" * SIZE


class _TooSlow(Exception):
    pass


def _alarm(signum: int, frame: FrameType | None) -> None:
    raise _TooSlow


def _too_slow(pattern: re.Pattern[Any]) -> str | None:
    """The first attack ``pattern`` does not get through within the budget, if any."""
    for attack in _attacks(pattern):
        subject: str | bytes = attack if isinstance(pattern.pattern, str) else attack.encode()
        started = time.monotonic()
        signal.setitimer(signal.ITIMER_REAL, BUDGET_S)
        try:
            for _ in pattern.finditer(subject):
                pass
        except _TooSlow:
            return f"{attack[:30]!r}… ({len(attack)} chars)"
        finally:
            signal.setitimer(signal.ITIMER_REAL, 0)
        if time.monotonic() - started >= BUDGET_S:
            return f"{attack[:30]!r}… ({len(attack)} chars)"
    return None


def test_no_pattern_in_integrations_backtracks_on_hostile_text() -> None:
    patterns = _all_patterns()
    assert len(patterns) > 30  # the walk found them
    previous = signal.signal(signal.SIGALRM, _alarm)
    try:
        slow = {where: attack for where, pattern in patterns if (attack := _too_slow(pattern))}
    finally:
        signal.signal(signal.SIGALRM, previous)
    assert slow == {}, f"over {BUDGET_S} s on hostile text: {slow}"
