"""Reminders follow the work (issue 20): a list task reminds its recipient (its assignee, else its
creator while a member, else the list's owner) with the recipient's preferences; a new recipient
re-arms both stages; the calendar feed holds what its owner is reminded of; deleting an account
hands its lists over.

Users act through the local API Gateway; the deadline check runs against the real PostgreSQL
with moto's SNS; lists and members are written as the lists' routes write them
(tests/support/lists.py).
"""

from __future__ import annotations

import json
from datetime import timedelta
from typing import Any

from sqlalchemy import Engine, text

from localdev.gateway import LocalGateway
from taskline.services import deadline_service
from tests.functions import test_deadlines
from tests.functions.test_deadlines import NOW, Aws, rfc3339
from tests.support.api import ApiClient, assert_problem, task_body, user_id_of
from tests.support.lists import Lists

aws = test_deadlines.aws


class Person:
    def __init__(self, gateway: LocalGateway) -> None:
        anonymous = ApiClient(gateway)
        self.email = anonymous.sign_up()
        self.api = ApiClient(gateway, anonymous.login(self.email))
        self.id = user_id_of(self.api)


def _add(person: Person, deadline: Any, **fields: Any) -> int:
    response = person.api.post("/tasks", json_body=task_body(deadline=rfc3339(deadline), **fields))
    assert response.status == 201, response.body
    task_id: int = response.json()["id"]
    return task_id


def _reminded(aws: Aws) -> list[tuple[int, str, int]]:
    """(task id, event type, user_id attribute) of every notice published so far."""
    return [
        (
            json.loads(envelope["Message"])["task"]["id"],
            envelope["MessageAttributes"]["event_type"]["Value"],
            int(envelope["MessageAttributes"]["user_id"]["Value"]),
        )
        for envelope in aws.received()
    ]


def test_the_assignee_is_reminded_with_their_own_lead_time(
    aws: Aws, gateway: LocalGateway, admin_engine: Engine
) -> None:
    ann, ben = Person(gateway), Person(gateway)
    lists = Lists(admin_engine)
    home = lists.create(ann.id)
    lists.add(home, ben.id, "editor")
    assert (
        ben.api.patch("/users/me/notifications", json_body={"due_soon_minutes": 60}).status == 200
    )
    task = _add(ann, NOW + timedelta(hours=2), list_id=home, assignee_id=ben.id)

    # Two hours ahead: due soon by ann's 24 hours, not yet by ben's hour.
    deadline_service.check_deadlines(now=NOW)
    assert _reminded(aws) == []
    deadline_service.check_deadlines(now=NOW + timedelta(minutes=61))
    [notice] = aws.notices()
    assert notice["owner"] == {"id": ben.id, "email": ben.email}
    assert _reminded(aws) == [(task, "task.due_soon", ben.id)]


def test_a_new_recipient_rearms_both_stages(
    aws: Aws, gateway: LocalGateway, admin_engine: Engine
) -> None:
    ann, ben, cy = Person(gateway), Person(gateway), Person(gateway)
    lists = Lists(admin_engine)
    home = lists.create(ann.id)
    lists.add(home, ben.id, "editor")
    lists.add(home, cy.id, "viewer")
    task = _add(ben, NOW - timedelta(hours=1), list_id=home)  # unassigned: its creator, ben

    deadline_service.check_deadlines(now=NOW)
    assert _reminded(aws) == [(task, "task.overdue", ben.id)]
    # Same recipient, an unrelated change: nothing again.
    ben.api.patch(f"/tasks/{task}", json_body={"description": "renamed"})
    deadline_service.check_deadlines(now=NOW)
    assert len(_reminded(aws)) == 1

    assert ben.api.patch(f"/tasks/{task}", json_body={"assignee_id": cy.id}).status == 200
    deadline_service.check_deadlines(now=NOW)
    assert _reminded(aws)[1:] == [(task, "task.overdue", cy.id)]

    # cy leaves: the assignment is cleared and the creator (ben) is reminded afresh.
    lists.remove(home, cy.id)
    deadline_service.check_deadlines(now=NOW)
    assert _reminded(aws)[2:] == [(task, "task.overdue", ben.id)]
    # ben leaves too: the list's owner is the recipient.
    lists.remove(home, ben.id)
    deadline_service.check_deadlines(now=NOW)
    assert _reminded(aws)[3:] == [(task, "task.overdue", ann.id)]


def _feed_uids(client: ApiClient, person: Person) -> set[str]:
    response = person.api.post("/users/me/calendar")
    assert response.status == 201, response.body
    path = "/" + response.json()["url"].split("://", 1)[1].split("/", 1)[1]
    feed = client.get(path)
    assert feed.status == 200, feed.body
    return {
        line.split(":", 1)[1].strip()
        for line in feed.body.decode().splitlines()
        if line.startswith("UID:")
    }


def test_the_calendar_feed_holds_what_its_owner_is_reminded_of(
    client: ApiClient, gateway: LocalGateway, admin_engine: Engine
) -> None:
    ann, ben = Person(gateway), Person(gateway)
    lists = Lists(admin_engine)
    home = lists.create(ann.id)
    lists.add(home, ben.id, "editor")
    soon = NOW + timedelta(days=3650)  # open and ahead, whenever the test runs
    bens = _add(ann, soon, list_id=home, assignee_id=ben.id)
    anns = _add(ben, soon, list_id=home, assignee_id=ann.id)
    personal = _add(ben, soon)
    assert _feed_uids(client, ben) == {f"task-{bens}@taskline", f"task-{personal}@taskline"}
    assert _feed_uids(client, ann) == {f"task-{anns}@taskline"}
    # Removed: ben's feed no longer holds the list's task; its owner's now does.
    lists.remove(home, ben.id)
    assert _feed_uids(client, ben) == {f"task-{personal}@taskline"}
    assert _feed_uids(client, ann) == {f"task-{anns}@taskline", f"task-{bens}@taskline"}


def test_deleting_an_account_hands_its_lists_over(
    aws: Aws, gateway: LocalGateway, admin_engine: Engine
) -> None:
    ann, ben, cy, dee = (Person(gateway) for _ in range(4))
    lists = Lists(admin_engine)
    shared = lists.create(ann.id, "Shared")
    lists.add(shared, ben.id, "viewer")  # longest-standing, but a viewer
    lists.add(shared, cy.id, "editor")
    lists.add(shared, dee.id, "editor")
    viewers_only = lists.create(ann.id, "Viewers")
    lists.add(viewers_only, dee.id, "viewer")
    alone = lists.create(ann.id, "Alone")
    joined = lists.create(dee.id, "Dee's")
    lists.add(joined, ann.id, "editor")
    anns_task = _add(ann, NOW - timedelta(hours=1), list_id=shared)  # ann's, as its creator
    _add(ann, NOW - timedelta(hours=1), list_id=alone)
    assigned_there = _add(dee, NOW - timedelta(hours=1), list_id=joined, assignee_id=ann.id)
    deadline_service.check_deadlines(now=NOW)
    before = _reminded(aws)
    assert {(t, u) for t, _, u in before} >= {(anns_task, ann.id), (assigned_there, ann.id)}

    response = ann.api.delete("/users/me", json_body={"password": "correct horse battery"})
    assert response.status == 204, response.body

    with admin_engine.connect() as connection:
        owners: dict[str, int] = dict(
            connection.execute(text("SELECT name, owner_id FROM lists")).all()
        )
        members = set(
            connection.execute(text("SELECT list_id, user_id, role FROM list_members")).all()
        )
    assert owners == {"Shared": cy.id, "Viewers": dee.id, "Dee's": dee.id}
    assert (shared, cy.id, "owner") in members
    assert (shared, dee.id, "editor") in members
    assert (viewers_only, dee.id, "owner") in members
    assert not any(user == ann.id for _, user, _ in members)
    # The list's tasks stay with it and remind their new recipients afresh.
    task = cy.api.get(f"/tasks/{anns_task}")
    assert task.status == 200
    assert task.json()["created_by"] is None
    assert dee.api.get(f"/tasks/{assigned_there}").json()["assignee_id"] is None
    deadline_service.check_deadlines(now=NOW)
    later = {(t, u) for t, _, u in _reminded(aws)[len(before) :]}
    assert later == {(anns_task, cy.id), (assigned_there, dee.id)}
    # Her token outlives her account until it expires (docs/security.md), and sees nothing.
    assert_problem(ann.api.get(f"/tasks/{anns_task}"), 404)
