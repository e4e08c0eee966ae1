"""Idempotent creates: POST /tasks with an Idempotency-Key creates at most one task per key."""

from __future__ import annotations

import threading
import time
from datetime import datetime
from typing import Any

import pytest
from sqlalchemy import Engine, text

from localdev.gateway import GatewayResponse
from taskline.services import task_service
from tests.support.api import ApiClient, task_body

# Also run through the paused Aurora stand-in by make test (tests/aurora).
pytestmark = pytest.mark.aurora_contract

KEY = "7f6c4a1e-2d1b-4c8e-9a55-1b2f3e4d5c6a"


def _post(user: ApiClient, body: dict[str, Any], key: str | None = KEY) -> GatewayResponse:
    headers = {"Idempotency-Key": key} if key is not None else None
    return user.post("/tasks", json_body=body, headers=headers)


def _count(admin_engine: Engine, table: str) -> int:
    with admin_engine.connect() as connection:
        return int(connection.execute(text(f"SELECT count(*) FROM {table}")).scalar_one())


def test_a_retry_returns_the_first_result_and_creates_nothing(
    user: ApiClient, admin_engine: Engine
) -> None:
    first = _post(user, task_body())
    assert first.status == 201
    assert first.header("Idempotent-Replayed") is None
    retry = _post(user, task_body())
    assert retry.status == 201
    assert retry.body == first.body
    assert retry.header("Location") == first.header("Location")
    assert retry.header("ETag") == first.header("ETag")
    assert retry.header("Idempotent-Replayed") == "true"
    assert len(user.get("/tasks").json()) == 1
    assert _count(admin_engine, "tasks") == 1


def test_the_first_result_is_replayed_even_after_the_task_changed(user: ApiClient) -> None:
    first = _post(user, task_body())
    task = first.json()
    assert user.patch(f"/tasks/{task['id']}", json_body={"status": "Done"}).status == 200
    retry = _post(user, task_body())
    assert retry.json() == task  # the response the client missed, not the task as it is now


def test_the_same_body_in_another_spelling_is_the_same_request(user: ApiClient) -> None:
    assert _post(user, task_body(deadline="2030-01-15T09:00:00Z")).status == 201
    same = task_body(
        deadline="2030-01-15T10:00:00+01:00", description=" Write the quarterly report "
    )
    same["status"] = "To Do"  # the default, now spelled out
    retry = _post(user, same)
    assert retry.status == 201
    assert retry.header("Idempotent-Replayed") == "true"


def test_the_same_key_with_another_body_is_422_and_changes_nothing(
    user: ApiClient, admin_engine: Engine
) -> None:
    first = _post(user, task_body())
    reused = _post(user, task_body(description="Something else"))
    assert reused.status == 422
    assert reused.header("Content-Type") == "application/problem+json"
    problem = reused.json()
    assert problem["type"] == "urn:taskline:problem:idempotency-key-reused"
    assert problem["errors"][0]["loc"] == ["header", "idempotency-key"]
    assert user.get("/tasks").json() == [first.json()]
    assert _count(admin_engine, "tasks") == 1


def test_keys_are_scoped_per_user(user: ApiClient, other_user: ApiClient) -> None:
    mine = _post(user, task_body())
    theirs = _post(other_user, task_body(description="Theirs"))
    assert theirs.status == 201
    assert theirs.header("Idempotent-Replayed") is None
    assert theirs.json()["id"] != mine.json()["id"]
    assert [t["description"] for t in other_user.get("/tasks").json()] == ["Theirs"]


def test_without_a_key_every_post_creates(user: ApiClient) -> None:
    assert _post(user, task_body(), key=None).status == 201
    assert _post(user, task_body(), key=None).status == 201
    assert len(user.get("/tasks").json()) == 2


def test_different_keys_create_different_tasks(user: ApiClient) -> None:
    assert _post(user, task_body(), key="a").status == 201
    assert _post(user, task_body(), key="b").status == 201
    assert len(user.get("/tasks").json()) == 2


@pytest.mark.parametrize(
    "key",
    [
        "k" * 256,  # too long
        "caf\u00e9",  # not ASCII
        " padded ",  # surrounding spaces (API Gateway would have trimmed them)
        "tab\tinside",
    ],
)
def test_malformed_keys_are_422_and_create_nothing(
    user: ApiClient, admin_engine: Engine, key: str
) -> None:
    response = user.post("/tasks", json_body=task_body(), headers={"Idempotency-Key": key})
    assert response.status == 422
    assert response.json()["errors"][0]["loc"] == ["header", "idempotency-key"]
    assert _count(admin_engine, "tasks") == 0
    assert _count(admin_engine, "idempotency_keys") == 0


def test_the_longest_key_and_inner_spaces_are_fine(user: ApiClient) -> None:
    for key in ("k" * 255, '"8e03978e-40d5-43e8"', "a b"):
        assert _post(user, task_body(), key=key).status == 201


def test_a_failed_create_leaves_the_key_free(user: ApiClient) -> None:
    assert _post(user, task_body(status="Bogus")).status == 422
    assert _post(user, task_body()).status == 201


def test_expired_keys_are_ignored_and_purged(
    user: ApiClient, other_user: ApiClient, admin_engine: Engine
) -> None:
    first = _post(user, task_body())
    _post(other_user, task_body(), key="old-one")
    with admin_engine.begin() as connection:
        connection.execute(
            text("UPDATE idempotency_keys SET created_at = now() - interval '24 hours 1 second'")
        )
    again = _post(user, task_body(description="A new day"))  # same key, past its 24 hours
    assert again.status == 201
    assert again.header("Idempotent-Replayed") is None
    assert again.json()["id"] != first.json()["id"]
    with admin_engine.connect() as connection:
        rows = connection.execute(text("SELECT key FROM idempotency_keys")).scalars().all()
    assert rows == [KEY]  # the other user's expired key was purged by this create


def test_the_ttl_is_a_setting(
    user: ApiClient, admin_engine: Engine, monkeypatch: pytest.MonkeyPatch, reload_settings: None
) -> None:
    monkeypatch.setenv("IDEMPOTENCY_KEY_TTL_SECONDS", "60")
    first = _post(user, task_body())
    with admin_engine.begin() as connection:
        connection.execute(
            text("UPDATE idempotency_keys SET created_at = now() - interval '61 seconds'")
        )
    assert _post(user, task_body()).json()["id"] != first.json()["id"]


def test_concurrent_requests_with_one_key_create_exactly_one_task(
    user: ApiClient, admin_engine: Engine, monkeypatch: pytest.MonkeyPatch, reload_settings: None
) -> None:
    """Both requests are in flight at once: the first is held on a lock after claiming the key,
    the second arrives and must wait for it, then gets its result instead of creating again.
    (They call the service directly: the local gateway, like one Lambda container, serves one
    request at a time; concurrent requests come from different containers.)"""
    from taskline.schemas import TaskCreate
    from taskline.security.tokens import verify_access_token

    monkeypatch.setenv("DB_POOL_SIZE", "4")
    user_id = verify_access_token(str(user.token)).user_id
    request = TaskCreate.model_validate(task_body())
    results: list[task_service.Creation] = []

    def create() -> None:
        results.append(task_service.create_once(user_id, request, KEY, _headers_for))

    with admin_engine.connect() as blocker:
        # Hold inserts into tasks: the first request claims the key, then waits on this lock.
        blocker.execute(text("LOCK TABLE tasks IN SHARE ROW EXCLUSIVE MODE"))
        threads = [threading.Thread(target=create) for _ in range(2)]
        for thread in threads:
            thread.start()
        _wait_for_lock_waiters(admin_engine, 2)  # one on the table lock, one on the key
        blocker.rollback()
    for thread in threads:
        thread.join(timeout=30)
    assert len(results) == 2
    assert sorted(result.replayed for result in results) == [False, True]
    assert results[0].response == results[1].response
    assert _count(admin_engine, "tasks") == 1
    assert _count(admin_engine, "idempotency_keys") == 1


def _headers_for(task_id: int, updated_at: datetime) -> dict[str, str]:
    return {"Location": f"/tasks/{task_id}"}


def _wait_for_lock_waiters(admin_engine: Engine, expected: int) -> None:
    """Poll (bounded) until `expected` Taskline sessions are waiting on a lock."""
    query = text(
        "SELECT count(*) FROM pg_stat_activity "
        "WHERE application_name = 'taskline' AND wait_event_type = 'Lock' "
        "AND datname = current_database()"
    )
    for _ in range(200):
        with admin_engine.connect() as connection:
            if connection.execute(query).scalar_one() >= expected:
                return
        time.sleep(0.05)
    raise AssertionError(f"fewer than {expected} requests ever waited on a lock")


@pytest.mark.parametrize("key", [KEY, None])
def test_a_create_by_a_deleted_account_is_401(
    user: ApiClient, admin_engine: Engine, key: str | None
) -> None:
    """The token outlived its account: the foreign key says so, and that is a 401, not a 500."""
    with admin_engine.begin() as connection:
        connection.execute(text("DELETE FROM users"))
    response = _post(user, task_body(), key=key)
    assert response.status == 401
    assert _count(admin_engine, "tasks") == 0
