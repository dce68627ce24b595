"""Alembic environment: the URL comes from the caller (``obmen migrate``) or from settings.

Offline (``obmen db upgrade --sql``) it prints the SQL instead, for a DBA who applies it by hand.
"""

from __future__ import annotations

from alembic import context
from sqlalchemy import create_engine, pool

import models
from models.db import default_url

config = context.config
target_metadata = models.metadata


def run_offline(url: str) -> None:
    context.configure(url=url, target_metadata=target_metadata, literal_binds=True)
    with context.begin_transaction():
        context.run_migrations()


def run() -> None:
    url = config.get_main_option("sqlalchemy.url") or default_url()
    if context.is_offline_mode():
        run_offline(url)
        return
    connectable = create_engine(url, poolclass=pool.NullPool)
    with connectable.connect() as connection:
        context.configure(
            connection=connection,
            target_metadata=target_metadata,
            render_as_batch=connection.dialect.name == "sqlite",
            compare_type=True,
        )
        with context.begin_transaction():
            context.run_migrations()


run()
