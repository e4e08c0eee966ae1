"""Idempotent creates across a deploy (issue 13): a replay sends the first answer exactly as
it was sent, whatever the task schema has become since, and a genuine retry is recognised
whatever fields with defaults the request schema has gained since."""

from __future__ import annotations

import hashlib
import json
from datetime import datetime
from typing import Any

import pytest
from sqlalchemy import Engine, text

from localdev.gateway import GatewayResponse
from taskline.errors import IdempotencyKeyReused
from taskline.schemas import TaskCreate
from taskline.services import task_service
from tests.support.api import ApiClient, task_body, user_id_of

KEY = "upgrade-3c1d9e2a"


def _post(user: ApiClient, body: dict[str, Any], key: str = KEY) -> GatewayResponse:
    return user.post("/tasks", json_body=body, headers={"Idempotency-Key": key})


def _v1_fingerprint(body: dict[str, Any]) -> str:
    """The fingerprint the code before this change stored: every field, defaults included."""
    # TaskCreate's fields then (later fields, such as remind_before, did not exist yet).
    then = {"description", "category", "deadline", "status"}
    request = TaskCreate.model_validate(body).model_dump(mode="json", include=then)
    canonical = json.dumps(["POST /tasks", request], sort_keys=True, separators=(",", ":"))
    return hashlib.sha256(canonical.encode()).hexdigest()


def _store(admin_engine: Engine, user_id: int, request_hash: str, **columns: Any) -> None:
    """A key as an earlier deploy left it."""
    names = ", ".join(columns)
    values = ", ".join(
        f"CAST(:{name} AS jsonb)" if name in ("response", "response_headers") else f":{name}"
        for name in columns
    )
    with admin_engine.begin() as connection:
        connection.execute(
            text(
                f"INSERT INTO idempotency_keys (user_id, key, request_hash, {names})"
                f" VALUES (:user_id, :key, :request_hash, {values})"
            ),
            {"user_id": user_id, "key": KEY, "request_hash": request_hash, **columns},
        )


def _task_count(admin_engine: Engine) -> int:
    with admin_engine.connect() as connection:
        return int(connection.execute(text("SELECT count(*) FROM tasks")).scalar_one())


def test_a_replay_sends_the_first_answer_byte_for_byte(user: ApiClient) -> None:
    first = _post(user, task_body(description="Caf\u00e9 \u2615"))
    retry = _post(user, task_body(description="Caf\u00e9 \u2615"))
    assert retry.body == first.body
    assert retry.status == first.status == 201
    for name in ("Location", "ETag", "Content-Type"):
        assert retry.header(name) == first.header(name)


@pytest.mark.parametrize(
    "stored_body",
    [
        # A field the task schema has since dropped, and one it did not have yet.
        '{"id":41,"description":"Pay rent","category":"home","deadline":"2030-02-01T09:00:00Z",'
        '"status":"To Do","created_at":"2030-01-01T00:00:00Z","updated_at":"2030-01-01T00:00:00Z",'
        '"priority":"high"}',
        '{"id":41,"description":"Pay rent","deadline":"2030-02-01T09:00:00Z","status":"To Do"}',
    ],
)
def test_a_stored_answer_replays_unchanged_whatever_the_schema_is_now(
    user: ApiClient, admin_engine: Engine, stored_body: str
) -> None:
    body = task_body(description="Pay rent", category="home", deadline="2030-02-01T09:00:00Z")
    headers = {"Location": "/tasks/41", "ETag": '"41-1893456000000000"'}
    _store(
        admin_engine,
        user_id_of(user),
        _v1_fingerprint(body),
        response_status=201,
        response_headers=json.dumps(headers),
        response_body=stored_body,
    )
    retry = _post(user, body)
    assert retry.status == 201, retry.body
    assert retry.body == stored_body.encode()
    assert retry.header("Location") == "/tasks/41"
    assert retry.header("ETag") == '"41-1893456000000000"'
    assert retry.header("Idempotent-Replayed") == "true"
    assert _task_count(admin_engine) == 0


def test_a_key_stored_before_the_upgrade_replays_its_task(
    user: ApiClient, admin_engine: Engine
) -> None:
    """Rows from before migration 0005 hold the task as JSON and an all-fields fingerprint; a
    retry that omits the defaulted status is still the same request."""
    body = task_body(description="Pay rent", category="home", deadline="2030-02-01T09:00:00Z")
    old_task = {
        "id": 41,
        "description": "Pay rent",
        "category": "home",
        "deadline": "2030-02-01T09:00:00Z",
        "status": "To Do",
        "created_at": "2030-01-01T00:00:00Z",
        "updated_at": "2030-01-01T00:00:00.000001Z",
        "retired_field": True,  # the schema of then is not today's
    }
    _store(admin_engine, user_id_of(user), _v1_fingerprint(body), response=json.dumps(old_task))
    retry = _post(user, body)
    assert retry.status == 201, retry.body
    assert retry.json() == old_task
    assert retry.header("Location") == "/tasks/41"
    assert retry.header("ETag") == '"41-1893456000000001"'
    assert retry.header("Idempotent-Replayed") == "true"
    assert _task_count(admin_engine) == 0
    # Another body under that key is still refused.
    assert _post(user, {**body, "category": "work"}).status == 422


def test_a_new_defaulted_field_does_not_change_a_retrys_fingerprint(
    user: ApiClient, admin_engine: Engine
) -> None:
    """A deploy adds a field with a default to the request schema; the client's retry of a
    request it sent before (without that field) is recognised, not refused as another body."""
    from taskline.security.tokens import verify_access_token

    class TaskCreateWithPriority(TaskCreate):
        priority: int = 0

    user_id = verify_access_token(str(user.token)).user_id
    body = task_body()
    first = _post(user, body)
    assert first.status == 201
    retried = TaskCreateWithPriority.model_validate(body)

    def headers_for(task_id: int, updated_at: datetime) -> dict[str, str]:
        raise AssertionError("a replay builds nothing")

    creation = task_service.create_once(user_id, retried, KEY, headers_for)
    assert creation.replayed
    assert creation.response.body.encode() == first.body
    assert _task_count(admin_engine) == 1
    # A client that does send a non-default value for it sends another request.
    other = TaskCreateWithPriority.model_validate({**body, "priority": 2})
    with pytest.raises(IdempotencyKeyReused):
        task_service.create_once(user_id, other, KEY, headers_for)
