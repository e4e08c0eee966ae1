"""Queries on tasks. Every query is scoped to one owner."""

from __future__ import annotations

from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import (
    ColumnElement,
    Integer,
    bindparam,
    case,
    delete,
    func,
    insert,
    literal,
    literal_column,
    null,
    or_,
    select,
    text,
    true,
    tuple_,
    update,
)
from sqlalchemy.orm import Session

from taskline.domain import TaskFilters, TaskPosition
from taskline.models import (
    OPEN_TASK_SQL,
    ListMember,
    NotificationPreference,
    Task,
    TaskList,
    TaskNotification,
)

_MINUTE: ColumnElement[Any] = literal_column("interval '1 minute'")


def _preference(column: Any, user_id: Any) -> Any:
    # Correlated to the enclosing statement's tasks, however deeply `user_id` nests its own.
    return (
        select(column)
        .where(NotificationPreference.user_id == user_id)
        .correlate_except(NotificationPreference)
        .scalar_subquery()
    )


def schedule(
    user_id: Any, deadline: Any, remind_before: Any, default_lead_minutes: int
) -> dict[str, ColumnElement[Any]]:
    """`due_soon_at` and `overdue_at`: when the deadline check sends each stage, or NULL for
    never. Written with every task write (and for all of an owner's tasks when their
    preferences change), so the check's selection is a range scan of one index per stage.

    A task's own remind_before wins over the account's lead time, and over its due-soon switch.
    """
    preferences = NotificationPreference
    lead = func.coalesce(
        remind_before,
        _preference(preferences.due_soon_minutes, user_id),
        literal(default_lead_minutes, Integer),
    )
    due_soon_on = or_(
        remind_before.is_not(None),
        func.coalesce(_preference(preferences.due_soon_enabled, user_id), true()),
    )
    overdue_on = func.coalesce(_preference(preferences.overdue_enabled, user_id), true())
    return {
        "due_soon_at": case((due_soon_on, deadline - lead * _MINUTE), else_=null()),
        "overdue_at": case((overdue_on, deadline), else_=null()),
    }


def recipient(list_id: Any, assignee_id: Any, created_by: Any) -> ColumnElement[Any]:
    """Who a list's task reminds: its assignee, else its creator while a member, else the list's
    owner. NULL for a personal task, whose recipient is its owner (`user_id`).

    The one definition of the rule: written into `tasks.recipient_id` with every write that can
    change it (task writes, membership changes), so the deadline check and the calendar feed
    read a column instead of re-deriving it.
    """
    creator_while_member = (
        select(ListMember.user_id)
        .where(ListMember.list_id == list_id, ListMember.user_id == created_by)
        .correlate_except(ListMember)
        .scalar_subquery()
    )
    owner = (
        select(TaskList.owner_id)
        .where(TaskList.id == list_id)
        .correlate_except(TaskList)
        .scalar_subquery()
    )
    return case(
        (list_id.is_(None), null()),
        else_=func.coalesce(assignee_id, creator_while_member, owner),
    )


def refresh_recipients(session: Session, list_ids: list[int], default_lead_minutes: int) -> int:
    """Bring the recipient of every task of these lists up to date after a membership change
    (a member left or was removed, ownership was handed over, a creator rejoined). A task whose
    recipient changes is re-planned with the new recipient's preferences and both its stages
    are re-armed (its sent notifications are forgotten). Returns how many tasks changed hands.
    """
    if not list_ids:
        return 0
    new_recipient = recipient(Task.list_id, Task.assignee_id, Task.created_by)
    planned = schedule(new_recipient, Task.deadline, Task.remind_before, default_lead_minutes)
    changed = (
        update(Task)
        .where(Task.list_id.in_(list_ids), Task.recipient_id.is_distinct_from(new_recipient))
        .values(recipient_id=new_recipient, **planned)
        .returning(Task.id)
        .cte("changed")
    )
    forgotten = (
        delete(TaskNotification)
        .where(TaskNotification.task_id.in_(select(changed.c.id)))
        .returning(TaskNotification.task_id)
        .cte("forgotten")
    )
    statement = select(func.count()).select_from(changed).add_cte(forgotten)
    return int(session.execute(statement).scalar_one())


def add(session: Session, user_id: int, values: dict[str, Any], default_lead_minutes: int) -> Task:
    planned = schedule(
        literal(user_id),
        literal(values["deadline"], Task.deadline.type),
        literal(values.get("remind_before"), Integer),
        default_lead_minutes,
    )
    statement = insert(Task).values(user_id=user_id, **values, **planned).returning(Task)
    return session.scalars(statement).one()


def reschedule_owner(session: Session, user_id: int, default_lead_minutes: int) -> None:
    """Recompute when each stage is due for every task of the owner (preferences changed)."""
    planned = schedule(Task.user_id, Task.deadline, Task.remind_before, default_lead_minutes)
    session.execute(update(Task).where(Task.user_id == user_id).values(**planned))


def earliest_due_for_owner(session: Session, user_id: int) -> datetime | None:
    """The earliest time a stage is due among the owner's open tasks (None: none is)."""
    earliest = func.least(func.min(Task.due_soon_at), func.min(Task.overdue_at))
    statement = select(earliest).where(Task.user_id == user_id, text(OPEN_TASK_SQL))
    found: datetime | None = session.execute(statement).scalar_one()
    return found


# Built once: a constant statement skips rebuilding the expression and its cache key per call.
_OWNED_TASK = select(Task).where(
    Task.id == bindparam("task_id"), Task.user_id == bindparam("user_id")
)


def get_for_owner(session: Session, user_id: int, task_id: int) -> Task | None:
    parameters = {"task_id": task_id, "user_id": user_id}
    return session.scalars(_OWNED_TASK, parameters).one_or_none()


def list_for_owner(
    session: Session,
    user_id: int,
    filters: TaskFilters,
    after: TaskPosition | None,
    limit: int,
) -> list[Task]:
    """One page in (deadline, id) order, starting strictly after the `after` key (keyset paging)."""
    statement = select(Task).where(Task.user_id == user_id)
    if filters.status is not None:
        statement = statement.where(Task.status == filters.status)
    if filters.category is not None:
        statement = statement.where(Task.category == filters.category)
    if filters.due_before is not None:
        statement = statement.where(Task.deadline < filters.due_before)
    if filters.due_after is not None:
        statement = statement.where(Task.deadline >= filters.due_after)
    if after is not None:
        statement = statement.where(tuple_(Task.deadline, Task.id) > tuple_(*after))
    statement = statement.order_by(Task.deadline, Task.id).limit(limit)
    return list(session.scalars(statement))


def update_for_owner(
    session: Session,
    user_id: int,
    task_id: int,
    values: dict[str, Any],
    default_lead_minutes: int,
    versions: frozenset[datetime] | None = None,
) -> tuple[Task, int | None] | None:
    """Change the task if it is the owner's and, when `versions` is given, still at one of them;
    returns it with its remind_before from before the change (to tell whether it changed).

    `updated_at` is the task's version (its ETag is made from it), so it moves strictly forward
    on every write, even when two land within the same microsecond or the clock steps back.
    """
    # The row as it was, locked first so a concurrent write cannot slip in between.
    previous = (
        select(Task.id, Task.remind_before)
        .where(Task.id == task_id, Task.user_id == user_id)
        .with_for_update()
        .subquery("previous")
    )
    statement = update(Task).where(Task.id == previous.c.id)
    if versions is not None:
        statement = statement.where(Task.updated_at.in_(versions))
    next_version = func.greatest(func.now(), Task.updated_at + timedelta(microseconds=1))
    deadline = literal(values["deadline"], Task.deadline.type) if "deadline" in values else None
    remind = literal(values["remind_before"], Integer) if "remind_before" in values else None
    # Only what decides when reminders are due recomputes them: a renamed task keeps the times
    # the deadline check cleared once it was notified.
    planned: dict[str, Any] = {}
    if {"deadline", "remind_before", "status"} & values.keys():
        planned = schedule(
            Task.user_id,
            Task.deadline if deadline is None else deadline,
            Task.remind_before if remind is None else remind,
            default_lead_minutes,
        )
    statement = statement.values(**values, **planned, updated_at=next_version).returning(
        Task, previous.c.remind_before
    )
    row = session.execute(statement).one_or_none()
    return None if row is None else (row[0], row[1])


def delete_for_owner(
    session: Session, user_id: int, task_id: int, versions: frozenset[datetime] | None = None
) -> bool:
    statement = delete(Task).where(Task.id == task_id, Task.user_id == user_id)
    if versions is not None:
        statement = statement.where(Task.updated_at.in_(versions))
    return session.scalars(statement.returning(Task.id)).one_or_none() is not None
