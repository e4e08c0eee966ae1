"""Queries on calendar feeds (the secret stored only as its SHA-256) and the tasks they show."""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import delete, func, select, text, union_all
from sqlalchemy.dialects.postgresql import insert
from sqlalchemy.orm import Session, aliased

from taskline.models import OPEN_TASK_SQL, CalendarFeed, Task


def save(session: Session, user_id: int, secret_hash: bytes) -> CalendarFeed:
    """Issue the account's feed, replacing (rotating) the secret of an earlier one."""
    statement = insert(CalendarFeed).values(user_id=user_id, secret_hash=secret_hash)
    upsert = statement.on_conflict_do_update(
        index_elements=[CalendarFeed.user_id],
        set_={"secret_hash": statement.excluded.secret_hash, "created_at": func.now()},
    ).returning(CalendarFeed)
    saved: CalendarFeed = session.scalars(upsert).one()
    return saved


def remove(session: Session, user_id: int) -> bool:
    statement = delete(CalendarFeed).where(CalendarFeed.user_id == user_id)
    return session.scalars(statement.returning(CalendarFeed.user_id)).one_or_none() is not None


def find(session: Session, secret_hash: bytes) -> CalendarFeed | None:
    statement = select(CalendarFeed).where(CalendarFeed.secret_hash == secret_hash)
    return session.scalars(statement).one_or_none()


def open_tasks(session: Session, user_id: int, since: datetime, limit: int) -> list[Task]:
    """The open tasks the account is reminded of, with a deadline after `since`, soonest first:
    its personal tasks (ix_tasks_user_id_deadline_id) and the list tasks it is the recipient of
    (ix_tasks_recipient_id_deadline_id), each range cut at `limit` before they are merged."""
    branches = [
        select(Task)
        .where(column == user_id, text(OPEN_TASK_SQL), Task.deadline > since)
        .order_by(Task.deadline, Task.id)
        .limit(limit)
        for column in (Task.user_id, Task.recipient_id)
    ]
    task = aliased(Task, union_all(*branches).subquery("reminded"))
    statement = select(task).order_by(task.deadline, task.id).limit(limit)
    return list(session.scalars(statement))
