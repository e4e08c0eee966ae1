"""Applying Alembic migrations from code (local server, tests, deploy-time migrations)."""

from __future__ import annotations

import base64
import re

from alembic import command
from alembic.config import Config
from alembic.runtime.migration import MigrationContext
from alembic.script import ScriptDirectory
from alembic.util.exc import CommandError
from sqlalchemy import Engine, text

# Role names the migration function will create: plain lower-case identifiers only.
_ROLE_NAME = re.compile(r"[a-z_][a-z0-9_]{0,62}")
_SCRAM_ITERATIONS = 4096  # PostgreSQL's default for scram-sha-256


def alembic_config() -> Config:
    config = Config()
    config.set_main_option("script_location", "taskline:migrations")
    return config


def code_head() -> str:
    """The newest revision this code knows (the single head of the migration history)."""
    head = ScriptDirectory.from_config(alembic_config()).get_current_head()
    if head is None:  # pragma: no cover - the history always has a revision
        raise RuntimeError("no migrations found")
    return head


def database_revision(engine: Engine) -> str | None:
    """The revision the database is at (None for an empty database)."""
    with engine.connect() as connection:
        return MigrationContext.configure(connection).get_current_revision()


def is_known_revision(revision: str) -> bool:
    """True if this code's migration history contains `revision`.

    A database ahead of the code (a newer deploy migrated it, then CloudFormation rolled the
    code back) has a revision the older code does not know.
    """
    try:
        return ScriptDirectory.from_config(alembic_config()).get_revision(revision) is not None
    except CommandError:
        return False


def upgrade(
    engine: Engine, revision: str = "head", statement_timeout_ms: int | None = None
) -> None:
    """Bring the database to `revision`; idempotent, and serialised by a transaction lock.

    Everything runs in one transaction (PostgreSQL DDL is transactional): a failing migration
    leaves the database as it was. `statement_timeout_ms` overrides the connection's statement
    timeout for this transaction only (deploy-time migrations may run longer than requests).
    """
    config = alembic_config()
    with engine.begin() as connection:
        if statement_timeout_ms is not None:
            connection.exec_driver_sql(f"SET LOCAL statement_timeout = {int(statement_timeout_ms)}")
        # Two deploys or servers migrating at once wait for each other instead of colliding.
        connection.exec_driver_sql("SELECT pg_advisory_xact_lock(4242001)")
        config.attributes["connection"] = connection
        command.upgrade(config, revision)


def scram_verifier(password: str) -> str:
    """A PostgreSQL SCRAM-SHA-256 verifier for `password`, so the password itself is never
    part of an SQL statement (nor of any server log of one)."""
    from scramp import ScramMechanism

    salt, stored_key, server_key, iterations = ScramMechanism("SCRAM-SHA-256").make_auth_info(
        password, iteration_count=_SCRAM_ITERATIONS
    )

    def b64(raw: bytes) -> str:
        return base64.b64encode(raw).decode()

    return f"SCRAM-SHA-256${iterations}:{b64(salt)}${b64(stored_key)}:{b64(server_key)}"


def set_session_defaults(
    engine: Engine,
    role: str | None,
    statement_timeout_ms: int,
    idle_session_timeout_seconds: int | None = None,
) -> None:
    """Make every new session of `role` (None: the engine's own login) in this database start in
    UTC with `statement_timeout_ms` as its statement timeout.

    These are role defaults (`ALTER ROLE ... IN DATABASE ... SET`), applied by the server when a
    session starts: nothing goes in the startup packet (RDS Proxy refuses statement_timeout
    there) and no SET runs on the session (RDS Proxy would pin it to one database connection).
    A transaction that needs another bound uses SET LOCAL, which pins nothing.

    The server also ends a session idle (outside a transaction) for
    `idle_session_timeout_seconds` (None: DB_IDLE_SESSION_TIMEOUT_SECONDS' default; 0: never),
    so an idle Lambda container's pooled connection cannot keep Aurora Serverless v2 from pausing:
    it pauses only once no user connection is open.
    https://docs.aws.amazon.com/AmazonRDS/latest/AuroraUserGuide/aurora-serverless-v2-auto-pause.html#auto-pause-how-it-works
    https://www.postgresql.org/docs/16/runtime-config-client.html#GUC-IDLE-SESSION-TIMEOUT
    """
    if idle_session_timeout_seconds is None:
        from taskline.settings import Settings

        field = Settings.model_fields["db_idle_session_timeout_seconds"]
        idle_session_timeout_seconds = int(field.default)
    idle_ms = int(idle_session_timeout_seconds) * 1000
    if idle_ms < 0:
        raise ValueError("the idle session timeout cannot be negative")
    if role is not None and not _ROLE_NAME.fullmatch(role):
        raise ValueError("the role name must be a lower-case SQL identifier")
    timeout = int(statement_timeout_ms)
    if timeout < 0:
        raise ValueError("the statement timeout cannot be negative")
    target = "CURRENT_USER" if role is None else f'"{role}"'
    with engine.begin() as connection:
        database = connection.execute(text("SELECT current_database()")).scalar_one()
        database_name = str(database).replace('"', '""')
        scope = f'{target} IN DATABASE "{database_name}"'
        connection.exec_driver_sql(f"ALTER ROLE {scope} SET statement_timeout = {timeout}")
        connection.exec_driver_sql(f"ALTER ROLE {scope} SET timezone = 'UTC'")
        connection.exec_driver_sql(f"ALTER ROLE {scope} SET idle_session_timeout = {idle_ms}")


def provision_app_role(
    engine: Engine,
    username: str,
    password: str | None,
    statement_timeout_ms: int | None = None,
    idle_session_timeout_seconds: int | None = None,
) -> None:
    """Create or update the login role the API functions use: data access only, no DDL.

    Idempotent. The role may read and write rows of the application's tables (and use their
    sequences), read but not change `alembic_version`, and create nothing: schema changes
    belong to the migrating role. Tables created by later migrations are covered by default
    privileges of the migrating role. With `statement_timeout_ms`, the role's sessions get it
    (and UTC) as defaults (`set_session_defaults`).

    `password` None: the role logs in with IAM database authentication instead (the starter
    profile): no password, and membership of `rds_iam` where the server has that role (RDS and
    Aurora do; a local server does not).
    https://docs.aws.amazon.com/AmazonRDS/latest/AuroraUserGuide/UsingWithRDS.IAMDBAuth.DBAccounts.html
    """
    if not _ROLE_NAME.fullmatch(username):
        raise ValueError("the application role name must be a lower-case SQL identifier")
    if password is not None and not password:
        raise ValueError("the application role needs a password")
    role = f'"{username}"'
    # The verifier is base64 and '$:' only, so it is a safe literal.
    login = "PASSWORD NULL" if password is None else f"PASSWORD '{scram_verifier(password)}'"
    with engine.begin() as connection:
        connection.exec_driver_sql("SELECT pg_advisory_xact_lock(4242002)")
        exists = connection.execute(
            text("SELECT 1 FROM pg_roles WHERE rolname = :name"), {"name": username}
        ).scalar()
        if not exists:
            connection.exec_driver_sql(f"CREATE ROLE {role} LOGIN")
        connection.exec_driver_sql(
            f"ALTER ROLE {role} WITH LOGIN NOSUPERUSER NOCREATEDB NOCREATEROLE NOINHERIT {login}"
        )
        rds_iam = connection.execute(
            text("SELECT 1 FROM pg_roles WHERE rolname = 'rds_iam'")
        ).scalar()
        if rds_iam:
            # A member of rds_iam can log in with a token only: a role with a password (a
            # stack moved off starter) must leave it, or its password is refused.
            verb = "GRANT rds_iam TO" if password is None else "REVOKE rds_iam FROM"
            connection.exec_driver_sql(f"{verb} {role}")
        database = connection.execute(text("SELECT current_database()")).scalar_one()
        database_name = str(database).replace('"', '""')
        for statement in (
            f'GRANT CONNECT ON DATABASE "{database_name}" TO {role}',
            f"GRANT USAGE ON SCHEMA public TO {role}",
            f"GRANT SELECT, INSERT, UPDATE, DELETE ON ALL TABLES IN SCHEMA public TO {role}",
            f"GRANT USAGE, SELECT ON ALL SEQUENCES IN SCHEMA public TO {role}",
            f"REVOKE INSERT, UPDATE, DELETE, TRUNCATE ON alembic_version FROM {role}",
            "ALTER DEFAULT PRIVILEGES IN SCHEMA public "
            f"GRANT SELECT, INSERT, UPDATE, DELETE ON TABLES TO {role}",
            f"ALTER DEFAULT PRIVILEGES IN SCHEMA public GRANT USAGE, SELECT ON SEQUENCES TO {role}",
        ):
            connection.exec_driver_sql(statement)
    if statement_timeout_ms is not None:
        set_session_defaults(engine, username, statement_timeout_ms, idle_session_timeout_seconds)
