"""What the database itself guarantees about shared lists, whatever the code above it does:
exactly one owner per list, assignees who are members, tasks that are personal or a list's."""

from __future__ import annotations

from collections.abc import Iterator

import pytest
from sqlalchemy import Connection, Engine, text
from sqlalchemy.exc import DBAPIError

from taskline.db import sqlstate

FOREIGN_KEY_VIOLATION = "23503"
UNIQUE_VIOLATION = "23505"
CHECK_VIOLATION = "23514"


def _user(connection: Connection, email: str) -> int:
    return int(
        connection.execute(
            text("INSERT INTO users (email, password_hash) VALUES (:e, 'x') RETURNING id"),
            {"e": email},
        ).scalar_one()
    )


def _list(connection: Connection, owner: int, name: str = "Home") -> int:
    list_id = int(
        connection.execute(
            text("INSERT INTO lists (name, owner_id) VALUES (:n, :o) RETURNING id"),
            {"n": name, "o": owner},
        ).scalar_one()
    )
    _member(connection, list_id, owner, "owner")
    return list_id


def _member(connection: Connection, list_id: int, user_id: int, role: str) -> None:
    connection.execute(
        text("INSERT INTO list_members (list_id, user_id, role) VALUES (:l, :u, :r)"),
        {"l": list_id, "u": user_id, "r": role},
    )


@pytest.fixture
def people(admin_engine: Engine) -> Iterator[tuple[int, int, int]]:
    with admin_engine.begin() as connection:
        ids = tuple(_user(connection, f"{name}@lists.example") for name in ("ann", "ben", "cy"))
    yield ids  # type: ignore[misc]
    with admin_engine.begin() as connection:
        connection.execute(text("DELETE FROM lists"))
        connection.execute(text("DELETE FROM users WHERE email LIKE '%@lists.example'"))


def _refused(engine: Engine, statement: str, values: dict[str, object]) -> str | None:
    with pytest.raises(DBAPIError) as raised, engine.begin() as connection:
        connection.execute(text(statement), values)
    return sqlstate(raised.value)


def test_a_list_cannot_be_committed_without_its_owner_row(
    admin_engine: Engine, people: tuple[int, int, int]
) -> None:
    ann, _, _ = people
    assert (
        _refused(admin_engine, "INSERT INTO lists (name, owner_id) VALUES ('x', :o)", {"o": ann})
        == FOREIGN_KEY_VIOLATION
    )


def test_a_list_has_at_most_one_owner(admin_engine: Engine, people: tuple[int, int, int]) -> None:
    ann, ben, _ = people
    with admin_engine.begin() as connection:
        list_id = _list(connection, ann)
    statement = "INSERT INTO list_members (list_id, user_id, role) VALUES (:l, :u, 'owner')"
    assert _refused(admin_engine, statement, {"l": list_id, "u": ben}) == UNIQUE_VIOLATION


def test_demoting_the_owner_without_handing_over_is_refused(
    admin_engine: Engine, people: tuple[int, int, int]
) -> None:
    ann, ben, _ = people
    with admin_engine.begin() as connection:
        list_id = _list(connection, ann)
        _member(connection, list_id, ben, "editor")
    statement = "UPDATE list_members SET role = 'editor' WHERE list_id = :l AND user_id = :u"
    assert _refused(admin_engine, statement, {"l": list_id, "u": ann}) == FOREIGN_KEY_VIOLATION


def test_handing_ownership_over_within_a_transaction_commits(
    admin_engine: Engine, people: tuple[int, int, int]
) -> None:
    ann, ben, _ = people
    with admin_engine.begin() as connection:
        list_id = _list(connection, ann)
        _member(connection, list_id, ben, "editor")
    with admin_engine.begin() as connection:
        values = {"l": list_id, "old": ann, "new": ben}
        connection.execute(
            text("UPDATE list_members SET role = 'editor' WHERE list_id = :l AND user_id = :old"),
            values,
        )
        connection.execute(
            text("UPDATE list_members SET role = 'owner' WHERE list_id = :l AND user_id = :new"),
            values,
        )
        connection.execute(text("UPDATE lists SET owner_id = :new WHERE id = :l"), values)
    with admin_engine.connect() as connection:
        owners = connection.execute(
            text("SELECT user_id FROM list_members WHERE list_id = :l AND role = 'owner'"),
            {"l": list_id},
        ).scalars()
        assert list(owners) == [ben]


def test_deleting_an_owner_account_that_was_not_handed_over_is_refused(
    admin_engine: Engine, people: tuple[int, int, int]
) -> None:
    ann, _, _ = people
    with admin_engine.begin() as connection:
        _list(connection, ann)
    assert (
        _refused(admin_engine, "DELETE FROM users WHERE id = :u", {"u": ann})
        == FOREIGN_KEY_VIOLATION
    )


def test_a_task_is_personal_or_a_lists_never_both_nor_neither(
    admin_engine: Engine, people: tuple[int, int, int]
) -> None:
    ann, _, _ = people
    with admin_engine.begin() as connection:
        list_id = _list(connection, ann)
    insert = (
        "INSERT INTO tasks (user_id, list_id, description, category, deadline)"
        " VALUES (:u, :l, 'd', 'c', now())"
    )
    assert _refused(admin_engine, insert, {"u": ann, "l": list_id}) == CHECK_VIOLATION
    assert _refused(admin_engine, insert, {"u": None, "l": None}) == CHECK_VIOLATION


def test_an_assignee_must_be_a_member_and_leaving_clears_the_assignment(
    admin_engine: Engine, people: tuple[int, int, int]
) -> None:
    ann, ben, cy = people
    with admin_engine.begin() as connection:
        list_id = _list(connection, ann)
        _member(connection, list_id, ben, "editor")
    insert = (
        "INSERT INTO tasks (list_id, assignee_id, description, category, deadline)"
        " VALUES (:l, :a, 'd', 'c', now()) RETURNING id"
    )
    assert _refused(admin_engine, insert, {"l": list_id, "a": cy}) == FOREIGN_KEY_VIOLATION
    with admin_engine.begin() as connection:
        task_id = connection.execute(text(insert), {"l": list_id, "a": ben}).scalar_one()
        connection.execute(
            text("DELETE FROM list_members WHERE list_id = :l AND user_id = :u"),
            {"l": list_id, "u": ben},
        )
        row = connection.execute(
            text("SELECT list_id, assignee_id FROM tasks WHERE id = :t"), {"t": task_id}
        ).one()
    assert tuple(row) == (list_id, None)  # the task stays in the list, unassigned


def test_a_personal_task_is_assigned_only_to_its_owner(
    admin_engine: Engine, people: tuple[int, int, int]
) -> None:
    ann, ben, _ = people
    insert = (
        "INSERT INTO tasks (user_id, assignee_id, description, category, deadline)"
        " VALUES (:u, :a, 'd', 'c', now())"
    )
    assert _refused(admin_engine, insert, {"u": ann, "a": ben}) == CHECK_VIOLATION


def test_deleting_a_list_deletes_its_tasks_members_and_invitations(
    admin_engine: Engine, people: tuple[int, int, int]
) -> None:
    ann, ben, _ = people
    with admin_engine.begin() as connection:
        list_id = _list(connection, ann)
        _member(connection, list_id, ben, "viewer")
        connection.execute(
            text(
                "INSERT INTO tasks (list_id, created_by, description, category, deadline)"
                " VALUES (:l, :u, 'd', 'c', now())"
            ),
            {"l": list_id, "u": ann},
        )
        connection.execute(
            text(
                "INSERT INTO list_invitations (list_id, email, role, invited_by, expires_at)"
                " VALUES (:l, 'dee@lists.example', 'editor', :u, now() + interval '7 days')"
            ),
            {"l": list_id, "u": ann},
        )
        connection.execute(text("DELETE FROM lists WHERE id = :l"), {"l": list_id})
        left = [
            connection.execute(
                text(f"SELECT count(*) FROM {table} WHERE list_id = :l"), {"l": list_id}
            ).scalar_one()
            for table in ("tasks", "list_members", "list_invitations")
        ]
    assert left == [0, 0, 0]


def test_refreshed_recipients_follow_the_rule_and_re_arm_reminders(
    admin_engine: Engine, people: tuple[int, int, int]
) -> None:
    from sqlalchemy.orm import Session

    from taskline.repositories import task_repository

    ann, ben, cy = people
    with admin_engine.begin() as connection:
        list_id = _list(connection, ann)
        _member(connection, list_id, ben, "editor")
        _member(connection, list_id, cy, "editor")
        tasks = {
            name: connection.execute(
                text(
                    "INSERT INTO tasks (list_id, created_by, assignee_id, description, category,"
                    " deadline) VALUES (:l, :c, :a, :n, 'c', now() + interval '1 hour')"
                    " RETURNING id"
                ),
                {"l": list_id, "c": creator, "a": assignee, "n": name},
            ).scalar_one()
            for name, creator, assignee in (
                ("assigned to cy", ben, cy),
                ("created by ben", ben, None),
                ("created by a former member", None, None),
            )
        }
        connection.execute(
            text(
                "INSERT INTO task_notifications (task_id, stage, deadline)"
                " SELECT id, 'due_soon', deadline FROM tasks WHERE id = :t"
            ),
            {"t": tasks["created by ben"]},
        )

    def recipients() -> dict[str, int | None]:
        with admin_engine.connect() as connection:
            rows = connection.execute(
                text("SELECT description, recipient_id FROM tasks WHERE list_id = :l"),
                {"l": list_id},
            )
            return {str(row[0]): row[1] for row in rows}

    with Session(admin_engine) as session, session.begin():
        assert task_repository.refresh_recipients(session, [list_id], 1440).changed == 3
    assert recipients() == {
        "assigned to cy": cy,
        "created by ben": ben,
        "created by a former member": ann,
    }
    with Session(admin_engine) as session, session.begin():
        assert task_repository.refresh_recipients(session, [list_id], 1440).changed == 0  # settled
    with admin_engine.begin() as connection:
        connection.execute(
            text("DELETE FROM list_members WHERE list_id = :l AND user_id = :u"),
            {"l": list_id, "u": ben},
        )
    with Session(admin_engine) as session, session.begin():
        assert task_repository.refresh_recipients(session, [list_id], 1440).changed == 1
    assert recipients()["created by ben"] == ann  # the creator left: the owner is reminded
    with admin_engine.connect() as connection:
        sent = connection.execute(
            text("SELECT count(*) FROM task_notifications WHERE task_id = :t"),
            {"t": tasks["created by ben"]},
        ).scalar_one()
    assert sent == 0  # a new recipient re-arms the reminder
