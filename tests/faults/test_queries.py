"""SQL statements per request, as sent on the socket (BEGIN and COMMIT included): constant for
lists (no N+1), none for verifying a token. Reads are one SELECT outside any transaction;
writes are one transaction: BEGIN, their statements, COMMIT."""

from __future__ import annotations

import re
from typing import Any

import pytest
from sqlalchemy import Engine, text

from tests.support.api import ApiClient, task_body, user_id_of
from tests.support.wire import listen

READ = "SELECT tasks"


def transaction(*statements: str) -> list[str]:
    return ["BEGIN", *statements, "COMMIT"]


@pytest.fixture
def statements(user: ApiClient, monkeypatch: pytest.MonkeyPatch) -> list[str]:
    """Every statement the functions send from now on (the `user` fixture's own are done)."""
    assert user.get("/users/me").status == 200  # the pooled connection exists
    return listen(monkeypatch).statements


def add_tasks(admin_engine: Engine, user_id: int, count: int) -> None:
    with admin_engine.begin() as connection:
        connection.execute(
            text(
                "INSERT INTO tasks (user_id, description, category, deadline)"
                " SELECT :u, 'task ' || n, 'work', now() + n * interval '1 minute'"
                " FROM generate_series(1, :count) AS n"
            ),
            {"u": user_id, "count": count},
        )


def statements_for_list(user: ApiClient, statements: list[str], query: str) -> int:
    statements.clear()
    response = user.get(f"/tasks?{query}")
    assert response.status == 200
    return len(statements)


def test_listing_costs_one_statement_whatever_the_size(
    user: ApiClient, admin_engine: Engine, statements: list[str]
) -> None:
    user_id = user_id_of(user)
    add_tasks(admin_engine, user_id, 1)
    one = statements_for_list(user, statements, "limit=50")
    add_tasks(admin_engine, user_id, 99)
    fifty = statements_for_list(user, statements, "limit=50")
    hundred = statements_for_list(user, statements, "limit=100")
    assert one == fifty == hundred == 1
    assert [shape(statement) for statement in statements] == [READ]
    assert "OFFSET" not in statements[0].upper()
    assert "LIMIT" in statements[0].upper()


def test_next_pages_cost_one_statement_too(
    user: ApiClient, admin_engine: Engine, statements: list[str]
) -> None:
    add_tasks(admin_engine, user_id_of(user), 60)
    first = user.get("/tasks?limit=20")
    link = first.header("Link")
    assert link is not None
    target = link[link.index("/tasks") : link.index(">")]
    statements.clear()
    assert user.get(target).status == 200
    assert [shape(statement) for statement in statements] == [READ]
    assert "OFFSET" not in statements[0].upper()


@pytest.mark.parametrize(
    ("method", "path", "body", "expected"),
    [
        ("GET", "/tasks/1", None, [READ]),
        ("PATCH", "/tasks/1", {"description": "Renamed"}, transaction("UPDATE tasks")),
        ("DELETE", "/tasks/1", None, transaction("DELETE tasks")),
        ("POST", "/tasks", task_body(), transaction("INSERT tasks")),
        # An account route: first the check every unit of work of one makes, that the token's
        # sign-in is live (taskline.api.auth); then the account (read with that check again).
        ("GET", "/users/me", None, ["SELECT auth_sessions", "SELECT users"]),
    ],
)
def test_each_use_case_is_one_statement(
    user: ApiClient,
    admin_engine: Engine,
    statements: list[str],
    method: str,
    path: str,
    body: Any,
    expected: list[str],
) -> None:
    """Reads: the SELECT alone. Writes: the statement inside BEGIN ... COMMIT."""
    add_tasks(admin_engine, user_id_of(user), 1)
    statements.clear()
    response = user.request(method, path, json_body=body)
    assert response.status < 300, response.body
    assert [shape(statement) for statement in statements] == expected


@pytest.mark.parametrize(
    ("method", "body"),
    [
        ("PATCH", {"status": "Done"}),
        ("PATCH", {"deadline": "2031-01-01T00:00:00Z"}),
        ("PUT", task_body(status="Done")),
        # PUT always carries deadline and status, so it always re-arms.
        ("PUT", task_body(description="Renamed", status="To Do")),
    ],
)
def test_a_new_deadline_or_status_also_rearms_notifications(
    user: ApiClient, admin_engine: Engine, statements: list[str], method: str, body: Any
) -> None:
    """Changing when a task is due, or whether it is done, forgets its deadline notifications
    in a second statement of the same transaction (docs/deadlines.md)."""
    add_tasks(admin_engine, user_id_of(user), 1)
    statements.clear()
    response = user.request(method, "/tasks/1", json_body=body)
    assert response.status == 200, response.body
    assert [shape(s) for s in statements] == transaction(
        "UPDATE tasks", "DELETE task_notifications"
    )


def shape(statement: str) -> str:
    """A statement's verb and the table it starts on: "SELECT users", "DELETE login_throttles";
    transaction control as itself: "BEGIN", "COMMIT", "ROLLBACK". A task write whose checks
    (access, role, version) ride in CTEs before it is its write: "UPDATE tasks"."""
    if statement.strip().upper() in ("BEGIN", "COMMIT", "ROLLBACK"):
        return statement.strip().upper()
    if statement.lstrip().startswith("WITH "):
        write = re.search(r"\bAS \s*\(\s*(INSERT INTO|UPDATE|DELETE FROM)\s+tasks\b", statement)
        if write is not None:
            return f"{write.group(1).split()[0]} tasks"
    match = re.match(
        r"\s*(?:WITH \w+ AS \s*\(\s*)?(SELECT|INSERT INTO|UPDATE|DELETE FROM)\s(.*)",
        statement,
        re.S,
    )
    assert match is not None, statement
    verb, rest = match.groups()
    # The table the statement itself reads, not one a subquery among its columns reads; when it
    # reads a subquery (a merged listing), the first table named in it.
    flat = rest
    while re.search(r"\([^()]*\)", flat):
        flat = re.sub(r"\([^()]*\)", "", flat)
    table = (
        (re.search(r"\bFROM (\w+)", flat) or re.search(r"\bFROM (\w+)", rest))
        if verb == "SELECT"
        else re.match(r"(\w+)", rest)
    )
    assert table is not None, statement
    return f"{verb.split()[0]} {table.group(1)}"


# An Idempotency-Key create is one transaction of a fixed set of statements (docs/robustness.md).
KEYED_CREATE = transaction(
    "INSERT idempotency_keys",  # claim the key (or take over an expired one) ...
    "INSERT tasks",
    "UPDATE idempotency_keys",  # ... store the response with it ...
    "DELETE idempotency_keys",  # ... and purge a bounded batch of expired keys
)
# A retry finds the key live (the claim inserts nothing) and reads the stored result, in the
# same transaction: a concurrent first request holding the key is waited for.
KEYED_REPLAY = transaction("INSERT idempotency_keys", "SELECT idempotency_keys")


def test_a_keyed_create_and_its_replay_cost_a_fixed_set_of_statements(
    user: ApiClient, statements: list[str]
) -> None:
    headers = {"Idempotency-Key": "queries-1"}
    statements.clear()
    assert user.post("/tasks", json_body=task_body(), headers=headers).status == 201
    assert [shape(s) for s in statements] == KEYED_CREATE
    statements.clear()
    replay = user.post("/tasks", json_body=task_body(), headers=headers)
    assert replay.status == 201
    assert replay.header("Idempotent-Replayed") == "true"
    assert [shape(s) for s in statements] == KEYED_REPLAY
    statements.clear()
    reused = user.post("/tasks", json_body=task_body(category="other"), headers=headers)
    assert reused.status == 422
    assert [shape(s) for s in statements] == KEYED_REPLAY


@pytest.mark.parametrize(
    ("method", "body", "expected"),
    [
        # The If-Match check and the write are one statement ...
        ("PATCH", {"description": "Renamed"}, transaction("UPDATE tasks")),
        ("DELETE", None, transaction("DELETE tasks")),
        # ... and re-arming notifications stays in the same transaction.
        ("PATCH", {"status": "Done"}, transaction("UPDATE tasks", "DELETE task_notifications")),
        (
            "PUT",
            task_body(status="Done"),
            transaction("UPDATE tasks", "DELETE task_notifications"),
        ),
        # Nothing to change: the version is only compared (still in a write's transaction).
        ("PATCH", {}, transaction("SELECT tasks")),
    ],
)
def test_a_conditional_write_checks_the_version_in_the_write_itself(
    user: ApiClient,
    admin_engine: Engine,
    statements: list[str],
    method: str,
    body: Any,
    expected: list[str],
) -> None:
    add_tasks(admin_engine, user_id_of(user), 1)
    etag = user.get("/tasks/1").header("ETag")
    assert etag is not None
    statements.clear()
    response = user.request(method, "/tasks/1", json_body=body, headers={"If-Match": etag})
    assert response.status < 300, response.body
    assert [shape(s) for s in statements] == expected


@pytest.mark.parametrize(
    ("method", "body", "expected"),
    [
        # The write touches nothing; the same statement tells a changed task (412) from a
        # missing one (404) or one the caller may only read (403), and the refusal rolls the
        # transaction back.
        ("PATCH", {"description": "Renamed"}, ["BEGIN", "UPDATE tasks", "ROLLBACK"]),
        ("DELETE", None, ["BEGIN", "DELETE tasks", "ROLLBACK"]),
    ],
)
def test_a_stale_if_match_costs_no_more_statements_and_writes_nothing(
    user: ApiClient,
    admin_engine: Engine,
    statements: list[str],
    method: str,
    body: Any,
    expected: list[str],
) -> None:
    add_tasks(admin_engine, user_id_of(user), 1)
    stale = user.get("/tasks/1").header("ETag")
    assert stale is not None
    assert user.patch("/tasks/1", json_body={"category": "moved"}).status == 200
    statements.clear()
    response = user.request(method, "/tasks/1", json_body=body, headers={"If-Match": stale})
    assert response.status == 412, response.body
    assert [shape(s) for s in statements] == expected
    assert user.get("/tasks/1").json()["category"] == "moved"


# A password login is a fixed set of statements in two transactions (docs/security.md):
# throttling counts the attempt before bcrypt runs, so the count and the lookup commit first;
# then the count is taken back and the session starts. No statement depends on data size.
CHECK_PASSWORD = transaction("DELETE login_throttles", "INSERT login_throttles", "SELECT users")
START_SESSION = transaction(
    "DELETE login_throttles",  # the account's failures are forgiven ...
    "UPDATE login_throttles",  # ... and the source IP's count taken back
    "DELETE auth_sessions",  # the account's expired sessions ...
    "DELETE refresh_tokens",  # ... and expired refresh tokens are pruned
    "INSERT auth_sessions",  # the session and its first refresh token, in one statement
)


def test_sign_up_login_and_refresh_cost_a_fixed_set_of_statements(
    client: ApiClient, statements: list[str]
) -> None:
    statements.clear()
    client.sign_up("queries@example.com")
    # The account, and the verification email counted against its send quota (one upsert).
    assert [shape(s) for s in statements] == transaction("INSERT users", "INSERT send_quotas")
    statements.clear()
    pair = client.login_pair("queries@example.com")
    assert [shape(s) for s in statements] == CHECK_PASSWORD + START_SESSION
    statements.clear()
    assert client.refresh(pair["refresh_token"]).status == 200
    assert [shape(s) for s in statements] == transaction("UPDATE refresh_tokens")


def test_a_failed_login_checks_the_password_and_stops(
    client: ApiClient, statements: list[str]
) -> None:
    client.sign_up("queries@example.com")
    statements.clear()
    response = client.post(
        "/token", json_body={"email": "queries@example.com", "password": "wrong password"}
    )
    assert response.status == 400
    assert [shape(s) for s in statements] == CHECK_PASSWORD


@pytest.mark.parametrize(
    ("method", "path", "body"),
    [
        ("POST", "/tasks", {"id": 1}),  # rejected after authentication, before the use case
        ("GET", "/tasks?limit=0", None),
        ("GET", "/tasks/abc", None),
        ("PATCH", "/tasks/1", {"status": None}),
        ("GET", "/tasks?cursor=forged", None),
    ],
)
def test_verifying_a_token_costs_no_statement(
    user: ApiClient, statements: list[str], method: str, path: str, body: Any
) -> None:
    statements.clear()
    response = user.request(method, path, json_body=body)
    assert response.status == 422
    assert statements == []


def test_rejected_tokens_cost_no_statement(client: ApiClient, statements: list[str]) -> None:
    statements.clear()
    assert client.get("/tasks", token="not-a-token").status == 401
    assert client.get("/tasks").status == 401
    assert statements == []
