"""Task CRUD through the local API Gateway, always scoped to the caller."""

from __future__ import annotations

import json
import re
from typing import Any
from urllib.parse import urlsplit

import pytest
from sqlalchemy import Engine, text

from localdev.gateway import GatewayResponse
from tests.support.api import TASK_FIELDS, ApiClient, assert_problem, task_body

# Also run through the paused Aurora stand-in by make test (tests/aurora).
pytestmark = pytest.mark.aurora_contract

RFC3339_UTC = re.compile(r"^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d(\.\d+)?Z$")
JSON = "application/json"


def create(client: ApiClient, **overrides: Any) -> dict[str, Any]:
    response = client.post("/tasks", json_body=task_body(**overrides))
    assert response.status == 201, response.body
    task: dict[str, Any] = response.json()
    return task


def rows(admin_engine: Engine) -> list[dict[str, Any]]:
    with admin_engine.connect() as connection:
        result = connection.execute(text("SELECT * FROM tasks ORDER BY id"))
        return [dict(row._mapping) for row in result]


# Create and read


def test_create(user: ApiClient) -> None:
    response = user.post("/tasks", json_body=task_body())
    assert response.status == 201
    assert response.header("Content-Type") == "application/json"
    task = response.json()
    assert set(task) == TASK_FIELDS
    assert response.header("Location") == f"/tasks/{task['id']}"
    assert task["description"] == "Write the quarterly report"
    assert task["category"] == "work"
    assert task["deadline"] == "2030-01-15T09:00:00Z"
    assert task["status"] == "To Do"
    assert RFC3339_UTC.match(task["created_at"])
    assert task["created_at"] == task["updated_at"]


@pytest.mark.parametrize("status", ["To Do", "In Progress", "Done"])
def test_create_with_status(user: ApiClient, status: str) -> None:
    assert create(user, status=status)["status"] == status


def test_get_by_id(user: ApiClient) -> None:
    task = create(user)
    response = user.get(f"/tasks/{task['id']}")
    assert response.status == 200
    assert response.json() == task


@pytest.mark.parametrize(
    ("sent", "shown"),
    [
        ("2030-01-15T09:00:00Z", "2030-01-15T09:00:00Z"),
        ("2030-01-15T09:00:00", "2030-01-15T09:00:00Z"),  # no offset: UTC
        ("2030-01-15T10:30:00+01:30", "2030-01-15T09:00:00Z"),
        ("2030-01-14T23:00:00-10:00", "2030-01-15T09:00:00Z"),
        ("2030-01-15T09:00:00.250Z", "2030-01-15T09:00:00.250000Z"),
        ("2030-01-15t09:00:00z", "2030-01-15T09:00:00Z"),
        ("2030-01-15 09:00:00Z", "2030-01-15T09:00:00Z"),
    ],
)
def test_timestamps_are_shown_in_utc_with_z(user: ApiClient, sent: str, shown: str) -> None:
    task = create(user, deadline=sent)
    assert task["deadline"] == shown
    assert user.get(f"/tasks/{task['id']}").json()["deadline"] == shown


def test_text_is_trimmed_and_unicode_kept(user: ApiClient) -> None:
    task = create(user, description="  Café ☕ — 日本語\nsecond line  ", category=" home ")
    assert task["description"] == "Café ☕ — 日本語\nsecond line"
    assert task["category"] == "home"


def test_long_text_limits(user: ApiClient) -> None:
    assert create(user, description="d" * 4000, category="c" * 255)["category"] == "c" * 255
    assert_problem(user.post("/tasks", json_body=task_body(description="d" * 4001)), 422)
    assert_problem(user.post("/tasks", json_body=task_body(category="c" * 256)), 422)


# Bad input: 422 and nothing stored


BAD_CREATE_BODIES: dict[str, dict[str, Any]] = {
    "empty description": task_body(description=""),
    "blank description": task_body(description="   \t\n "),
    "empty category": task_body(category=""),
    "blank category": task_body(category="  "),
    "null description": task_body(description=None),
    "numeric description": task_body(description=5),
    "NUL in description": task_body(description="before\x00after"),
    "NUL in category": task_body(category="\x00"),
    "control character": task_body(description="bell\x07"),
    "bad status": task_body(status="Blocked"),
    "status in another case": task_body(status="done"),
    "null status": task_body(status=None),
    "bad timestamp": task_body(deadline="next tuesday"),
    "invalid date": task_body(deadline="2030-02-30T09:00:00Z"),
    "unix time number": task_body(deadline=1893661200),
    "unix time string": task_body(deadline="1893661200"),
    "date only": task_body(deadline="2030-01-15"),
    "NUL in timestamp": task_body(deadline="2030-01-15T09:00:00Z\x00"),
    "timestamp past year 9999 in UTC": task_body(deadline="9999-12-31T23:30:00-01:00"),
    "timestamp before year 1 in UTC": task_body(deadline="0001-01-01T00:30:00+01:00"),
    "missing deadline": {"description": "d", "category": "c"},
    "missing description": {"category": "c", "deadline": "2030-01-15T09:00:00Z"},
    "unknown field": task_body(priority="high"),
    "id": task_body(id=99),
    "user_id": task_body(user_id=1),
    "created_at": task_body(created_at="2030-01-15T09:00:00Z"),
}


@pytest.mark.parametrize("case", BAD_CREATE_BODIES)
def test_bad_create_bodies(user: ApiClient, admin_engine: Engine, case: str) -> None:
    body = assert_problem(user.post("/tasks", json_body=BAD_CREATE_BODIES[case]), 422)
    assert all(error["loc"][0] == "body" for error in body["errors"])
    assert rows(admin_engine) == []


@pytest.mark.parametrize(
    "body", [[], "task", 5, None, [task_body()], [task_body(), task_body()]], ids=repr
)
def test_create_body_must_be_an_object(user: ApiClient, admin_engine: Engine, body: object) -> None:
    response = user.post("/tasks", body=json.dumps(body), headers={"Content-Type": JSON})
    assert_problem(response, 422)
    assert rows(admin_engine) == []


def test_patch_body_must_be_an_object(user: ApiClient, admin_engine: Engine) -> None:
    task = create(user)
    before = rows(admin_engine)
    body = json.dumps([{"status": "Done"}])
    response = user.patch(f"/tasks/{task['id']}", body=body, headers={"Content-Type": JSON})
    assert_problem(response, 422)
    assert rows(admin_engine) == before


def test_create_without_a_body(user: ApiClient) -> None:
    assert_problem(user.post("/tasks", headers={"Content-Type": JSON}), 422)


# Update


def test_patch_changes_only_what_is_sent(user: ApiClient) -> None:
    task = create(user)
    response = user.patch(f"/tasks/{task['id']}", json_body={"status": "In Progress"})
    assert response.status == 200
    changed = response.json()
    assert changed["status"] == "In Progress"
    for field in ("description", "category", "deadline", "created_at", "id"):
        assert changed[field] == task[field]
    assert changed["updated_at"] >= task["updated_at"]
    assert user.get(f"/tasks/{task['id']}").json() == changed


def test_patch_every_field(user: ApiClient) -> None:
    task = create(user)
    changes = {
        "description": "New text",
        "category": "home",
        "deadline": "2031-06-01T12:00:00+02:00",
        "status": "Done",
    }
    changed = user.patch(f"/tasks/{task['id']}", json_body=changes).json()
    assert changed["description"] == "New text"
    assert changed["category"] == "home"
    assert changed["deadline"] == "2031-06-01T10:00:00Z"
    assert changed["status"] == "Done"


def test_empty_patch_changes_nothing(user: ApiClient) -> None:
    task = create(user)
    response = user.patch(f"/tasks/{task['id']}", json_body={})
    assert response.status == 200
    assert response.json() == task


@pytest.mark.parametrize(
    "changes",
    [
        {"description": None},
        {"category": None},
        {"deadline": None},
        {"status": None},
        {"description": ""},
        {"status": "Blocked"},
        {"deadline": "soon"},
        {"id": 7},
        {"user_id": 2},
        {"updated_at": "2030-01-15T09:00:00Z"},
    ],
    ids=repr,
)
def test_bad_patch_changes_nothing(
    user: ApiClient, admin_engine: Engine, changes: dict[str, Any]
) -> None:
    task = create(user)
    before = rows(admin_engine)
    assert_problem(user.patch(f"/tasks/{task['id']}", json_body=changes), 422)
    assert rows(admin_engine) == before


def test_put_replaces_every_field(user: ApiClient) -> None:
    task = create(user, status="In Progress")
    replacement = {
        "description": "Replaced",
        "category": "errands",
        "deadline": "2032-03-04T05:06:07Z",
        "status": "Done",
    }
    response = user.put(f"/tasks/{task['id']}", json_body=replacement)
    assert response.status == 200
    replaced = response.json()
    assert {k: replaced[k] for k in replacement} == replacement
    assert replaced["id"] == task["id"]
    assert replaced["created_at"] == task["created_at"]


@pytest.mark.parametrize("missing", ["description", "category", "deadline", "status"])
def test_put_needs_every_field(user: ApiClient, admin_engine: Engine, missing: str) -> None:
    task = create(user)
    replacement = task_body(status="Done")
    del replacement[missing]
    before = rows(admin_engine)
    body = assert_problem(user.put(f"/tasks/{task['id']}", json_body=replacement), 422)
    assert ["body", missing] in [error["loc"] for error in body["errors"]]
    assert rows(admin_engine) == before


def test_put_refuses_nulls_and_unknown_fields(user: ApiClient) -> None:
    task = create(user)
    assert_problem(user.put(f"/tasks/{task['id']}", json_body=task_body(status=None)), 422)
    body = task_body(status="Done", id=task["id"])
    assert_problem(user.put(f"/tasks/{task['id']}", json_body=body), 422)


# Delete


def test_delete_then_gone(user: ApiClient) -> None:
    task = create(user)
    response = user.delete(f"/tasks/{task['id']}")
    assert response.status == 204
    assert response.body == b""
    assert_problem(user.get(f"/tasks/{task['id']}"), 404)
    assert_problem(user.delete(f"/tasks/{task['id']}"), 404)
    assert_problem(user.patch(f"/tasks/{task['id']}", json_body={"status": "Done"}), 404)


@pytest.mark.parametrize(
    ("method", "body"),
    [
        ("GET", None),
        ("PATCH", {"status": "Done"}),
        ("PATCH", {}),
        ("PUT", task_body(status="Done")),
        ("DELETE", None),
    ],
)
def test_missing_task_is_404(user: ApiClient, method: str, body: dict[str, Any] | None) -> None:
    response = user.request(method, "/tasks/987654", json_body=body)
    assert assert_problem(response, 404)["detail"] == "No such task."


# Isolation between users


@pytest.mark.parametrize(
    ("method", "body"),
    [
        ("GET", None),
        ("PATCH", {"status": "Done"}),
        ("PATCH", {}),
        ("PUT", task_body(description="Mine now", status="Done")),
        ("DELETE", None),
    ],
)
def test_another_users_task_is_404_and_unchanged(
    user: ApiClient,
    other_user: ApiClient,
    admin_engine: Engine,
    method: str,
    body: dict[str, Any] | None,
) -> None:
    task = create(user)
    before = rows(admin_engine)
    foreign = other_user.request(method, f"/tasks/{task['id']}", json_body=body)
    missing = other_user.request(method, "/tasks/987654", json_body=body)
    assert foreign.status == missing.status == 404
    assert foreign.body == missing.body  # indistinguishable from a missing task
    assert rows(admin_engine) == before
    assert user.get(f"/tasks/{task['id']}").json() == task


def test_lists_show_only_the_callers_tasks(user: ApiClient, other_user: ApiClient) -> None:
    mine = create(user, description="mine")
    create(other_user, description="theirs")
    assert user.get("/tasks").json() == [mine]
    assert [t["description"] for t in other_user.get("/tasks").json()] == ["theirs"]


# Listing, filtering, paging


def test_empty_list(user: ApiClient) -> None:
    response = user.get("/tasks")
    assert response.status == 200
    assert response.json() == []
    assert response.header("Link") is None


def test_list_is_ordered_by_deadline_then_id(user: ApiClient) -> None:
    late = create(user, deadline="2030-03-01T00:00:00Z")
    tie_a = create(user, deadline="2030-02-01T00:00:00Z")
    early = create(user, deadline="2030-01-01T00:00:00+05:00")
    tie_b = create(user, deadline="2030-02-01T01:00:00+01:00")  # the same instant as tie_a
    listed = [task["id"] for task in user.get("/tasks").json()]
    assert listed == [early["id"], tie_a["id"], tie_b["id"], late["id"]]


@pytest.fixture
def spread(user: ApiClient) -> dict[str, dict[str, Any]]:
    return {
        "a": create(user, category="work", status="To Do", deadline="2030-01-01T00:00:00Z"),
        "b": create(user, category="home", status="Done", deadline="2030-02-01T00:00:00Z"),
        "c": create(user, category="work", status="Done", deadline="2030-03-01T00:00:00Z"),
        "d": create(user, category="Work", status="In Progress", deadline="2030-04-01T00:00:00Z"),
    }


@pytest.mark.parametrize(
    ("query", "expected"),
    [
        ({"status": "Done"}, "bc"),
        ({"status": "In Progress"}, "d"),
        ({"category": "work"}, "ac"),
        ({"category": "Work"}, "d"),
        ({"category": "nothing"}, ""),
        ({"due_before": "2030-02-01T00:00:00Z"}, "a"),  # exclusive
        ({"due_after": "2030-03-01T00:00:00Z"}, "cd"),  # inclusive
        ({"due_after": "2030-01-15T00:00:00", "due_before": "2030-03-15T00:00:00"}, "bc"),
        ({"due_before": "2030-02-01T01:00:00+01:00"}, "a"),  # 00:00 UTC
        ({"status": "Done", "category": "work"}, "c"),
        ({"status": "To Do", "due_after": "2030-01-02T00:00:00Z"}, ""),
    ],
    ids=repr,
)
def test_filters(
    user: ApiClient, spread: dict[str, dict[str, Any]], query: dict[str, str], expected: str
) -> None:
    response = user.get("/tasks", query=query)
    assert response.status == 200, response.body
    assert [task["id"] for task in response.json()] == [spread[key]["id"] for key in expected]


def follow_pages(client: ApiClient, first: str, *, max_pages: int = 50) -> list[list[int]]:
    pages: list[list[int]] = []
    target: str | None = first
    while target is not None:
        assert len(pages) < max_pages, "the Link chain does not end"
        response = client.get(target)
        assert response.status == 200, response.body
        pages.append([task["id"] for task in response.json()])
        target = next_link(response)
    return pages


def next_link(response: GatewayResponse) -> str | None:
    link = response.header("Link")
    if link is None:
        return None
    found = re.fullmatch(r'<([^>]+)>; rel="next"', link)
    assert found, link
    url = urlsplit(found.group(1))
    assert url.scheme == "https"
    assert url.netloc == "localhost"
    assert url.path == "/tasks"
    return f"{url.path}?{url.query}"


def test_paging_walks_every_task_once_in_order(user: ApiClient) -> None:
    # Equal deadlines straddle page boundaries: only (deadline, id) keysets get this right.
    deadlines = [f"2030-01-0{1 + i // 3}T00:00:00Z" for i in range(11)]
    for deadline in reversed(deadlines):
        create(user, deadline=deadline)
    everything = [task["id"] for task in user.get("/tasks", query={"limit": 100}).json()]
    assert len(everything) == 11
    for limit in (1, 2, 3, 4, 10, 11, 12):
        pages = follow_pages(user, f"/tasks?limit={limit}")
        assert [task for page in pages for task in page] == everything
        assert all(len(page) == limit for page in pages[:-1])
        assert 1 <= len(pages[-1]) <= limit
        assert len(pages) == -(-11 // limit)


def test_paging_keeps_the_filters(user: ApiClient) -> None:
    done = [
        create(user, status="Done", deadline=f"2030-01-0{i}T00:00:00Z")["id"] for i in (1, 2, 3)
    ]
    for i in (1, 2, 3):
        create(user, status="To Do", deadline=f"2030-01-0{i}T12:00:00Z")
    pages = follow_pages(user, "/tasks?status=Done&limit=2")
    assert pages == [done[:2], done[2:]]


def test_paging_is_stable_under_inserts_and_deletes(user: ApiClient) -> None:
    ids = [create(user, deadline=f"2030-01-0{i}T00:00:00Z")["id"] for i in range(1, 6)]
    first = user.get("/tasks", query={"limit": 2})
    assert [t["id"] for t in first.json()] == ids[:2]
    link = next_link(first)
    assert link is not None
    user.delete(f"/tasks/{ids[0]}")  # behind the cursor
    user.delete(f"/tasks/{ids[2]}")  # just after it
    early = create(user, deadline="2029-01-01T00:00:00Z")["id"]  # before the cursor
    rest = follow_pages(user, link)
    assert [task for page in rest for task in page] == [ids[3], ids[4]]
    assert early not in [task for page in rest for task in page]


def test_default_page_size_is_50(user: ApiClient, admin_engine: Engine) -> None:
    user_id = user.get("/users/me").json()["id"]
    with admin_engine.begin() as connection:
        connection.execute(
            text(
                "INSERT INTO tasks (user_id, description, category, deadline)"
                " SELECT :u, 'bulk ' || n, 'work',"
                "        '2030-01-01'::timestamptz + n * interval '1 hour'"
                " FROM generate_series(1, 120) AS n"
            ),
            {"u": user_id},
        )
    first = user.get("/tasks")
    assert len(first.json()) == 50
    assert next_link(first) is not None
    pages = follow_pages(user, "/tasks?limit=100")
    assert [len(page) for page in pages] == [100, 20]


@pytest.mark.parametrize(
    "query",
    [
        "limit=0",
        "limit=101",
        "limit=-1",
        "limit=abc",
        "limit=1.5",
        "limit=",
        "limit=1&limit=2",
        "status=Blocked",
        "status=done",
        "status=",
        "category=",
        "category=%00",
        "due_before=yesterday",
        "due_before=2030-02-30T00:00:00Z",
        "due_after=1893456000",
        "due_after=%00",
        "due_before=9999-12-31T23%3A30%3A00-01%3A00",
        "due_after=2030-02-01T00:00:00Z&due_before=2030-01-01T00:00:00Z",
        "due_after=2030-01-01T00:00:00Z&due_before=2030-01-01T00:00:00Z",
        "cursor=not-a-cursor",
        "cursor=" + "A" * 201,
        "cursor=WyIyMDMwLTAxLTAxVDAwOjAwOjAwIiwgMV0",  # a naive deadline
        "cursor=WyIyMDMwLTAxLTAxVDAwOjAwOjAwWiIsIC0xXQ",  # a negative id
        "cursor=WyIyMDMwLTAxLTAxVDAwOjAwOjAwWiIsIDFd",  # well formed but never issued
        "cursor=%00",
    ],
)
def test_bad_queries_are_422(user: ApiClient, query: str) -> None:
    body = assert_problem(user.get(f"/tasks?{query}"), 422)
    assert all(error["loc"][0] == "query" for error in body["errors"])


@pytest.mark.parametrize("limit", ["1", "100", "050"])
def test_limit_bounds_are_inclusive(user: ApiClient, limit: str) -> None:
    assert user.get(f"/tasks?limit={limit}").status == 200


@pytest.mark.parametrize(
    "task_id",
    ["abc", "0", "-1", "1.5", "9007199254740992", "9223372036854775808", "9" * 5000, "%00"],
)
def test_bad_task_ids_are_422(user: ApiClient, task_id: str) -> None:
    for method in ("GET", "DELETE"):
        assert_problem(user.request(method, f"/tasks/{task_id}"), 422)


def test_largest_task_id_is_just_missing(user: ApiClient) -> None:
    # Path ids stop at 2**53 - 1, the largest integer every JSON client reads exactly.
    assert_problem(user.get("/tasks/9007199254740991"), 404)


@pytest.mark.parametrize(
    "spelling",
    ["7.0", "+7", "07", "7.00", "7_0", "0007", " 7", "7 ", "%207", "7%0A", "\u0667", "7e0", "0x7"],
)
def test_a_task_has_one_url(user: ApiClient, spelling: str) -> None:
    """Only `[1-9][0-9]*` is a task id: other spellings of a number are 422, not another URL
    for the same task (or, for `7_0`, a different one)."""
    for _ in range(70):
        created = create(user)
    assert created["id"] == 70
    assert user.get("/tasks/7").status == 200
    for method in ("GET", "DELETE"):
        body = assert_problem(user.request(method, f"/tasks/{spelling}"), 422)
        assert body["errors"][0]["loc"] == ["path", "task_id"]
    response = user.patch(f"/tasks/{spelling}", json_body={"status": "Done"})
    assert_problem(response, 422)
    assert user.get("/tasks/7").json()["status"] == "To Do"
    assert user.get("/tasks/70").json()["status"] == "To Do"
