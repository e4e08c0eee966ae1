"""The strict RDS Proxy stand-in (localdev.rdsproxy), and Taskline through it.

The whole suite's functions reach PostgreSQL through one stand-in (conftest: `rds_proxy`), and
every test fails if a connection was refused or a statement would have pinned. These tests
show the stand-in refuses and records what RDS Proxy does (so that check can fail), and that
what the startup options used to carry (statement timeout, UTC) still holds without them.
"""

from __future__ import annotations

import json
import logging
import os
import signal
import subprocess
import sys
from collections.abc import Iterator
from typing import Any

import pg8000.dbapi
import pg8000.native
import pytest
from sqlalchemy import Engine, create_engine, event, make_url, text

from localdev.rdsproxy import RdsProxyStandIn, pinning_reasons, proxied_url, upstream_for
from taskline import pgwire
from tests.support.api import ApiClient, task_body
from tests.support.caches import clear_caches
from tests.support.database import login_statement_timeout
from tests.support.environment import TEST_APP_ROLE
from tests.support.processes import child_environment


def _login(url: str) -> dict[str, Any]:
    parsed = make_url(url)
    return {"user": parsed.username, "database": parsed.database, "password": parsed.password}


@pytest.fixture
def own_proxy(database_url: str) -> Iterator[RdsProxyStandIn]:
    """A stand-in of this test's own, for traffic the suite-wide check must not see."""
    with RdsProxyStandIn(upstream_for(database_url)) as proxy:
        yield proxy


@pytest.mark.parametrize(
    "option",
    ["statement_timeout", "options", "search_path", "ssl_renegotiation_limit", "lock_timeout"],
)
def test_unsupported_startup_options_are_refused_like_rds_proxy(
    own_proxy: RdsProxyStandIn, database_url: str, option: str
) -> None:
    with pytest.raises(pg8000.dbapi.DatabaseError) as refused:
        pg8000.dbapi.connect(
            host="127.0.0.1",
            port=own_proxy.port,
            startup_params={option: "-c statement_timeout=5000" if option == "options" else "5"},
            **_login(database_url),
        )
    error = refused.value.args[0]
    assert error["S"] == "FATAL"
    assert error["C"] == "0A000"
    assert error["M"] == (
        f"Feature not supported: RDS Proxy currently doesn't support the option {option}"
    )
    assert [s.refused for s in own_proxy.sessions] == [f"startup option {option}"]


def test_the_supported_startup_options_are_accepted(
    own_proxy: RdsProxyStandIn, database_url: str
) -> None:
    connection = pg8000.dbapi.connect(
        host="127.0.0.1",
        port=own_proxy.port,
        application_name="probe",
        startup_params={
            "client_encoding": "UTF8",
            "DateStyle": "ISO, MDY",
            "TimeZone": "UTC",
            "extra_float_digits": "2",
        },
        **_login(database_url),
    )
    cursor = connection.cursor()
    cursor.execute("SHOW application_name")
    assert cursor.fetchone() == ["probe"]
    connection.close()
    assert own_proxy.refused == []


def test_taskline_connects_with_supported_startup_options_only(
    rds_proxy: RdsProxyStandIn, reload_settings: None
) -> None:
    from taskline.db import get_engine

    before = len(rds_proxy.sessions)
    with get_engine().connect() as connection:
        connection.execute(text("SELECT 1"))
    (session,) = rds_proxy.sessions[before:]
    assert session.refused is None
    assert set(session.parameters) == {"user", "database", "application_name", "TimeZone"}


PINNING = {
    "SET statement_timeout = 5000": "SET",
    "SET SESSION timezone = 'UTC'": "SET",
    "PREPARE probe AS SELECT 1": "prepared statement (SQL)",
    "DISCARD TEMP": "DISCARD",
    "SELECT pg_advisory_lock(42)": "session advisory lock",
    "SELECT pg_try_advisory_lock_shared(42)": "session advisory lock",
    "LISTEN taskline": "LISTEN",
    "CREATE TEMP TABLE scratch (x int)": "temporary table",
    "SELECT set_config('statement_timeout', '5000', false)": "set_config(..., false)",
}
NOT_PINNING = [
    "SET LOCAL statement_timeout = 5000",
    "SELECT pg_advisory_xact_lock(42)",
    "SELECT set_config('statement_timeout', '5000', true)",
    "SELECT 'SET x = 1; LISTEN y' AS text_not_commands",
    "-- SET in a comment\nSELECT 1",
]


@pytest.mark.parametrize(("sql", "reason"), PINNING.items())
def test_statements_that_pin_are_recorded(
    own_proxy: RdsProxyStandIn, database_url: str, sql: str, reason: str
) -> None:
    connection = pg8000.native.Connection(
        host="127.0.0.1", port=own_proxy.port, **_login(database_url)
    )
    connection.run("BEGIN")
    connection.run(sql)
    connection.run("ROLLBACK")
    connection.close()
    assert [(pin.reason, pin.statement) for pin in own_proxy.pins] == [(reason, sql)]


@pytest.mark.parametrize("sql", NOT_PINNING)
def test_transaction_scoped_statements_do_not_pin(
    own_proxy: RdsProxyStandIn, database_url: str, sql: str
) -> None:
    connection = pg8000.native.Connection(
        host="127.0.0.1", port=own_proxy.port, **_login(database_url)
    )
    connection.run("BEGIN")
    connection.run(sql)
    connection.run("ROLLBACK")
    connection.close()
    assert own_proxy.pins == []


def test_a_cursor_with_hold_pins() -> None:
    # Parsed only: a holdable cursor outlives the transaction that declares it.
    assert pinning_reasons("DECLARE c CURSOR WITH HOLD FOR SELECT 1") == ["cursor WITH HOLD"]
    assert pinning_reasons("DECLARE c CURSOR FOR SELECT 1") == []


def test_named_prepared_statements_pin_and_pgwire_uses_the_unnamed_one(
    own_proxy: RdsProxyStandIn, database_url: str
) -> None:
    """pg8000's native prepare() names its statement (a Parse with a name): that pins. pgwire,
    Taskline's driver, pipelines Parse/Bind/Execute on the unnamed statement: that does not."""
    native = pg8000.native.Connection(host="127.0.0.1", port=own_proxy.port, **_login(database_url))
    statement = native.prepare("SELECT CAST(:x AS int) + 1")
    assert statement.run(x=1) == [[2]]
    native.close()
    assert [pin.reason for pin in own_proxy.pins] == ["named prepared statement"]

    pins_before = len(own_proxy.pins)
    connection = pgwire.connect(host="127.0.0.1", port=own_proxy.port, **_login(database_url))
    cursor = connection.cursor()
    cursor.execute("SELECT %s::int + 1", (1,))
    assert cursor.fetchone() == [2]
    connection.close()
    assert own_proxy.pins[pins_before:] == []


def test_a_slow_statement_is_still_cut_off_through_the_proxy_and_answered_503(
    user: ApiClient,
    admin_engine: Engine,
    rds_proxy: RdsProxyStandIn,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """No startup option, no SET: the timeout is the login's role default, and still fires."""
    task = user.post("/tasks", json_body=task_body()).json()
    monkeypatch.setenv("DB_STATEMENT_TIMEOUT_MS", "300")
    with login_statement_timeout(admin_engine, 300), admin_engine.connect() as blocker:
        blocker.execute(text("SELECT 1 FROM tasks WHERE id = :id FOR UPDATE"), {"id": task["id"]})
        answer = user.patch(f"/tasks/{task['id']}", json_body={"status": "Done"})
        blocker.rollback()
    assert answer.status == 503, answer.body
    assert answer.header("Content-Type") == "application/problem+json"
    assert rds_proxy.refused == []


def test_timestamps_are_utc_even_when_the_role_default_says_otherwise(
    user: ApiClient, admin_engine: Engine
) -> None:
    """TimeZone=UTC is one of the startup options RDS Proxy accepts: the session is in UTC even
    if a role default (or the server's) names another zone."""
    from taskline.db import get_engine

    with admin_engine.begin() as connection:
        database = connection.execute(text("SELECT current_database()")).scalar_one()
        connection.exec_driver_sql(
            f'ALTER ROLE "{TEST_APP_ROLE}" IN DATABASE "{database}" SET timezone = \'Asia/Kolkata\''
        )
    clear_caches()
    try:
        created = user.post("/tasks", json_body=task_body(deadline="2030-01-15T09:00:00+05:30"))
        assert created.status == 201, created.body
        body = created.json()
        assert body["deadline"] == "2030-01-15T03:30:00Z"
        assert body["created_at"].endswith("Z")
        with get_engine().connect() as connection:
            assert connection.execute(text("SHOW TimeZone")).scalar() == "UTC"
    finally:
        with admin_engine.begin() as connection:
            connection.exec_driver_sql(
                f'ALTER ROLE "{TEST_APP_ROLE}" IN DATABASE "{database}" SET timezone = \'UTC\''
            )
        clear_caches()


def test_a_connection_refused_for_its_configuration_is_loud_and_not_retried(
    user: ApiClient,
    own_proxy: RdsProxyStandIn,
    database_url: str,
    monkeypatch: pytest.MonkeyPatch,
    caplog: pytest.LogCaptureFixture,
) -> None:
    """A build that sent statement_timeout as a startup option (as Taskline once did): RDS Proxy
    refuses every connection. Each request answers 500 (counted by the 5xx alarm) after one
    attempt, and the log says why."""
    from taskline.db import get_engine

    monkeypatch.setenv("DATABASE_URL", proxied_url(database_url, own_proxy.port))
    clear_caches()
    try:

        @event.listens_for(get_engine(), "do_connect")
        def old_startup_options(_d: Any, _r: Any, _a: Any, cparams: dict[str, Any]) -> None:
            cparams["startup_params"] = {**cparams["startup_params"], "statement_timeout": "5000"}

        caplog.set_level(logging.ERROR)
        answer = user.get("/tasks")
        assert answer.status == 500, answer.body
        assert b"statement_timeout" not in answer.body  # nothing of the server's words leaks
        assert [s.refused for s in own_proxy.sessions] == ["startup option statement_timeout"]
        logged = [r for r in caplog.records if "refused the connection" in r.getMessage()]
        assert logged
        assert logged[0].__dict__.get("sqlstate") == "0A000"
    finally:
        clear_caches()


def test_migrations_and_role_provisioning_through_the_proxy(
    own_proxy: RdsProxyStandIn, database_url: str
) -> None:
    """What the migration function runs through RDS Proxy: Alembic upgrade (its transaction-level
    advisory lock and SET LOCAL statement_timeout) and the app role's provisioning. None of it
    pins, measured here (the suite applies migrations beside the proxy, on the direct URL)."""
    from localdev import database
    from taskline.db import sqlalchemy_url
    from taskline.migrate import provision_app_role, upgrade

    name = f"taskline_proxy_migrations_{os.getpid()}"
    database.drop_database(database_url, name)
    database.ensure_database(database_url, name)
    target = make_url(database_url).set(database=name).render_as_string(hide_password=False)
    engine = create_engine(sqlalchemy_url(proxied_url(target, own_proxy.port)))
    try:
        upgrade(engine, statement_timeout_ms=60_000)
        provision_app_role(engine, "taskline_proxy_probe", "probe-Password-0123456789", 4000)
        with engine.connect() as connection:
            rows = connection.execute(
                text(
                    "SELECT unnest(setconfig) FROM pg_db_role_setting s "
                    "JOIN pg_roles r ON r.oid = s.setrole WHERE r.rolname = :role"
                ),
                {"role": "taskline_proxy_probe"},
            ).scalars()
            assert set(rows) == {
                "statement_timeout=4000",
                "TimeZone=UTC",
                "idle_session_timeout=60000",  # idle sessions end: the database can pause
            }
    finally:
        engine.dispose()
        database.drop_database(database_url, name)
        drop = create_engine(sqlalchemy_url(database_url), isolation_level="AUTOCOMMIT")
        with drop.connect() as connection:
            connection.exec_driver_sql('DROP ROLE IF EXISTS "taskline_proxy_probe"')
        drop.dispose()
    assert own_proxy.refused == []
    assert own_proxy.pins == []


def test_the_command_line_proxy_serves_make_run(database_url: str) -> None:
    """`python -m localdev.rdsproxy` prints the DATABASE_URL to use; stopped, what it saw."""
    process = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "localdev.rdsproxy",
            "--upstream",
            database_url,
            "--listen",
            "127.0.0.1:0",
            "--database",
            make_url(database_url).database or "postgres",
        ],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        env=child_environment(PYTHONUNBUFFERED="1"),
    )
    try:
        assert process.stdout is not None
        line = process.stdout.readline().strip()
        assert line.startswith("DATABASE_URL="), line
        url = line.removeprefix("DATABASE_URL=")
        connection = pg8000.native.Connection(
            host="127.0.0.1", port=make_url(url).port, **_login(url)
        )
        assert connection.run("SELECT 1") == [[1]]
        connection.run("SET work_mem = '8MB'")
        connection.close()
    finally:
        process.send_signal(signal.SIGTERM)
        _, errors = process.communicate(timeout=10)
    assert process.returncode == 0, errors
    assert "would be pinned (SET)" in errors
    assert "1 connections, 0 refused, 1 pinning statements" in errors


def test_pinning_reasons_read_statements_not_literals() -> None:
    assert pinning_reasons("SELECT 1; SET x = 1") == ["SET"]
    assert pinning_reasons("SELECT $$LISTEN x$$") == []
    assert pinning_reasons("SELECT x INTO TEMP t FROM y") == ["temporary table"]
    assert json.dumps(pinning_reasons("")) == "[]"
