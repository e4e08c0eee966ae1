"""Tasks in shared lists, as an attacker would try them: other accounts' ids, lists and
assignees one may not use, viewers writing, and what a removed member keeps (nothing)."""

from __future__ import annotations

import threading
from dataclasses import dataclass
from typing import Any

import pytest
from sqlalchemy import Engine, text

from localdev.gateway import LocalGateway
from tests.support.api import ApiClient, assert_problem, task_body, user_id_of
from tests.support.lists import Lists

FORBIDDEN = "urn:taskline:problem:forbidden"


@dataclass
class Person:
    api: ApiClient
    id: int


def _person(gateway: LocalGateway) -> Person:
    anonymous = ApiClient(gateway)
    api = ApiClient(gateway, anonymous.login(anonymous.sign_up()))
    return Person(api, user_id_of(api))


@dataclass
class Household:
    """ann owns the list, ben edits it, cy views it; dee is in no list."""

    ann: Person
    ben: Person
    cy: Person
    dee: Person
    list_id: int
    lists: Lists


@pytest.fixture
def home(gateway: LocalGateway, admin_engine: Engine) -> Household:
    ann, ben, cy, dee = (_person(gateway) for _ in range(4))
    lists = Lists(admin_engine)
    list_id = lists.create(ann.id)
    lists.add(list_id, ben.id, "editor")
    lists.add(list_id, cy.id, "viewer")
    return Household(ann, ben, cy, dee, list_id, lists)


def _create(person: Person, **fields: Any) -> dict[str, Any]:
    response = person.api.post("/tasks", json_body=task_body(**fields))
    assert response.status == 201, response.body
    task: dict[str, Any] = response.json()
    return task


def _field_error(response: Any, field: str) -> None:
    body = assert_problem(response, 422)
    assert [error["loc"] for error in body["errors"]] == [["body", field]], body


def _next_query(response: Any) -> dict[str, str]:
    """The query of the next page's URL in the Link header."""
    url = response.header("Link").split(">")[0].lstrip("<")
    return dict(part.split("=", 1) for part in url.split("?")[1].split("&"))


def _ids(person: Person, **query: Any) -> list[int]:
    response = person.api.get("/tasks", query={"limit": 100, **query})
    assert response.status == 200, response.body
    return [task["id"] for task in response.json()]


def test_an_editor_creates_in_the_list_and_every_member_sees_it(home: Household) -> None:
    task = _create(home.ben, list_id=home.list_id, assignee_id=home.cy.id)
    assert task["list_id"] == home.list_id
    assert task["assignee_id"] == home.cy.id
    assert task["created_by"] == home.ben.id
    for member in (home.ann, home.ben, home.cy):
        assert member.api.get(f"/tasks/{task['id']}").status == 200
        assert task["id"] in _ids(member)
    assert_problem(home.dee.api.get(f"/tasks/{task['id']}"), 404)
    assert _ids(home.dee) == []


def test_personal_tasks_stay_personal(home: Household) -> None:
    mine = _create(home.ann)
    assert mine["list_id"] is None
    assert mine["created_by"] == home.ann.id
    assert_problem(home.ben.api.get(f"/tasks/{mine['id']}"), 404)
    assert mine["id"] not in _ids(home.ben)


def test_a_list_id_the_caller_may_not_use_is_422_on_the_field(home: Household) -> None:
    # A list they are not in and one that does not exist answer alike.
    _field_error(home.dee.api.post("/tasks", json_body=task_body(list_id=home.list_id)), "list_id")
    _field_error(home.dee.api.post("/tasks", json_body=task_body(list_id=999999)), "list_id")
    for bad in ("7", 0, -1, 2**53, 1.5, True):
        _field_error(home.ann.api.post("/tasks", json_body=task_body(list_id=bad)), "list_id")
    assert _ids(home.ann) == []


def test_an_assignee_who_is_not_a_member_is_422_on_the_field(home: Household) -> None:
    for assignee in (home.dee.id, 999999):
        response = home.ann.api.post(
            "/tasks", json_body=task_body(list_id=home.list_id, assignee_id=assignee)
        )
        _field_error(response, "assignee_id")
    # A personal task can be assigned to its owner only.
    _field_error(
        home.ann.api.post("/tasks", json_body=task_body(assignee_id=home.ben.id)), "assignee_id"
    )
    assert _create(home.ann, assignee_id=home.ann.id)["assignee_id"] == home.ann.id
    task = _create(home.ann, list_id=home.list_id)
    _field_error(
        home.ann.api.patch(f"/tasks/{task['id']}", json_body={"assignee_id": home.dee.id}),
        "assignee_id",
    )


def test_a_viewer_cannot_write_with_or_without_if_match(home: Household) -> None:
    _field_error_or_forbidden = home.cy.api.post(
        "/tasks", json_body=task_body(list_id=home.list_id)
    )
    assert assert_problem(_field_error_or_forbidden, 403)["type"] == FORBIDDEN
    task = _create(home.ann, list_id=home.list_id)
    path = f"/tasks/{task['id']}"
    etag = str(home.cy.api.get(path).header("ETag"))
    for headers in ({}, {"If-Match": etag}, {"If-Match": "*"}):
        for method, body in (
            ("PATCH", {"status": "Done"}),
            ("PATCH", {}),
            ("PUT", task_body(status="Done")),
            ("DELETE", None),
        ):
            response = home.cy.api.request(method, path, json_body=body, headers=headers)
            assert assert_problem(response, 403)["type"] == FORBIDDEN, (method, headers)
    assert home.ann.api.get(path).json() == task


def test_another_accounts_task_is_404_for_every_operation(home: Household) -> None:
    for task in (_create(home.ann), _create(home.ann, list_id=home.list_id)):
        path = f"/tasks/{task['id']}"
        etag = str(home.ann.api.get(path).header("ETag"))
        for headers in ({}, {"If-Match": etag}):
            for method, body in (
                ("GET", None),
                ("PATCH", {"status": "Done"}),
                ("PATCH", {}),
                ("PUT", task_body(status="Done")),
                ("DELETE", None),
            ):
                response = home.dee.api.request(method, path, json_body=body, headers=headers)
                assert_problem(response, 404)
        assert home.ann.api.get(path).json() == task


def test_put_without_list_or_assignee_keeps_them(home: Household) -> None:
    task = _create(home.ben, list_id=home.list_id, assignee_id=home.ben.id)
    response = home.ann.api.put(
        f"/tasks/{task['id']}", json_body=task_body(description="v2", status="To Do")
    )
    assert response.status == 200, response.body
    assert (response.json()["list_id"], response.json()["assignee_id"]) == (
        home.list_id,
        home.ben.id,
    )
    response = home.ann.api.put(
        f"/tasks/{task['id']}",
        json_body=task_body(list_id=home.list_id, assignee_id=None, status="To Do"),
    )
    assert response.json()["assignee_id"] is None


def test_moving_needs_write_access_to_both_lists(home: Household, admin_engine: Engine) -> None:
    other = home.lists.create(home.dee.id, "Dee's")
    home.lists.add(other, home.ben.id, "viewer")
    task = _create(home.ann, list_id=home.list_id, assignee_id=home.cy.id)
    path = f"/tasks/{task['id']}"
    # ben edits the source but only views the destination; ann is not in it at all.
    assert (
        assert_problem(home.ben.api.patch(path, json_body={"list_id": other}), 403)["type"]
        == FORBIDDEN
    )
    _field_error(home.ann.api.patch(path, json_body={"list_id": other}), "list_id")
    # A viewer of the source cannot move it out, not even into their own tasks.
    assert_problem(home.cy.api.patch(path, json_body={"list_id": None}), 403)
    # Into the caller's personal tasks: the assignee (not the caller) is cleared.
    moved = home.ann.api.patch(path, json_body={"list_id": None})
    assert moved.status == 200, moved.body
    assert (moved.json()["list_id"], moved.json()["assignee_id"]) == (None, None)
    assert_problem(home.ben.api.get(path), 404)
    # And back into the list, where ann stays the assignee she now is.
    home.ann.api.patch(path, json_body={"assignee_id": home.ann.id})
    back = home.ann.api.patch(path, json_body={"list_id": home.list_id})
    assert (back.json()["list_id"], back.json()["assignee_id"]) == (home.list_id, home.ann.id)
    # Into a list where the assignee is not a member: cleared.
    home.lists.add(other, home.ann.id, "editor")
    there = home.ann.api.patch(path, json_body={"list_id": other})
    assert (there.json()["list_id"], there.json()["assignee_id"]) == (other, home.ann.id)
    home.ann.api.patch(path, json_body={"list_id": home.list_id, "assignee_id": home.cy.id})
    again = home.ann.api.patch(path, json_body={"list_id": other})
    assert (again.json()["list_id"], again.json()["assignee_id"]) == (other, None)


def test_a_removed_member_loses_everything_on_the_next_request(home: Household) -> None:
    task = _create(home.ben, list_id=home.list_id, assignee_id=home.ben.id)
    path = f"/tasks/{task['id']}"
    first = home.ben.api.get("/tasks", query={"limit": 1})
    _create(home.ann, list_id=home.list_id)
    page = home.ben.api.get("/tasks", query={"limit": 1})
    next_page = _next_query(page)
    key = {"Idempotency-Key": "ben-1"}
    body = task_body(list_id=home.list_id, description="with a key")
    created = home.ben.api.post("/tasks", json_body=body, headers=key)
    assert created.status == 201
    assert first.status == 200

    home.lists.remove(home.list_id, home.ben.id)

    assert_problem(home.ben.api.get(path), 404)
    assert_problem(home.ben.api.patch(path, json_body={"status": "Done"}), 404)
    assert_problem(home.ben.api.delete(path), 404)
    assert _ids(home.ben) == []
    # The cursor still verifies (nothing about membership is in it) but shows nothing of the list.
    following = home.ben.api.get("/tasks", query=next_page)
    assert following.status == 200, following.body
    assert following.json() == []
    # The replay of the creation answers as the request would now: not a list ben can use.
    replay = home.ben.api.post("/tasks", json_body=body, headers=key)
    _field_error(replay, "list_id")
    # The database cleared his assignment, and the task now reminds its owner.
    after = home.ann.api.get(path).json()
    assert after["assignee_id"] is None


def test_deleting_a_list_while_a_member_pages_through_it(home: Household) -> None:
    for day in range(1, 6):
        _create(home.ann, list_id=home.list_id, deadline=f"2030-01-0{day}T09:00:00Z")
    _create(home.ben, deadline="2030-01-03T12:00:00Z")
    page = home.ben.api.get("/tasks", query={"limit": 2})
    assert [t["list_id"] for t in page.json()] == [home.list_id, home.list_id]
    home.lists.delete(home.list_id)
    rest = home.ben.api.get("/tasks", query=_next_query(page))
    assert rest.status == 200, rest.body
    assert [t["list_id"] for t in rest.json()] == [None]
    assert rest.header("Link") is None


def test_filters_by_list_and_assignee(home: Household) -> None:
    mine = _create(home.ben)
    unassigned = _create(home.ann, list_id=home.list_id)
    bens = _create(home.ann, list_id=home.list_id, assignee_id=home.ben.id)
    cys = _create(home.ann, list_id=home.list_id, assignee_id=home.cy.id)
    assert _ids(home.ben) == [mine["id"], unassigned["id"], bens["id"], cys["id"]]
    assert _ids(home.ben, list_id="personal") == [mine["id"]]
    assert _ids(home.ben, list_id=home.list_id) == [unassigned["id"], bens["id"], cys["id"]]
    assert _ids(home.ben, assignee="me") == [bens["id"]]
    assert _ids(home.ben, assignee="none") == [mine["id"], unassigned["id"]]
    assert _ids(home.ben, assignee=home.cy.id) == [cys["id"]]
    assert _ids(home.ben, list_id=home.list_id, assignee="none") == [unassigned["id"]]
    # A list the caller is not in shows nothing (whether or not it exists).
    assert _ids(home.dee, list_id=home.list_id) == []
    for bad in (
        {"list_id": "mine"},
        {"list_id": "07"},
        {"assignee": "you"},
        {"assignee": "0"},
        {"list_id": str(2**53)},
    ):
        assert_problem(home.ben.api.get("/tasks", query=bad), 422)


def test_cursors_are_bound_to_the_new_filters(home: Household) -> None:
    for _ in range(3):
        _create(home.ann, list_id=home.list_id)
    page = home.ann.api.get("/tasks", query={"limit": 1, "list_id": home.list_id})
    query = _next_query(page)
    assert home.ann.api.get("/tasks", query=query).status == 200
    for changed in ({"list_id": "personal"}, {"assignee": "me"}):
        assert_problem(home.ann.api.get("/tasks", query={**query, **changed}), 422)
    assert_problem(home.ben.api.get("/tasks", query=query), 422)


def test_a_removal_racing_a_write_wins_or_waits_never_both(
    home: Household, admin_engine: Engine
) -> None:
    """The member row is locked by the statement that writes: a removal in flight makes the
    write wait, and once it commits the write finds no membership and changes nothing. (The
    task is assigned to the member removed, so the removal also holds the task, clearing it.)"""
    task = _create(home.ann, list_id=home.list_id, assignee_id=home.ben.id)
    path = f"/tasks/{task['id']}"
    answers: list[Any] = []
    with admin_engine.connect() as removal:
        transaction = removal.begin()
        removal.execute(
            text("DELETE FROM list_members WHERE list_id = :l AND user_id = :u"),
            {"l": home.list_id, "u": home.ben.id},
        )
        writer = threading.Thread(
            target=lambda: answers.append(
                home.ben.api.patch(path, json_body={"description": "too late"})
            )
        )
        writer.start()
        writer.join(timeout=1.0)
        assert writer.is_alive()  # waiting on the member row the removal holds
        transaction.commit()
    writer.join(timeout=10)
    [answer] = answers
    assert_problem(answer, 404)
    assert home.ann.api.get(path).json()["description"] == task["description"]
