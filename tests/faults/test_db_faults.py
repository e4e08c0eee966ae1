"""Database faults: killed sessions, a stopped or unreachable database, statements that run too
long. The API answers 503 problems instead of hanging or failing with 500, writes nothing
half-way, and recovers on its own once the database is back."""

from __future__ import annotations

from collections.abc import Iterator

import pytest
from sqlalchemy import Engine, text

from localdev.gateway import GatewayResponse
from tests.support.api import ApiClient, task_body
from tests.support.caches import clear_caches
from tests.support.database import login_statement_timeout
from tests.support.faults import TcpProxy, proxied_url, upstream_for

TASKLINE_SESSIONS = text(
    "SELECT pid FROM pg_stat_activity "
    "WHERE application_name = 'taskline' AND datname = current_database()"
)


def _taskline_pids(admin_engine: Engine) -> set[int]:
    with admin_engine.connect() as connection:
        return set(connection.execute(TASKLINE_SESSIONS).scalars())


def _assert_unavailable(response: GatewayResponse) -> None:
    assert response.status == 503, response.body
    assert response.header("Content-Type") == "application/problem+json"
    assert response.header("Retry-After") == "2"
    problem = response.json()
    assert problem["type"] == "urn:taskline:problem:database-unavailable"
    assert problem["status"] == 503


def test_a_killed_pooled_connection_is_replaced_on_the_next_request(
    user: ApiClient, admin_engine: Engine
) -> None:
    assert user.post("/tasks", json_body=task_body()).status == 201
    before = _taskline_pids(admin_engine)
    assert before  # the pooled connection stays open between requests
    with admin_engine.connect() as connection:
        for pid in before:
            connection.execute(text("SELECT pg_terminate_backend(:pid)"), {"pid": pid})
    listed = user.get("/tasks")
    assert listed.status == 200
    assert len(listed.json()) == 1
    after = _taskline_pids(admin_engine)
    assert after
    assert not after & before  # it really is a new session


@pytest.fixture
def proxy(
    user: ApiClient, database_url: str, monkeypatch: pytest.MonkeyPatch
) -> Iterator[TcpProxy]:
    """The functions reach the database through a proxy the test controls, with short
    timeouts: 1 s to connect, 1 s per statement (so at most 2 s per socket read)."""
    with TcpProxy(upstream_for(database_url)) as tcp_proxy:
        monkeypatch.setenv("DATABASE_URL", proxied_url(database_url, tcp_proxy.port))
        monkeypatch.setenv("DB_CONNECT_TIMEOUT_SECONDS", "1")
        monkeypatch.setenv("DB_STATEMENT_TIMEOUT_MS", "1000")
        clear_caches()
        try:
            yield tcp_proxy
        finally:
            clear_caches()


@pytest.mark.timeout(60)  # a hang guard only; the requests themselves must not hang
def test_database_stopped_gives_503_then_recovers_without_restart(
    user: ApiClient, client: ApiClient, proxy: TcpProxy, admin_engine: Engine
) -> None:
    assert user.post("/tasks", json_body=task_body()).status == 201
    proxy.set_mode("down")
    _assert_unavailable(user.get("/tasks"))
    _assert_unavailable(user.post("/tasks", json_body=task_body(description="lost?")))
    _assert_unavailable(user.get("/users/me"))
    _assert_unavailable(
        client.post(
            "/token",
            body="username=a@example.com&password=whatever1",
            headers={"Content-Type": "application/x-www-form-urlencoded"},
        )
    )
    proxy.set_mode("up")
    listed = user.get("/tasks")
    assert listed.status == 200
    assert [task["description"] for task in listed.json()] == [task_body()["description"]]
    with admin_engine.connect() as connection:
        assert connection.execute(text("SELECT count(*) FROM tasks")).scalar_one() == 1


@pytest.mark.timeout(60)  # a hang guard only: each request is bounded by the socket timeouts
def test_database_unreachable_gives_503_within_the_timeouts_then_recovers(
    user: ApiClient, proxy: TcpProxy
) -> None:
    assert user.get("/tasks").status == 200  # a pooled connection now exists
    proxy.set_mode("hang")
    # The pooled connection's first read waits out its read timeout (the connection is then
    # discarded), the reconnect its connect timeout: a bounded wait, then 503, never a hang.
    _assert_unavailable(user.get("/tasks"))
    _assert_unavailable(user.post("/tasks", json_body=task_body()))
    proxy.set_mode("up")
    assert user.get("/tasks").status == 200
    assert user.post("/tasks", json_body=task_body()).status == 201


def test_sessions_cut_between_requests_are_replaced(user: ApiClient, proxy: TcpProxy) -> None:
    assert user.get("/tasks").status == 200
    accepted = proxy.connections_accepted
    proxy.set_mode("down")
    proxy.set_mode("up")
    assert user.post("/tasks", json_body=task_body()).status == 201
    assert proxy.connections_accepted == accepted + 1  # one fresh connection, no error


@pytest.mark.timeout(60)  # a hang guard only: the request is bounded by the socket timeout
def test_an_answer_arriving_after_the_timeout_is_never_taken_for_the_next_one(
    user: ApiClient, other_user: ApiClient, proxy: TcpProxy
) -> None:
    """After a socket timeout the timed-out statement's answer may still come; the connection
    is discarded, so no later request (here another user's) reads that answer as its own."""
    assert user.post("/tasks", json_body=task_body(description="not yours")).status == 201
    proxy.set_mode("stall")
    _assert_unavailable(user.get("/tasks"))
    proxy.set_mode("up")  # the late answer to that SELECT is delivered now
    listed = other_user.get("/tasks")
    assert listed.status == 200, listed.body
    assert listed.json() == []
    assert [task["description"] for task in user.get("/tasks").json()] == ["not yours"]


@pytest.fixture
def short_statement_timeout(
    monkeypatch: pytest.MonkeyPatch, admin_engine: Engine
) -> Iterator[None]:
    """A 300 ms statement timeout, set where it lives: the login's role default (through the
    strict RDS Proxy stand-in, which refuses it as a startup option)."""
    monkeypatch.setenv("DB_STATEMENT_TIMEOUT_MS", "300")  # the socket timeout follows it
    with login_statement_timeout(admin_engine, 300):
        yield


def test_a_statement_over_the_timeout_gives_503_and_writes_nothing(
    user: ApiClient, admin_engine: Engine, short_statement_timeout: None
) -> None:
    """The create claims its Idempotency-Key, then its INSERT INTO tasks waits on a lock past
    the statement timeout: the whole transaction is rolled back, the key included."""
    headers = {"Idempotency-Key": "slow-create"}
    with admin_engine.connect() as blocker:
        blocker.execute(text("LOCK TABLE tasks IN SHARE ROW EXCLUSIVE MODE"))
        _assert_unavailable(user.post("/tasks", json_body=task_body(), headers=headers))
        blocker.rollback()
    with admin_engine.connect() as connection:
        assert connection.execute(text("SELECT count(*) FROM tasks")).scalar_one() == 0
        keys = connection.execute(text("SELECT count(*) FROM idempotency_keys")).scalar_one()
        assert keys == 0
    retry = user.post("/tasks", json_body=task_body(), headers=headers)
    assert retry.status == 201
    assert retry.header("Idempotent-Replayed") is None  # a first create, not a replay


def test_an_update_over_the_timeout_gives_503_and_leaves_the_task_as_it_was(
    user: ApiClient, admin_engine: Engine, short_statement_timeout: None
) -> None:
    task = user.post("/tasks", json_body=task_body()).json()
    with admin_engine.connect() as blocker:
        blocker.execute(text("SELECT 1 FROM tasks WHERE id = :id FOR UPDATE"), {"id": task["id"]})
        _assert_unavailable(user.patch(f"/tasks/{task['id']}", json_body={"status": "Done"}))
        blocker.rollback()
    fetched = user.get(f"/tasks/{task['id']}")
    assert fetched.status == 200  # the connection that timed out is usable again
    assert fetched.json() == task
