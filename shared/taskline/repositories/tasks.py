"""Queries on tasks. Every query is scoped to one owner."""

from __future__ import annotations

from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import bindparam, delete, func, insert, select, tuple_, update
from sqlalchemy.orm import Session

from taskline.models import Task
from taskline.schemas import TaskFilters


def add(session: Session, user_id: int, values: dict[str, Any]) -> Task:
    statement = insert(Task).values(user_id=user_id, **values).returning(Task)
    return session.scalars(statement).one()


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
    after: tuple[datetime, int] | None,
    limit: int,
) -> list[Task]:
    """One page in (deadline, id) order, starting strictly after the `after` key (keyset paging)."""
    statement = select(Task).where(Task.user_id == user_id)
    if filters.status is not None:
        statement = statement.where(Task.status == filters.status.value)
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
    versions: frozenset[datetime] | None = None,
) -> Task | None:
    """Change the task if it is the owner's and, when `versions` is given, still at one of them.

    `updated_at` is the task's version (its ETag is made from it), so it moves strictly forward
    on every write, even when two land within the same microsecond or the clock steps back.
    """
    statement = update(Task).where(Task.id == task_id, Task.user_id == user_id)
    if versions is not None:
        statement = statement.where(Task.updated_at.in_(versions))
    next_version = func.greatest(func.now(), Task.updated_at + timedelta(microseconds=1))
    statement = statement.values(**values, updated_at=next_version).returning(Task)
    return session.scalars(statement).one_or_none()


def delete_for_owner(
    session: Session, user_id: int, task_id: int, versions: frozenset[datetime] | None = None
) -> bool:
    statement = delete(Task).where(Task.id == task_id, Task.user_id == user_id)
    if versions is not None:
        statement = statement.where(Task.updated_at.in_(versions))
    return session.scalars(statement.returning(Task.id)).one_or_none() is not None
