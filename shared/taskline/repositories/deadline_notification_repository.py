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
    and_,
    case,
    column,
    delete,
    func,
    literal,
    select,
    text,
    true,
    tuple_,
    update,
    values,
)
from sqlalchemy.dialects.postgresql import insert
from sqlalchemy.orm import InstrumentedAttribute, Session

from taskline.domain import NotificationStage
from taskline.models import (
    OPEN_TASK_SQL,
    EmailSuppression,
    NotificationPreference,
    Task,
    TaskNotification,
    User,
)
from taskline.repositories.task_repository import schedule


class NotificationKey(NamedTuple):
    task_id: int
    stage: NotificationStage
    deadline: datetime


@dataclass(frozen=True)
class DueWindow:
    """Which tasks are due at `now`: a stage is due once its time (`due_soon_at`, `overdue_at`)
    has come, within a bounded look back; due soon only while the deadline is still ahead."""

    now: datetime
    overdue_since: datetime  # overdue_at in (overdue_since, now]
    due_soon_since: datetime  # due_soon_at in (due_soon_since, now]: the longest lead time back


@dataclass(frozen=True)
class DueTask:
    """A task the claim statement looked at, with its owner's email."""

    task: Task
    owner_email: str  # the recipient's
    stage: NotificationStage
    claimed: bool  # False: another run recorded this stage first (a race lost); skip it
    # The owner wants email and SES has not reported the address as bouncing or complaining.
    email_allowed: bool = True

    @property
    def key(self) -> NotificationKey:
        return NotificationKey(self.task.id, self.stage, self.task.deadline)

    @property
    def recipient_id(self) -> int:
        """Who is reminded: a list task's recipient (task_repository.recipient), else the owner
        of a personal one."""
        recipient = self.task.recipient_id or self.task.user_id
        if recipient is None:  # the tasks' CHECK one_home rules it out
            raise RuntimeError("a task has neither an owner nor a recipient")
        return recipient


def due_at(stage: NotificationStage) -> InstrumentedAttribute[datetime | None]:
    """The task column that says when `stage` is due (and orders its index)."""
    return Task.due_soon_at if stage is NotificationStage.DUE_SOON else Task.overdue_at


@dataclass(frozen=True)
class ClaimedBatch:
    stage: NotificationStage
    tasks: list[DueTask]

    @property
    def last_key(self) -> tuple[datetime, int] | None:
        """Where the next batch of this stage starts (the keyset cursor)."""
        if not self.tasks:
            return None
        last = self.tasks[-1].task
        moment = last.due_soon_at if self.stage is NotificationStage.DUE_SOON else last.overdue_at
        if moment is None:  # cannot happen: the selection only returns tasks with one
            raise RuntimeError("a claimed task has no time for its stage")
        return moment, last.id


def select_due(
    window: DueWindow,
    stage: NotificationStage,
    after: tuple[datetime, int] | None,
    limit: int,
) -> Select[int, datetime, datetime | None, str]:
    """The selection of one stage: open tasks whose time for it has come and that were not yet
    notified for it at their current deadline, in (time, id) order after the keyset cursor,
    locked, skipping rows other runs hold.

    It is a range scan of that stage's partial index (`ix_tasks_open_due_soon_at` or
    `ix_tasks_open_overdue_at`); Done tasks are not in them, and tasks whose stage is off
    (NULL) are outside every range.
    """
    moment = due_at(stage)
    # The stage as a function of the task's deadline (it equals `stage` for every row this
    # selection returns) rather than a constant: a constant lets the planner hash or materialise
    # all of the stage's records and compare them with every task (seen at 0.8 s per batch
    # with a freshly analysed, then filled, task_notifications); this way each task is probed
    # in the primary key (task_id, stage, deadline) whatever the statistics say.
    probed_stage = case(
        (Task.deadline <= window.now, literal(NotificationStage.OVERDUE.value)),
        else_=literal(NotificationStage.DUE_SOON.value),
    )
    already_notified = (
        select(TaskNotification.task_id)
        .where(
            TaskNotification.task_id == Task.id,
            TaskNotification.stage == probed_stage,
            TaskNotification.deadline == Task.deadline,
        )
        .exists()
    )
    if stage is NotificationStage.DUE_SOON:
        # Once the deadline has passed, being "due soon" is moot: only overdue is sent.
        in_window = [
            moment > window.due_soon_since,
            moment <= window.now,
            Task.deadline > window.now,
        ]
    else:
        in_window = [moment > window.overdue_since, moment <= window.now]
    statement = select(
        Task.id, Task.deadline, moment.label("due_at"), literal(stage.value).label("stage")
    ).where(
        text(OPEN_TASK_SQL),  # the index's own predicate, so the planner can use the index
        *in_window,
        ~already_notified,
    )
    if after is not None:
        statement = statement.where(tuple_(moment, Task.id) > tuple_(*after))
    return (
        statement.order_by(moment, Task.id).limit(limit).with_for_update(of=Task, skip_locked=True)
    )


def claim_due(
    session: Session,
    window: DueWindow,
    stage: NotificationStage,
    after: tuple[datetime, int] | None,
    limit: int,
) -> ClaimedBatch:
    """Lock up to `limit` tasks due for `stage` and insert their notification records, in one
    statement; also says, per task, whether its owner may be emailed.

    The primary key (task_id, stage, deadline) is the final arbiter: a run whose snapshot
    predates another run's commit may still select a task, but its insert then conflicts and
    the task comes back with `claimed=False`.
    """
    due = select_due(window, stage, after, limit).cte("due")
    claimed = (
        insert(TaskNotification)
        .from_select(
            ["task_id", "stage", "deadline"], select(due.c.id, due.c.stage, due.c.deadline)
        )
        .on_conflict_do_nothing()
        .returning(TaskNotification.task_id)
        .cte("claimed")
    )
    # A claimed stage leaves its index (and an overdue task the due-soon one: moot by then), so
    # later runs do not walk what was already sent; a task write or a released claim puts the
    # times back (tasks.schedule). The record stays the arbiter either way.
    cleared_columns: dict[str, None] = {"due_soon_at": None}
    if stage is NotificationStage.OVERDUE:
        cleared_columns["overdue_at"] = None
    cleared = (
        update(Task)
        .where(Task.id.in_(select(claimed.c.task_id)))
        .values(**cleared_columns)
        .returning(Task.id)
        .cte("cleared")
    )
    # No email to an address its owner has not verified, nor to a suppressed one.
    email_allowed = and_(
        func.coalesce(NotificationPreference.email_enabled, true()),
        EmailSuppression.address.is_(None),
        User.email_verified_at.is_not(None),
    )
    statement = (
        select(Task, User.email, claimed.c.task_id.is_not(None), email_allowed)
        .select_from(due)
        .join(Task, Task.id == due.c.id)
        # The recipient (a list task's, else the personal task's owner): their email and wishes.
        .join(User, User.id == func.coalesce(Task.recipient_id, Task.user_id))
        .outerjoin(NotificationPreference, NotificationPreference.user_id == User.id)
        .outerjoin(EmailSuppression, EmailSuppression.address == func.lower(User.email))
        .outerjoin(claimed, claimed.c.task_id == due.c.id)
        .order_by(due.c.due_at, due.c.id)
        .add_cte(cleared)  # PostgreSQL runs a data-modifying CTE whether or not it is read
    )
    rows = session.execute(statement).all()
    return ClaimedBatch(
        stage,
        [
            DueTask(task=task, owner_email=email, stage=stage, claimed=won, email_allowed=allowed)
            for task, email, won, allowed in rows
        ],
    )


def release(session: Session, keys: list[NotificationKey], default_lead_minutes: int) -> None:
    """Forget claims whose publish failed, and put their tasks' due times back, so a later run
    tries them again."""
    if not keys:
        return
    columns = (TaskNotification.task_id, TaskNotification.stage, TaskNotification.deadline)
    session.execute(
        delete(TaskNotification).where(
            tuple_(*columns).in_([(key.task_id, key.stage.value, key.deadline) for key in keys])
        )
    )
    planned = schedule(
        func.coalesce(Task.recipient_id, Task.user_id),
        Task.deadline,
        Task.remind_before,
        default_lead_minutes,
    )
    task_ids = sorted({key.task_id for key in keys})
    session.execute(update(Task).where(Task.id.in_(task_ids)).values(**planned))


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


def forget_due_soon(session: Session, task_id: int) -> None:
    """Re-arm a task's due-soon reminder (its remind_before changed)."""
    session.execute(
        delete(TaskNotification).where(
            TaskNotification.task_id == task_id,
            TaskNotification.stage == NotificationStage.DUE_SOON.value,
        )
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


def next_due_after(session: Session, now: datetime) -> datetime | None:
    """The earliest time after `now` a stage is due for an open task (None: none is), from
    each stage's partial index: two index probes."""
    earliest: list[datetime] = []
    for stage in (NotificationStage.DUE_SOON, NotificationStage.OVERDUE):
        moment = due_at(stage)
        found = session.scalars(
            select(moment).where(text(OPEN_TASK_SQL), moment > now).order_by(moment).limit(1)
        ).first()
        if found is not None:
            earliest.append(found)
    return min(earliest, default=None)
