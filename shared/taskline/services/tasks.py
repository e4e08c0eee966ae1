"""Task use cases, always on behalf of one owner."""

from __future__ import annotations

from typing import Any

from sqlalchemy.exc import IntegrityError

from taskline.db import read_only, retry_if_disconnected, sqlstate, transaction
from taskline.errors import AuthenticationRequired, InvalidQuery, TaskNotFound
from taskline.pagination import decode_cursor, encode_cursor
from taskline.repositories import tasks
from taskline.schemas import TaskCreate, TaskFilters, TaskOut, TaskPage, TaskPatch, TaskReplace

_FOREIGN_KEY_VIOLATION = "23503"


def create(user_id: int, request: TaskCreate) -> TaskOut:
    try:
        with transaction() as session:
            return TaskOut.model_validate(
                tasks.add(session, user_id, _columns(request.model_dump()))
            )
    except IntegrityError as error:
        if sqlstate(error) == _FOREIGN_KEY_VIOLATION:  # the token outlived its account
            raise AuthenticationRequired(
                "The account behind this token no longer exists."
            ) from error
        raise


@retry_if_disconnected
def get(user_id: int, task_id: int) -> TaskOut:
    with read_only() as session:
        task = tasks.get_for_owner(session, user_id, task_id)
        if task is None:
            raise TaskNotFound
        return TaskOut.model_validate(task)


@retry_if_disconnected
def list_page(user_id: int, filters: TaskFilters, limit: int, cursor: str | None) -> TaskPage:
    if filters.due_before and filters.due_after and filters.due_after >= filters.due_before:
        raise InvalidQuery("due_after", "due_after must be earlier than due_before.")
    after = decode_cursor(cursor) if cursor else None
    with read_only() as session:
        # One row more than asked tells whether another page exists, without a COUNT.
        rows = tasks.list_for_owner(session, user_id, filters, after, limit + 1)
    items = [TaskOut.model_validate(row) for row in rows[:limit]]
    next_cursor = encode_cursor(items[-1].deadline, items[-1].id) if len(rows) > limit else None
    return TaskPage(items=items, next_cursor=next_cursor)


def update(user_id: int, task_id: int, request: TaskPatch | TaskReplace) -> TaskOut:
    changes = request.changes() if isinstance(request, TaskPatch) else request.model_dump()
    with transaction() as session:
        if changes:
            task = tasks.update_for_owner(session, user_id, task_id, _columns(changes))
        else:
            task = tasks.get_for_owner(session, user_id, task_id)
        if task is None:
            raise TaskNotFound
        return TaskOut.model_validate(task)


def delete(user_id: int, task_id: int) -> None:
    with transaction() as session:
        if not tasks.delete_for_owner(session, user_id, task_id):
            raise TaskNotFound


def _columns(values: dict[str, Any]) -> dict[str, Any]:
    """Schema values as column values (the status enum is stored as its text)."""
    status = values.get("status")
    if status is not None:
        values = {**values, "status": str(status)}
    return values
