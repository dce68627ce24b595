"""``obmen migrate``: Alembic without an ini file, so the package carries its own migrations.

Flows add their migrations as branches off the foundation revision; ``upgrade heads`` applies all.
"""

from __future__ import annotations

from pathlib import Path

from alembic import command
from alembic.config import Config

from models.db import default_url

MIGRATIONS = Path(__file__).parent / "migrations"


def alembic_config(url: str | None = None) -> Config:
    cfg = Config()
    cfg.set_main_option("script_location", str(MIGRATIONS))
    # ConfigParser interpolation would read a '%' in a password as a placeholder.
    cfg.set_main_option("sqlalchemy.url", (url or default_url()).replace("%", "%%"))
    return cfg


def upgrade(url: str | None = None) -> None:
    command.upgrade(alembic_config(url), "heads")


def revision(
    message: str, url: str | None = None, head: str = "heads", branch_label: str | None = None
) -> None:
    """Developer helper: autogenerate a migration against a database at the current heads."""
    command.revision(
        alembic_config(url), message=message, autogenerate=True, head=head, branch_label=branch_label
    )
