"""The engine (URL conversion, TLS, timeouts, pooling) and the unit of work, on a real database."""

from __future__ import annotations

import datetime as dt
import ssl
from collections.abc import Iterator
from pathlib import Path
from types import SimpleNamespace
from typing import Any, NamedTuple

import pytest
from alembic.autogenerate import compare_metadata
from alembic.runtime.migration import MigrationContext
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID
from sqlalchemy import Engine, create_engine, event, inspect, text
from sqlalchemy.exc import DBAPIError, IntegrityError

from localdev import database
from taskline.db import (
    build_engine,
    database_url,
    get_engine,
    root_cert,
    sqlalchemy_url,
    sqlstate,
    ssl_context,
    transaction,
)
from taskline.errors import AccountGone, DatabaseUnavailable
from taskline.migrate import upgrade
from taskline.models import Base, User
from taskline.settings import Settings, get_settings
from tests.support.database import login_statement_timeout
from tests.support.environment import TEST_DATABASE

# URL conversion


def test_tcp_url_uses_pg8000() -> None:
    url = sqlalchemy_url("postgresql://app:p%40ss@db.internal:5433/taskline")
    assert url.drivername == "postgresql+pg8000"
    assert (url.host, url.port, url.database) == ("db.internal", 5433, "taskline")
    assert (url.username, url.password) == ("app", "p@ss")


def test_postgres_scheme_is_accepted() -> None:
    assert sqlalchemy_url("postgres://app@db/taskline").drivername == "postgresql+pg8000"


def test_unix_socket_directory_becomes_unix_sock() -> None:
    url = sqlalchemy_url("postgresql://app@/taskline?host=/var/run/postgresql")
    assert url.host is None
    assert url.port is None
    assert dict(url.query) == {"unix_sock": "/var/run/postgresql/.s.PGSQL.5432"}


def test_unix_socket_uses_the_port_in_its_name() -> None:
    url = sqlalchemy_url("postgresql://app:pw@localhost:5433/taskline?host=/tmp")
    assert dict(url.query) == {"unix_sock": "/tmp/.s.PGSQL.5433"}
    assert url.host is None
    assert url.password == "pw"


def test_host_query_parameter_naming_a_host_is_kept() -> None:
    """libpq lets ?host= name a TCP host too; it must not be silently dropped."""
    url = sqlalchemy_url("postgresql://app@/taskline?host=db.example.com")
    assert url.host == "db.example.com"
    assert "host" not in url.query
    assert "unix_sock" not in url.query


def test_other_query_parameters_pass_through() -> None:
    url = sqlalchemy_url("postgresql://app@db/taskline?application_name=x")
    assert dict(url.query) == {"application_name": "x"}


# TLS


def _settings(**values: Any) -> Settings:
    return Settings(**values)


def _ssl_context(settings: Settings) -> ssl.SSLContext | None:
    """The context the engine built from `settings` uses."""
    return ssl_context(settings.db_ssl_mode, root_cert(settings))


def test_tls_disabled_has_no_context() -> None:
    assert _ssl_context(_settings(db_ssl_mode="disable")) is None


def test_tls_require_encrypts_without_verifying() -> None:
    context = _ssl_context(_settings(db_ssl_mode="require"))
    assert context is not None
    assert context.verify_mode == ssl.CERT_NONE
    assert context.check_hostname is False


def test_tls_verify_full_checks_certificate_and_host() -> None:
    context = _ssl_context(_settings(db_ssl_mode="verify-full"))
    assert context is not None
    assert context.verify_mode == ssl.CERT_REQUIRED
    assert context.check_hostname is True
    assert context.minimum_version >= ssl.TLSVersion.TLSv1_2


def _self_signed_ca(path: Path) -> str:
    key = ec.generate_private_key(ec.SECP256R1())
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "taskline-test-ca")])
    now = dt.datetime.now(dt.UTC)
    certificate = (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(name)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - dt.timedelta(days=1))
        .not_valid_after(now + dt.timedelta(days=1))
        .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
        .sign(key, hashes.SHA256())
    )
    path.write_bytes(certificate.public_bytes(serialization.Encoding.PEM))
    return str(path)


def test_tls_root_certificate_is_trusted(tmp_path: Path) -> None:
    cafile = _self_signed_ca(tmp_path / "rds-ca.pem")
    context = _ssl_context(_settings(db_ssl_mode="verify-full", db_ssl_root_cert=cafile))
    assert context is not None
    subjects = [str(cert["subject"]) for cert in context.get_ca_certs()]
    assert any("taskline-test-ca" in subject for subject in subjects)


def test_tls_missing_root_certificate_fails_loudly(tmp_path: Path) -> None:
    with pytest.raises(FileNotFoundError):
        _ssl_context(
            _settings(db_ssl_mode="verify-full", db_ssl_root_cert=str(tmp_path / "none.pem"))
        )


class _Captured(Exception):
    pass


def test_one_ssl_context_is_reused_for_every_connection() -> None:
    engine = build_engine(_settings(db_ssl_mode="require"))
    seen: list[Any] = []

    @event.listens_for(engine, "do_connect")
    def capture(dialect: Any, record: Any, cargs: Any, cparams: dict[str, Any]) -> None:
        seen.append(cparams.get("ssl_context"))
        raise _Captured

    for _ in range(2):
        with pytest.raises(_Captured):
            engine.connect()
    engine.dispose()
    assert len(seen) == 2
    assert isinstance(seen[0], ssl.SSLContext)
    assert seen[0] is seen[1]


# The engine


def test_engine_holds_one_connection_without_a_ping_before_every_use() -> None:
    engine = build_engine(_settings())
    assert engine.pool.size() == 1  # type: ignore[attr-defined]
    assert engine.pool._max_overflow == 0  # type: ignore[attr-defined]
    assert engine.pool._pre_ping is False  # pinged only after DB_PING_AFTER_IDLE_SECONDS
    engine.dispose()


class KilledConnection(NamedTuple):
    engine: Engine
    pid: int  # the backend the server terminated while the connection sat in the pool


@pytest.fixture
def killed(admin_engine: Engine) -> Iterator[KilledConnection]:
    """An engine whose one pooled connection the server has just killed."""
    engine = build_engine(_settings(db_ping_after_idle_seconds=30))
    pid = _backend_pid(engine)
    with admin_engine.connect() as admin:
        admin.execute(text("SELECT pg_terminate_backend(:pid)"), {"pid": pid})
    yield KilledConnection(engine, pid)
    engine.dispose()


def _backend_pid(engine: Engine) -> int:
    with engine.connect() as connection:
        return int(connection.execute(text("SELECT pg_backend_pid()")).scalar_one())


def test_a_connection_idle_past_the_threshold_is_pinged_and_replaced_before_use(
    killed: KilledConnection, monkeypatch: pytest.MonkeyPatch
) -> None:
    import time

    from taskline import db

    # 31 s later, as after a Lambda container was frozen (both clocks move on).
    later = SimpleNamespace(monotonic=lambda: time.monotonic() + 31, time=lambda: time.time() + 31)
    monkeypatch.setattr(db, "time", later)
    assert _backend_pid(killed.engine) != killed.pid  # no error: replaced before the statement


def test_a_connection_used_within_the_threshold_is_not_pinged(killed: KilledConnection) -> None:
    """Recently used, the connection is trusted without a round trip: the dead one is met by the
    statement itself (which the unit of work then retries or answers 503 for)."""
    with pytest.raises(DBAPIError) as raised:
        _backend_pid(killed.engine)
    assert raised.value.connection_invalidated
    assert _backend_pid(killed.engine) != killed.pid


def test_engine_is_created_once_per_container(reload_settings: None) -> None:
    assert get_engine() is get_engine()


def test_sessions_run_in_utc_with_a_statement_timeout(reload_settings: None) -> None:
    with get_engine().connect() as connection:
        assert connection.execute(text("SHOW TimeZone")).scalar() == "UTC"
        assert connection.execute(text("SHOW statement_timeout")).scalar() == "5s"
        assert connection.execute(text("SHOW application_name")).scalar() == "taskline"


# The unit of work


def _count_users(admin_engine: Engine) -> int:
    with admin_engine.connect() as connection:
        return int(connection.execute(text("SELECT count(*) FROM users")).scalar_one())


def test_transaction_commits_when_the_block_ends(admin_engine: Engine) -> None:
    with transaction() as session:
        session.add(User(email="commit@example.com", password_hash="x"))
    assert _count_users(admin_engine) == 1


def _failing_use_case() -> None:
    with transaction() as session:
        session.add(User(email="rollback@example.com", password_hash="x"))
        session.flush()
        raise RuntimeError("use case failed")


def test_transaction_rolls_back_on_error(admin_engine: Engine) -> None:
    with pytest.raises(RuntimeError):
        _failing_use_case()
    assert _count_users(admin_engine) == 0


def _duplicate_emails() -> None:
    with transaction() as session:
        session.add(User(email="Dup@example.com", password_hash="x"))
        session.add(User(email="dup@example.com", password_hash="x"))


def test_integrity_errors_are_not_mistaken_for_an_outage(admin_engine: Engine) -> None:
    with pytest.raises(IntegrityError):
        _duplicate_emails()
    assert _count_users(admin_engine) == 0


def test_unreachable_database_is_unavailable(
    monkeypatch: pytest.MonkeyPatch, reload_settings: None
) -> None:
    monkeypatch.setenv("DATABASE_URL", "postgresql://nobody:pw@127.0.0.1:9/taskline")
    monkeypatch.setenv("DB_CONNECT_TIMEOUT_SECONDS", "1")
    with pytest.raises(DatabaseUnavailable), transaction() as session:
        session.execute(text("SELECT 1"))


def test_statement_timeout_is_unavailable(
    monkeypatch: pytest.MonkeyPatch, reload_settings: None, admin_engine: Engine
) -> None:
    monkeypatch.setenv("DB_STATEMENT_TIMEOUT_MS", "100")
    with login_statement_timeout(admin_engine, 100):
        with pytest.raises(DatabaseUnavailable), transaction() as session:
            session.execute(text("SELECT pg_sleep(5)"))
        # The pooled connection is still usable afterwards.
        with transaction() as session:
            assert session.execute(text("SELECT 1")).scalar() == 1


def test_settings_are_the_engines_source(reload_settings: None) -> None:
    url = get_engine().url
    expected = database_url(get_settings())
    assert url.render_as_string(hide_password=False) == expected.render_as_string(
        hide_password=False
    )


# Schema and migrations


def test_migrations_match_the_models(admin_engine: Engine) -> None:
    with admin_engine.connect() as connection:
        differences = compare_metadata(MigrationContext.configure(connection), Base.metadata)
    assert differences == []


def test_schema_has_the_constraints_the_contract_relies_on(admin_engine: Engine) -> None:
    inspector = inspect(admin_engine)
    assert {c["name"] for c in inspector.get_check_constraints("tasks")} == {
        "ck_tasks_status_valid",
        "ck_tasks_remind_before_range",
        "ck_tasks_one_home",  # a personal task or a list's, never both nor neither
        "ck_tasks_personal_assignee",
    }
    indexes = {ix["name"]: ix for ix in inspector.get_indexes("tasks")}
    assert indexes["ix_tasks_user_id_deadline_id"]["column_names"] == ["user_id", "deadline", "id"]
    user_indexes = {ix["name"]: ix for ix in inspector.get_indexes("users")}
    assert user_indexes["uq_users_email_lower"]["unique"]
    columns = {c["name"]: c for c in inspector.get_columns("tasks")}
    assert columns["deadline"]["type"].timezone is True  # type: ignore[attr-defined]


def test_bad_status_is_refused_by_the_database(admin_engine: Engine) -> None:
    with admin_engine.begin() as connection:
        user_id = connection.execute(
            text("INSERT INTO users (email, password_hash) VALUES ('c@x.io', 'x') RETURNING id")
        ).scalar_one()
    with pytest.raises(DBAPIError) as raised, admin_engine.begin() as connection:
        connection.execute(
            text(
                "INSERT INTO tasks (user_id, description, category, deadline, status)"
                " VALUES (:u, 'd', 'c', now(), 'Blocked')"
            ),
            {"u": user_id},
        )
    assert sqlstate(raised.value) == "23514"  # check_violation


@pytest.fixture
def scratch_engine(database_url: str) -> Iterator[Engine]:
    server = database_url  # the owner's login, not the functions' (DATABASE_URL)
    name = f"{TEST_DATABASE}_scratch"
    database.drop_database(server, name)
    url = database.ensure_database(server, name)
    engine = create_engine(sqlalchemy_url(url))
    yield engine
    engine.dispose()
    database.drop_database(server, name)


def test_migrations_upgrade_downgrade_and_upgrade_again(scratch_engine: Engine) -> None:
    from alembic import command

    from taskline.migrate import alembic_config

    upgrade(scratch_engine)
    upgrade(scratch_engine)  # idempotent
    assert {"users", "tasks", "alembic_version"} <= set(inspect(scratch_engine).get_table_names())
    config = alembic_config()
    with scratch_engine.begin() as connection:
        config.attributes["connection"] = connection
        command.downgrade(config, "base")
    assert set(inspect(scratch_engine).get_table_names()) <= {"alembic_version"}
    upgrade(scratch_engine)
    assert {"users", "tasks"} <= set(inspect(scratch_engine).get_table_names())


def test_a_row_naming_a_deleted_account_is_account_gone() -> None:
    """Any foreign-key violation on users.id, whatever the table, is AccountGone (401) where
    every unit of work ends: a token that outlived its account is never a 500 (issue 19)."""
    for insert in (
        "INSERT INTO calendar_feeds (user_id, secret_hash) VALUES (987654321, 'x')",
        "INSERT INTO notification_preferences (user_id, email_enabled, due_soon_enabled, "
        "overdue_enabled, due_soon_minutes) VALUES (987654321, true, true, true, 60)",
    ):
        with pytest.raises(AccountGone), transaction() as session:
            session.execute(text(insert))


def test_other_foreign_key_violations_are_left_alone() -> None:
    with pytest.raises(DBAPIError) as raised, transaction() as session:
        session.execute(
            text(
                "INSERT INTO task_notifications (task_id, stage, deadline) "
                "VALUES (987654321, 'due_soon', now())"
            )
        )
    assert not isinstance(raised.value, AccountGone)
