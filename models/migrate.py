"""``obmen migrate``: Alembic without an ini file, so the package carries its own migrations.

Flows add their migrations as branches off the foundation revision; ``upgrade heads`` applies all.
"""

from __future__ import annotations

import sys
from pathlib import Path

from alembic import command
from alembic.config import Config

from models.db import default_url

MIGRATIONS = Path(__file__).parent / "migrations"


def alembic_config(url: str | None = None) -> Config:
    # Alembic's default stdout is the one at its import; print where the caller's output goes now.
    cfg = Config(stdout=sys.stdout)
    cfg.set_main_option("script_location", str(MIGRATIONS))
    # ConfigParser interpolation would read a '%' in a password as a placeholder.
    cfg.set_main_option("sqlalchemy.url", (url or default_url()).replace("%", "%%"))
    return cfg


def upgrade(url: str | None = None, sql: bool = False, since: str | None = None) -> None:
    """Upgrade to the latest schema; ``sql``: print the SQL instead (offline), from ``since`` on."""
    command.upgrade(alembic_config(url), f"{since}:heads" if since else "heads", sql=sql)


def current(url: str | None = None) -> None:
    """Print the revision(s) the register store is at."""
    command.current(alembic_config(url), verbose=True)


def history(url: str | None = None) -> None:
    """Print every revision, newest first, marking the current one."""
    command.history(alembic_config(url), verbose=False, indicate_current=True)


def revision(
    message: str, url: str | None = None, head: str = "heads", branch_label: str | None = None
) -> None:
    """Developer helper: autogenerate a migration against a database at the current heads."""
    command.revision(
        alembic_config(url), message=message, autogenerate=True, head=head, branch_label=branch_label
    )
