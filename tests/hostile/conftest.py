"""The hostile-answer tests append ``exchange_log`` rows and read back only their own newest one, so
they skip the truncation of every register before each test (seconds on a loaded machine)."""

from __future__ import annotations

from collections.abc import Iterator

import pytest


@pytest.fixture(autouse=True)
def clean_stores() -> Iterator[None]:
    yield
