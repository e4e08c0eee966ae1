"""SQL of the deadline check: claiming due tasks, and the record of what was notified.

A record (task_id, stage, deadline) in `task_notifications` means "this stage was notified for
this deadline". Claiming inserts the record in the same statement that locks the task, before
anything is published; the caller deletes the records of publishes that failed before it
commits. See docs/deadlines.md for why this sends each notification once.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import NamedTuple

from sqlalchemy import (
    BigInteger,
    DateTime,
    Select,
    String,
    case,
    column,
    delete,
    literal,
    select,
    text,
    tuple_,
    update,
    values,
)
from sqlalchemy.dialects.postgresql import insert
from sqlalchemy.orm import Session
from sqlalchemy.sql.elements import ColumnElement

from taskline.models import OPEN_TASK_SQL, NotificationStage, Task, TaskNotification, User


class NotificationKey(NamedTuple):
    task_id: int
    stage: NotificationStage
    deadline: datetime


@dataclass(frozen=True)
class DueWindow:
    """Which deadlines are due at `now`: overdue in (overdue_since, now], due soon in
    (now, due_soon_until]."""

    now: datetime
    overdue_since: datetime
    due_soon_until: datetime


@dataclass(frozen=True)
class DueTask:
    """A task the claim statement looked at, with its owner's email."""

    task: Task
    owner_email: str
    stage: NotificationStage
    claimed: bool  # False: another run recorded this stage first (a race lost); skip it

    @property
    def key(self) -> NotificationKey:
        return NotificationKey(self.task.id, self.stage, self.task.deadline)


@dataclass(frozen=True)
class ClaimedBatch:
    tasks: list[DueTask]

    @property
    def last_key(self) -> tuple[datetime, int] | None:
        """Where the next batch of this run starts (the keyset cursor)."""
        if not self.tasks:
            return None
        last = self.tasks[-1].task
        return last.deadline, last.id


def _stage(window: DueWindow) -> ColumnElement[str]:
    return case(
        (Task.deadline <= window.now, literal(NotificationStage.OVERDUE.value)),
        else_=literal(NotificationStage.DUE_SOON.value),
    )


def select_due(
    window: DueWindow, after: tuple[datetime, int] | None, limit: int
) -> Select[int, datetime, str]:
    """The selection: open tasks due in the window and not yet notified for their current stage,
    in (deadline, id) order after the keyset cursor, locked, skipping rows other runs hold.

    It is a range scan of the partial index `ix_tasks_open_deadline`; Done tasks are not in it.
    """
    already_notified = (
        select(TaskNotification.task_id)
        .where(
            TaskNotification.task_id == Task.id,
            TaskNotification.stage == _stage(window),
            TaskNotification.deadline == Task.deadline,
        )
        .exists()
    )
    statement = select(Task.id, Task.deadline, _stage(window).label("stage")).where(
        text(OPEN_TASK_SQL),  # the index's own predicate, so the planner can use the index
        Task.deadline > window.overdue_since,
        Task.deadline <= window.due_soon_until,
        ~already_notified,
    )
    if after is not None:
        statement = statement.where(tuple_(Task.deadline, Task.id) > tuple_(*after))
    return (
        statement.order_by(Task.deadline, Task.id)
        .limit(limit)
        .with_for_update(of=Task, skip_locked=True)
    )


def claim_due(
    session: Session, window: DueWindow, after: tuple[datetime, int] | None, limit: int
) -> ClaimedBatch:
    """Lock up to `limit` due tasks and insert their notification records, in one statement.

    The primary key (task_id, stage, deadline) is the final arbiter: a run whose snapshot
    predates another run's commit may still select a task, but its insert then conflicts and
    the task comes back with `claimed=False`.
    """
    due = select_due(window, after, limit).cte("due")
    claimed = (
        insert(TaskNotification)
        .from_select(
            ["task_id", "stage", "deadline"], select(due.c.id, due.c.stage, due.c.deadline)
        )
        .on_conflict_do_nothing()
        .returning(TaskNotification.task_id)
        .cte("claimed")
    )
    statement = (
        select(Task, User.email, due.c.stage, claimed.c.task_id.is_not(None))
        .select_from(due)
        .join(Task, Task.id == due.c.id)
        .join(User, User.id == Task.user_id)
        .outerjoin(claimed, claimed.c.task_id == due.c.id)
        .order_by(due.c.deadline, due.c.id)
    )
    rows = session.execute(statement).all()
    return ClaimedBatch(
        [
            DueTask(task=task, owner_email=email, stage=NotificationStage(stage), claimed=won)
            for task, email, stage, won in rows
        ]
    )


def release(session: Session, keys: list[NotificationKey]) -> None:
    """Forget claims whose publish failed, so a later run tries them again."""
    if not keys:
        return
    columns = (TaskNotification.task_id, TaskNotification.stage, TaskNotification.deadline)
    session.execute(
        delete(TaskNotification).where(
            tuple_(*columns).in_([(key.task_id, key.stage.value, key.deadline) for key in keys])
        )
    )


def record_message_ids(session: Session, message_ids: dict[NotificationKey, str]) -> None:
    """Store SNS's MessageId on each sent notification (one statement for the whole batch)."""
    if not message_ids:
        return
    sent = values(
        column("task_id", BigInteger),
        column("stage", String),
        column("deadline", DateTime(timezone=True)),
        column("message_id", String),
        name="sent",
    ).data(
        [
            (key.task_id, key.stage.value, key.deadline, message_id)
            for key, message_id in message_ids.items()
        ]
    )
    session.execute(
        update(TaskNotification)
        .where(
            TaskNotification.task_id == sent.c.task_id,
            TaskNotification.stage == sent.c.stage,
            TaskNotification.deadline == sent.c.deadline,
        )
        .values(message_id=sent.c.message_id)
    )


def forget_for_task(session: Session, task_id: int, keep_deadline: datetime | None) -> None:
    """Re-arm a task: drop its records except those for `keep_deadline` (all when None).

    Called when a task's deadline or status changes; a Done task keeps none, so reopening it
    starts afresh.
    """
    statement = delete(TaskNotification).where(TaskNotification.task_id == task_id)
    if keep_deadline is not None:
        statement = statement.where(TaskNotification.deadline != keep_deadline)
    session.execute(statement)
