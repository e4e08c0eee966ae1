"""Applying Alembic migrations from code (local server, tests, deploy-time migrations)."""

from __future__ import annotations

from alembic import command
from alembic.config import Config
from sqlalchemy import Engine


def alembic_config() -> Config:
    config = Config()
    config.set_main_option("script_location", "taskline:migrations")
    return config


def upgrade(engine: Engine, revision: str = "head") -> None:
    """Bring the database to `revision`; idempotent, and serialised by a transaction lock."""
    config = alembic_config()
    with engine.begin() as connection:
        # Two deploys or servers migrating at once wait for each other instead of colliding.
        connection.exec_driver_sql("SELECT pg_advisory_xact_lock(4242001)")
        config.attributes["connection"] = connection
        command.upgrade(config, revision)
