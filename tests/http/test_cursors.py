"""Paging cursors over the API: only a cursor the API issued, for this caller and these
filters, is accepted; everything else is 422, and no query value reaches the database out of
range (issue 13)."""

from __future__ import annotations

import base64
import json
from urllib.parse import quote

import pytest

from tests.http.test_tasks import create, next_link
from tests.layer.test_signing_keys import NEW_SECRET, _rotate
from tests.support.api import ApiClient, assert_problem
from tests.support.environment import TEST_JWT_SECRET


def _unsigned(payload: object) -> str:
    """A cursor shaped as the API issued them before they were signed: base64url JSON."""
    return base64.urlsafe_b64encode(json.dumps(payload).encode()).decode().rstrip("=")


def _three_tasks(user: ApiClient) -> None:
    for day in ("01", "02", "03"):
        create(user, deadline=f"2030-01-{day}T00:00:00Z")


@pytest.mark.parametrize(
    "position",
    [
        ["9999-12-31T23:00:00-05:00", 1],  # in the year 10000 in UTC: used to be a 500
        ["0001-01-01T00:30:00+01:00", 1],  # before the year 1 in UTC: used to be a 500
        ["2030-01-01T00:00:00+00:00", 1],  # well formed, never issued: used to be a 200
        ["1970-01-01T00:00:00+00:00", 9007199254740991],
    ],
    ids=repr,
)
def test_decodable_cursors_the_api_never_issued_are_422(
    user: ApiClient, position: list[object]
) -> None:
    _three_tasks(user)
    body = assert_problem(user.get(f"/tasks?cursor={_unsigned(position)}"), 422)
    assert body["errors"][0]["loc"] == ["query", "cursor"]


def test_a_cursor_works_for_its_caller_and_filters_only(
    user: ApiClient, other_user: ApiClient
) -> None:
    _three_tasks(user)
    _three_tasks(other_user)
    link = next_link(user.get("/tasks?limit=1&category=work"))
    assert link is not None
    assert len(user.get(link).json()) == 1
    cursor = link.rpartition("cursor=")[2]
    # The page size may change from page to page; the filters may not.
    assert len(user.get(f"/tasks?limit=5&category=work&cursor={cursor}").json()) == 2
    assert_problem(user.get(f"/tasks?category=home&cursor={cursor}"), 422)
    assert_problem(user.get(f"/tasks?cursor={cursor}"), 422)
    assert_problem(user.get(f"/tasks?category=work&status=Done&cursor={cursor}"), 422)
    assert_problem(other_user.get(link), 422)


def test_an_altered_cursor_is_422(user: ApiClient) -> None:
    _three_tasks(user)
    link = next_link(user.get("/tasks?limit=1"))
    assert link is not None
    cursor = link.rpartition("cursor=")[2]
    for index in range(len(cursor)):
        replacement = "A" if cursor[index] != "A" else "B"
        altered = cursor[:index] + replacement + cursor[index + 1 :]
        assert_problem(user.get(f"/tasks?limit=1&cursor={altered}"), 422)


def test_cursors_survive_a_key_rotation_until_the_old_key_is_retired(
    user: ApiClient, monkeypatch: pytest.MonkeyPatch, reload_settings: None
) -> None:
    email = user.get("/users/me").json()["email"]
    _three_tasks(user)
    link = next_link(user.get("/tasks?limit=1"))
    assert link is not None
    _rotate(monkeypatch, NEW_SECRET, TEST_JWT_SECRET)  # the user's token verifies with the old key
    page = user.get(link)
    assert page.status == 200, page.body
    assert len(page.json()) == 1
    new_link = next_link(page)
    assert new_link is not None
    assert new_link != link
    _rotate(monkeypatch, NEW_SECRET, "")
    fresh = ApiClient(user.gateway, user.login(email))
    assert_problem(fresh.get(link), 422)  # signed with the retired key
    assert fresh.get(new_link).status == 200  # signed with the current one


EXTREMES = [
    "0001-01-01T00:00:00Z",
    "0001-01-01T00:00:00-14:00",
    "0001-01-01T00:30:00+01:00",
    "9999-12-31T23:59:59.999999Z",
    "9999-12-31T23:59:59+14:00",
    "9999-12-31T23:00:00-05:00",
    "0000-12-31T23:59:59Z",
    "10000-01-01T00:00:00Z",
]


@pytest.mark.parametrize("parameter", ["due_before", "due_after"])
@pytest.mark.parametrize("value", EXTREMES)
def test_no_timestamp_filter_reaches_the_database_out_of_range(
    user: ApiClient, parameter: str, value: str
) -> None:
    create(user)
    response = user.get(f"/tasks?{parameter}={quote(value)}")
    assert response.status in (200, 422), response.body
    if response.status == 422:
        assert_problem(response, 422)


@pytest.mark.parametrize("value", EXTREMES)
def test_no_deadline_reaches_the_database_out_of_range(user: ApiClient, value: str) -> None:
    response = user.post(
        "/tasks", json_body={"description": "Edge", "category": "edge", "deadline": value}
    )
    assert response.status in (201, 422), response.body
    if response.status == 201:
        # And it reads back, lists and pages without a driver overflow.
        assert user.get(f"/tasks/{response.json()['id']}").status == 200
        create(user, deadline=value)
        link = next_link(user.get("/tasks?limit=1"))
        assert link is not None
        assert user.get(link).status == 200


@pytest.mark.parametrize(
    "query",
    [
        "limit=99999999999999999999999",
        "limit=-99999999999999999999999",
        "limit=1e3",
        "category=" + "x" * 256,
        "status=" + "x" * 5000,
        "cursor=" + "A" * 5000,
    ],
)
def test_other_out_of_range_queries_are_422(user: ApiClient, query: str) -> None:
    assert_problem(user.get(f"/tasks?{query}"), 422)
