"""Migrations build exactly the models, on Postgres and on SQLite (the embedded demo)."""

from __future__ import annotations

import os
from pathlib import Path

from alembic import command
from sqlalchemy import create_engine, inspect

import models
from models.migrate import alembic_config, upgrade


def test_postgres_schema_matches_the_models() -> None:
    command.check(alembic_config(os.environ["OBMEN_DATABASE_URL"]))


def test_sqlite_gets_every_register(tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path / 'obmen.db'}"
    upgrade(url)
    command.check(alembic_config(url))
    tables = set(inspect(create_engine(url)).get_table_names())
    assert {t.name for t in models.metadata.sorted_tables} <= tables
