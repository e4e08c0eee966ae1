"""Alembic environment: runs against the connection handed in, or DATABASE_URL."""

from __future__ import annotations

from alembic import context

from taskline.db import build_engine
from taskline.models import Base
from taskline.settings import get_settings

config = context.config
target_metadata = Base.metadata


def run_migrations_online() -> None:
    connection = config.attributes.get("connection")
    if connection is not None:
        context.configure(connection=connection, target_metadata=target_metadata)
        with context.begin_transaction():
            context.run_migrations()
        return
    engine = build_engine(get_settings())
    with engine.connect() as connection:
        context.configure(connection=connection, target_metadata=target_metadata)
        with context.begin_transaction():
            context.run_migrations()
    engine.dispose()


if context.is_offline_mode():
    raise SystemExit("Taskline migrations run online only (they need a database connection).")
run_migrations_online()
