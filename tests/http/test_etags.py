"""Optimistic concurrency: tasks carry a strong ETag; PUT, PATCH and DELETE honour If-Match."""

from __future__ import annotations

import threading
from typing import Any

import pytest
from sqlalchemy import Engine, text

from taskline.services import task_service
from tests.support.api import ApiClient, task_body


def _create(user: ApiClient, **overrides: Any) -> tuple[dict[str, Any], str]:
    created = user.post("/tasks", json_body=task_body(**overrides))
    assert created.status == 201
    etag = created.header("ETag")
    assert etag is not None
    return created.json(), etag


def test_create_and_get_return_the_same_strong_etag(user: ApiClient) -> None:
    task, etag = _create(user)
    assert etag.startswith('"')  # strong: no W/ prefix
    assert etag.endswith('"')
    assert user.get(f"/tasks/{task['id']}").header("ETag") == etag


def test_every_write_gives_a_new_etag(user: ApiClient) -> None:
    task, first = _create(user)
    patched = user.patch(f"/tasks/{task['id']}", json_body={"status": "Done"})
    second = patched.header("ETag")
    replaced = user.put(f"/tasks/{task['id']}", json_body=task_body(status="To Do"))
    third = replaced.header("ETag")
    assert len({first, second, third}) == 3
    assert user.get(f"/tasks/{task['id']}").header("ETag") == third


@pytest.mark.parametrize("method", ["PATCH", "PUT"])
def test_a_write_with_the_current_etag_succeeds(user: ApiClient, method: str) -> None:
    task, etag = _create(user)
    body = {"status": "Done"} if method == "PATCH" else task_body(status="Done")
    response = user.request(
        method, f"/tasks/{task['id']}", json_body=body, headers={"If-Match": etag}
    )
    assert response.status == 200
    assert response.json()["status"] == "Done"
    assert response.header("ETag") != etag


def test_two_clients_cannot_silently_overwrite_each_other(user: ApiClient) -> None:
    task, etag = _create(user, description="original")
    path = f"/tasks/{task['id']}"
    # Both read version `etag`; the first writer wins ...
    first = user.put(
        path, json_body=task_body(description="first", status="To Do"), headers={"If-Match": etag}
    )
    assert first.status == 200
    # ... and the second, still on the old version, is told instead of overwriting.
    second = user.patch(path, json_body={"description": "second"}, headers={"If-Match": etag})
    assert second.status == 412
    assert second.header("Content-Type") == "application/problem+json"
    problem = second.json()
    assert problem["type"] == "urn:taskline:problem:precondition-failed"
    assert problem["status"] == 412
    assert user.get(path).json()["description"] == "first"
    # Re-reading gives the current tag, and the retry on it goes through.
    current = user.get(path).header("ETag")
    retry = user.patch(path, json_body={"description": "second"}, headers={"If-Match": current})
    assert retry.status == 200


def test_delete_with_a_stale_etag_keeps_the_task(user: ApiClient) -> None:
    task, stale = _create(user)
    path = f"/tasks/{task['id']}"
    current = user.patch(path, json_body={"status": "Done"}).header("ETag")
    assert user.delete(path, headers={"If-Match": stale}).status == 412
    assert user.get(path).status == 200
    assert current is not None
    assert user.delete(path, headers={"If-Match": current}).status == 204
    assert user.get(path).status == 404


@pytest.mark.parametrize(
    "if_match",
    [
        "W/{etag}",  # weak tags never match under strong comparison
        '"not-ours"',
        "garbage",  # not an entity-tag list at all
        '"1-1"',
        "{other}",  # another task's current tag
    ],
)
def test_tags_that_do_not_name_the_current_version_fail(user: ApiClient, if_match: str) -> None:
    task, etag = _create(user)
    _, other = _create(user)
    header = if_match.format(etag=etag, other=other)
    path = f"/tasks/{task['id']}"
    response = user.patch(path, json_body={"status": "Done"}, headers={"If-Match": header})
    assert response.status == 412
    assert user.get(path).json() == task


def test_a_list_matches_if_any_tag_is_current(user: ApiClient) -> None:
    task, etag = _create(user)
    header = f'"{task["id"]}-1", W/"x", {etag}'
    response = user.patch(
        f"/tasks/{task['id']}", json_body={"status": "Done"}, headers={"If-Match": header}
    )
    assert response.status == 200


def test_star_matches_any_existing_task_and_missing_stays_404(user: ApiClient) -> None:
    task, _ = _create(user)
    patched = user.patch(f"/tasks/{task['id']}", json_body={"status": "Done"})
    assert patched.status == 200
    star = {"If-Match": "*"}
    assert user.patch(f"/tasks/{task['id']}", json_body={}, headers=star).status == 200
    assert user.delete(f"/tasks/{task['id']}", headers=star).status == 204
    assert user.delete(f"/tasks/{task['id']}", headers=star).status == 404


def test_if_match_is_optional(user: ApiClient) -> None:
    task, _ = _create(user)
    path = f"/tasks/{task['id']}"
    assert user.patch(path, json_body={"status": "Done"}).status == 200
    assert user.put(path, json_body=task_body(status="Done")).status == 200
    assert user.delete(path).status == 204


def test_an_empty_patch_checks_the_precondition_too(user: ApiClient) -> None:
    task, stale = _create(user)
    path = f"/tasks/{task['id']}"
    current = user.patch(path, json_body={"status": "Done"}).header("ETag")
    assert user.patch(path, json_body={}, headers={"If-Match": stale}).status == 412
    same = user.patch(path, json_body={}, headers={"If-Match": str(current)})
    assert same.status == 200
    assert same.header("ETag") == current  # nothing changed, so neither did the version


def test_another_users_task_is_404_whatever_if_match_says(
    user: ApiClient, other_user: ApiClient
) -> None:
    task, etag = _create(user)
    for if_match in (etag, '"1-1"', "*"):
        response = other_user.patch(
            f"/tasks/{task['id']}", json_body={"status": "Done"}, headers={"If-Match": if_match}
        )
        assert response.status == 404


def test_an_overlong_if_match_is_422(user: ApiClient) -> None:
    task, etag = _create(user)
    header = ", ".join([etag] * 200)
    response = user.patch(
        f"/tasks/{task['id']}", json_body={"status": "Done"}, headers={"If-Match": header}
    )
    assert response.status == 422
    assert response.json()["errors"][0]["loc"] == ["header", "if-match"]


def test_the_version_moves_forward_even_when_the_clock_does_not(
    user: ApiClient, admin_engine: Engine
) -> None:
    """A write lands in the same microsecond as the last one, or the clock stepped back: the
    ETag must still change, or a stale client could overwrite the newer version."""
    task, _ = _create(user)
    with admin_engine.begin() as connection:
        connection.execute(
            text("UPDATE tasks SET updated_at = now() + interval '1 hour' WHERE id = :id"),
            {"id": task["id"]},
        )
    path = f"/tasks/{task['id']}"
    before = user.get(path)
    after = user.patch(
        path, json_body={"status": "Done"}, headers={"If-Match": before.header("ETag") or ""}
    )
    assert after.status == 200
    assert after.header("ETag") != before.header("ETag")
    assert after.json()["updated_at"] > before.json()["updated_at"]


def test_concurrent_conditional_writes_let_exactly_one_through(
    user: ApiClient, monkeypatch: pytest.MonkeyPatch, reload_settings: None
) -> None:
    """Two writers holding the same ETag race at the service layer (a Lambda container serves
    one request at a time, so the race is between containers): one wins, the other gets 412."""
    from taskline.errors import PreconditionFailed
    from taskline.schemas import TaskPatch
    from taskline.security.tokens import verify_access_token

    monkeypatch.setenv("DB_POOL_SIZE", "4")
    task, _ = _create(user)
    user_id = verify_access_token(str(user.token)).user_id
    current = task_service.get(user_id, task["id"]).updated_at
    start = threading.Barrier(2)
    outcomes: list[str] = []

    def write(description: str) -> None:
        start.wait(timeout=10)
        try:
            task_service.update(
                user_id, task["id"], TaskPatch(description=description), frozenset({current})
            )
            outcomes.append(description)
        except PreconditionFailed:
            outcomes.append("412")

    threads = [threading.Thread(target=write, args=(name,)) for name in ("A", "B")]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=30)
    assert sorted(outcomes) in (["412", "A"], ["412", "B"])
    winner = next(outcome for outcome in outcomes if outcome != "412")
    assert user.get(f"/tasks/{task['id']}").json()["description"] == winner
