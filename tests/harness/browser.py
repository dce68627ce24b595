"""Debian's Chromium for Playwright: ``tests/services.py`` installs the package; Playwright launches it
by path, since its own browser download is not reachable from our machines."""

from __future__ import annotations

import os
import shutil

PACKAGE = "chromium"


def chromium_binary() -> str | None:
    return shutil.which("chromium") or next(
        (p for p in ("/usr/bin/chromium", "/usr/lib/chromium/chromium") if os.path.exists(p)), None
    )
