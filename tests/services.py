"""``python -m tests.services``: make sure the services the suite talks to are there.

Postgres and Redis are real (never mocked); this says clearly what is missing instead of letting
fifty tests fail on a refused connection.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from collections.abc import Callable

import psycopg
import redis


def main() -> int:
    problems = []
    db = os.environ.get("OBMEN_TEST_DATABASE_URL", "postgresql://postgres@127.0.0.1:5432/postgres")
    db = db.replace("postgresql+psycopg://", "postgresql://")
    try:
        psycopg.connect(db, connect_timeout=5).close()
    except Exception as exc:
        problems.append(f"Postgres at {db} is not reachable ({exc}); start it or set OBMEN_TEST_DATABASE_URL")
    broker = os.environ.get("OBMEN_TEST_BROKER_URL", "redis://127.0.0.1:6379")
    try:
        redis.Redis.from_url(broker, socket_connect_timeout=5).ping()
    except Exception as exc:
        problems.append(f"Redis at {broker} is not reachable ({exc}); start it or set OBMEN_TEST_BROKER_URL")
    problems += [problem for problem in (ensure_dovecot(), ensure_promtool(), ensure_chromium()) if problem]
    for line in problems:
        print(f"tests need: {line}", file=sys.stderr)
    return 1 if problems else 0


def ensure_dovecot() -> str | None:
    """The mail tests read a real IMAP server: install Dovecot when it is missing and we may."""
    from tests.harness.dovecot import PACKAGE, dovecot_binary

    if dovecot_binary() is not None:
        return None
    return apt_install(PACKAGE, "Dovecot IMAP, for the mail tests", dovecot_binary)


def ensure_chromium() -> str | None:
    """The console tests drive Debian's Chromium through Playwright (Playwright's own browser
    download is not reachable from our machines)."""
    from tests.harness.browser import PACKAGE, chromium_binary

    if chromium_binary() is not None:
        return None
    return apt_install(PACKAGE, "Chromium, for the console's browser tests", chromium_binary)


def ensure_promtool() -> str | None:
    """The monitoring tests check the alert rules with Prometheus's own ``promtool``."""
    if promtool_binary() is not None:
        return None
    return apt_install(PROMETHEUS_PACKAGE, "promtool, for the alert rules", promtool_binary)


PROMETHEUS_PACKAGE = "prometheus"


def promtool_binary() -> str | None:
    return shutil.which("promtool")


def apt_install(package: str, why: str, installed: Callable[[], str | None]) -> str | None:
    """Install a Debian package as root; the problem to report when that cannot be done."""
    if os.geteuid() != 0 or shutil.which("apt-get") is None:
        return f"{why} (Debian package {package}): install it, e.g. `sudo apt-get install {package}`"
    print(f"tests: installing {package} ({why})", file=sys.stderr)
    env = {**os.environ, "DEBIAN_FRONTEND": "noninteractive"}
    install = ["apt-get", "install", "-y", "-q", "--no-install-recommends", package]
    done = subprocess.run(install, env=env, capture_output=True, text=True)
    if done.returncode != 0:  # a fresh machine may have no package lists yet
        subprocess.run(["apt-get", "update", "-q"], env=env, capture_output=True, text=True)
        done = subprocess.run(install, env=env, capture_output=True, text=True)
    if done.returncode != 0 or installed() is None:
        return f"{why} (Debian package {package}): apt-get install failed:\n{done.stderr[-2000:]}"
    return None


if __name__ == "__main__":
    sys.exit(main())
