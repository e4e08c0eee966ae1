"""Database round trips per request, counted on the socket, and recovery from dropped connections.

A round trip is a turn of the conversation with PostgreSQL: the function sends, then waits for
the answer. Reads cost one (no BEGIN/COMMIT, no ping), writes three (BEGIN, the statement,
COMMIT). A pooled connection the server dropped is replaced without the caller noticing: a
read runs once more on a new one, a write begins again on a new one when BEGIN finds it dead,
and a connection idle longer than DB_PING_AFTER_IDLE_SECONDS is pinged before use.
"""

from __future__ import annotations

from typing import Any

import pytest
from sqlalchemy import Engine, text

from taskline.repositories import task_repository
from tests.support.api import ApiClient, task_body
from tests.support.wire import Wire, listen


@pytest.fixture
def wire(user: ApiClient, monkeypatch: pytest.MonkeyPatch) -> Wire:
    """What the functions send to PostgreSQL from now on (the `user` fixture's are done)."""
    assert user.get("/users/me").status == 200  # the pooled connection exists
    return listen(monkeypatch)


def _task_id(user: ApiClient) -> int:
    created = user.post("/tasks", json_body=task_body())
    assert created.status == 201
    task_id: int = created.json()["id"]
    return task_id


def test_a_read_by_id_is_one_round_trip_and_one_statement(user: ApiClient, wire: Wire) -> None:
    task_id = _task_id(user)
    wire.clear()
    assert user.get(f"/tasks/{task_id}").status == 200
    assert wire.round_trips == 1
    assert len(wire.statements) == 1
    assert wire.statements[0].startswith("SELECT")


@pytest.mark.parametrize("path", ["/tasks", "/tasks?limit=2&status=Done"])
def test_other_reads_are_one_round_trip(user: ApiClient, wire: Wire, path: str) -> None:
    _task_id(user)
    wire.clear()
    assert user.get(path).status == 200
    assert (wire.round_trips, len(wire.statements)) == (1, 1)


def test_an_account_read_checks_the_sign_in_first(user: ApiClient, wire: Wire) -> None:
    """Account routes refuse ended sign-ins: one round trip for that check, one for the read."""
    wire.clear()
    assert user.get("/users/me").status == 200
    assert wire.round_trips == 2
    assert wire.statements[0].startswith("SELECT auth_sessions.id")


def test_a_write_is_begin_statement_commit(user: ApiClient, wire: Wire) -> None:
    wire.clear()
    assert user.post("/tasks", json_body=task_body()).status == 201
    assert wire.round_trips == 3
    assert [s.split()[0].upper() for s in wire.statements] == ["BEGIN", "INSERT", "COMMIT"]


def test_a_failed_write_is_rolled_back(user: ApiClient, wire: Wire, admin_engine: Engine) -> None:
    task_id = _task_id(user)
    wire.clear()
    assert user.patch(f"/tasks/{task_id + 1000}", json_body={"status": "Done"}).status == 404
    assert user.get(f"/tasks/{task_id}").json()["status"] == "To Do"
    with admin_engine.connect() as connection:
        count = connection.execute(text("SELECT count(*) FROM tasks")).scalar_one()
    assert count == 1


def _drop_the_functions_connections(admin_engine: Engine) -> None:
    """What a database restart or failover does to a warm container's pooled connection."""
    with admin_engine.connect() as connection:
        dropped = connection.execute(
            text(
                "SELECT count(pg_terminate_backend(pid)) FROM pg_stat_activity"
                " WHERE application_name = 'taskline' AND datname = current_database()"
            )
        ).scalar_one()
    assert dropped >= 1


def test_reads_survive_a_dropped_connection(user: ApiClient, admin_engine: Engine) -> None:
    task_id = _task_id(user)
    _drop_the_functions_connections(admin_engine)
    response = user.get(f"/tasks/{task_id}")
    assert response.status == 200, response.body
    assert response.json()["id"] == task_id


def test_login_survives_a_dropped_connection(client: ApiClient, admin_engine: Engine) -> None:
    email = client.sign_up()
    _drop_the_functions_connections(admin_engine)
    assert client.login(email)


def test_a_write_on_a_just_dropped_connection_begins_again_on_a_new_one(
    user: ApiClient, admin_engine: Engine
) -> None:
    """Within DB_PING_AFTER_IDLE_SECONDS of its last use nothing pings the connection, so a
    write finds it dead at BEGIN, before anything of the write was sent: it begins once more
    on a fresh connection, and the task is written exactly once."""
    _task_id(user)
    _drop_the_functions_connections(admin_engine)
    created = user.post("/tasks", json_body=task_body(description="kept"))
    assert created.status == 201, created.body
    descriptions = [task["description"] for task in user.get("/tasks").json()]
    assert descriptions.count("kept") == 1


def test_a_write_whose_connection_dies_after_begin_is_503_and_writes_nothing(
    user: ApiClient, admin_engine: Engine, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Once the write's own statement was sent the unit of work is not repeated: 503 with
    Retry-After, nothing written, and the next request works on a new connection."""

    add = task_repository.add

    def add_after_the_connection_dies(*args: Any) -> Any:
        _drop_the_functions_connections(admin_engine)
        return add(*args)

    monkeypatch.setattr(task_repository, "add", add_after_the_connection_dies)
    failed = user.post("/tasks", json_body=task_body(description="lost"))
    assert failed.status == 503, failed.body
    assert failed.header("Retry-After") == "2"
    monkeypatch.setattr(task_repository, "add", add)
    assert user.post("/tasks", json_body=task_body(description="kept")).status == 201
    assert [task["description"] for task in user.get("/tasks").json()] == ["kept"]


@pytest.fixture
def ping_always(monkeypatch: pytest.MonkeyPatch, reload_settings: None) -> None:
    monkeypatch.setenv("DB_PING_AFTER_IDLE_SECONDS", "0")


@pytest.mark.usefixtures("ping_always")
def test_writes_survive_a_connection_dropped_while_idle(
    user: ApiClient, admin_engine: Engine
) -> None:
    _task_id(user)
    _drop_the_functions_connections(admin_engine)
    assert user.post("/tasks", json_body=task_body()).status == 201


@pytest.mark.usefixtures("ping_always")
def test_an_idle_connection_costs_one_ping(user: ApiClient, wire: Wire) -> None:
    task_id = _task_id(user)
    wire.clear()
    assert user.get(f"/tasks/{task_id}").status == 200
    assert wire.round_trips == 2  # the ping (an empty query), then the read
    assert wire.statements[0].strip() in ("", ";")


def test_a_new_engines_first_request_is_connect_one_query_and_the_read(
    user: ApiClient, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A restored SnapStart environment (an engine, no connection) pays for connecting, the
    one query SQLAlchemy's first-connection checks need, and the read: no BEGIN or ROLLBACK,
    no version or standard_conforming_strings queries (the server reports those)."""
    from taskline.db import get_engine

    task_id = _task_id(user)
    get_engine().dispose()
    get_engine.cache_clear()
    counted = listen(monkeypatch)
    assert user.get(f"/tasks/{task_id}").status == 200
    assert counted.statements[0] == (
        "SELECT current_schema(), current_setting('transaction_isolation')"
    )
    assert len(counted.statements) == 2
    assert counted.statements[1].startswith("SELECT")
    assert counted.round_trips == 3  # start-up and authentication, the checks, the read


def test_the_first_connection_checks_give_what_sqlalchemys_queries_give(
    admin_engine: Engine,
) -> None:
    """pgwire's dialect takes the version and standard_conforming_strings from the server's
    start-up report: the same values pg8000's dialect gets by asking."""
    from taskline.db import get_engine

    get_engine().dispose()
    get_engine.cache_clear()
    ours = get_engine()
    with ours.connect() as connection:
        connection.execute(text("SELECT 1"))
    with admin_engine.connect() as connection:
        connection.execute(text("SELECT 1"))
    theirs = admin_engine.dialect
    assert theirs.driver == "pg8000"
    assert ours.dialect.driver == "pgwire"
    assert ours.dialect.server_version_info == theirs.server_version_info
    assert ours.dialect.default_schema_name == theirs.default_schema_name
    assert ours.dialect.default_isolation_level == theirs.default_isolation_level
    assert getattr(ours.dialect, "_backslash_escapes") is False  # noqa: B009 - private
    assert getattr(theirs, "_backslash_escapes") is False  # noqa: B009
