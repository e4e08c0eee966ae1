"""Queries on tasks. Every query is scoped to what the caller may see or change: their personal
tasks and those of the lists they are a member of, checked in the statement that reads or
writes (never a separate query before it, which a removal could overtake)."""

from __future__ import annotations

from datetime import datetime, timedelta
from typing import Any, NamedTuple

from sqlalchemy import (
    BigInteger,
    ColumnElement,
    Integer,
    Select,
    String,
    and_,
    bindparam,
    case,
    delete,
    exists,
    false,
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
    union_all,
    update,
)
from sqlalchemy.orm import Session, aliased

from taskline.domain import (
    ASSIGNEE_ME,
    ASSIGNEE_NONE,
    PERSONAL,
    WRITER_ROLES,
    ListRole,
    NotificationStage,
    TaskFilters,
    TaskPosition,
    TaskStatus,
)
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


class Refreshed(NamedTuple):
    changed: int  # tasks whose recipient changed
    earliest_due: datetime | None  # the earliest stage they now plan (for the deadline gate)


def refresh_recipients(
    session: Session, list_ids: list[int], default_lead_minutes: int
) -> Refreshed:
    """Bring the recipient of every task of these lists up to date after a membership change
    (a member left or was removed, ownership was handed over, a creator rejoined). A task whose
    recipient changes is re-planned with the new recipient's preferences and both its stages
    are re-armed (its sent notifications are forgotten)."""
    if not list_ids:
        return Refreshed(0, None)
    new_recipient = recipient(Task.list_id, Task.assignee_id, Task.created_by)
    planned = schedule(new_recipient, Task.deadline, Task.remind_before, default_lead_minutes)
    changed = (
        update(Task)
        .where(Task.list_id.in_(list_ids), Task.recipient_id.is_distinct_from(new_recipient))
        .values(recipient_id=new_recipient, **planned)
        .returning(Task.id, Task.status, Task.due_soon_at, Task.overdue_at)
        .cte("changed")
    )
    forgotten = (
        delete(TaskNotification)
        .where(TaskNotification.task_id.in_(select(changed.c.id)))
        .returning(TaskNotification.task_id)
        .cte("forgotten")
    )
    is_open = changed.c.status != TaskStatus.DONE.value
    earliest = func.least(
        func.min(changed.c.due_soon_at).filter(is_open),
        func.min(changed.c.overdue_at).filter(is_open),
    )
    statement = select(func.count(), earliest).select_from(changed).add_cte(forgotten)
    count, due = session.execute(statement).one()
    return Refreshed(int(count), due)


def add(session: Session, user_id: int, values: dict[str, Any], default_lead_minutes: int) -> Task:
    """A personal task of `user_id` (values' list_id is None; assignee_id None or user_id)."""
    values = {**values, "list_id": None}
    planned = schedule(
        literal(user_id),
        literal(values["deadline"], Task.deadline.type),
        literal(values.get("remind_before"), Integer),
        default_lead_minutes,
    )
    statement = (
        insert(Task)
        .values(user_id=user_id, created_by=user_id, **values, **planned)
        .returning(Task)
    )
    return session.scalars(statement).one()


class Creation(NamedTuple):
    """What adding a task to a list found: the caller's role in the list (None: not a member,
    or no such list), whether the assignee is usable, and the task when it was written."""

    role: str | None
    assignee_ok: bool
    task: Task | None


def _member_row(list_id: Any, user_id: Any, name: str, *, lock_key_only: bool = False) -> Any:
    """The member row, locked for the rest of the transaction: a removal (or a role change)
    waits for this write, or, if it committed first, the row is gone and nothing is written."""
    return (
        select(ListMember.list_id, ListMember.role)
        .where(ListMember.list_id == list_id, ListMember.user_id == user_id)
        .with_for_update(read=True, key_share=lock_key_only)
        .cte(name)
    )


def add_to_list(
    session: Session, user_id: int, values: dict[str, Any], default_lead_minutes: int
) -> Creation:
    """A task in values["list_id"], written only if the caller is its owner or an editor and the
    assignee (if any) is a member, all checked in the statement that inserts it."""
    list_id = literal(values["list_id"], BigInteger)
    assignee = values.get("assignee_id")
    caller = _member_row(list_id, user_id, "caller")
    assignee_ok: ColumnElement[bool] = true()
    if assignee is not None:
        assignee_row = _member_row(list_id, assignee, "assignee", lock_key_only=True)
        assignee_ok = exists(select(assignee_row.c.list_id))
    me = literal(user_id, BigInteger)
    assignee_value = literal(assignee, BigInteger)
    new_recipient = recipient(list_id, assignee_value, me)
    planned = schedule(
        new_recipient,
        literal(values["deadline"], Task.deadline.type),
        literal(values.get("remind_before"), Integer),
        default_lead_minutes,
    )
    columns = {
        **{name: literal(value, Task.__table__.c[name].type) for name, value in values.items()},
        "list_id": list_id,
        "assignee_id": assignee_value,
        "created_by": me,
        "recipient_id": new_recipient,
        **planned,
    }
    source = select(*[value.label(name) for name, value in columns.items()]).where(
        exists(select(caller.c.list_id).where(caller.c.role.in_(WRITER_ROLES))), assignee_ok
    )
    inserted = (
        insert(Task).from_select(list(columns), source).returning(*Task.__table__.c).cte("inserted")
    )
    task = aliased(Task, inserted)
    statement = select(
        select(caller.c.role).scalar_subquery(), assignee_ok.label("assignee_ok"), task
    ).select_from(select(literal(1)).subquery().outerjoin(inserted, true()))
    row = session.execute(statement).one()
    return Creation(row[0], bool(row[1]), row[2])


def reschedule_owner(session: Session, user_id: int, default_lead_minutes: int) -> None:
    """Recompute when each stage is due for every task the account is reminded of (its
    preferences changed): its personal tasks and the list tasks it is the recipient of."""
    planned = schedule(
        func.coalesce(Task.recipient_id, Task.user_id),
        Task.deadline,
        Task.remind_before,
        default_lead_minutes,
    )
    session.execute(
        update(Task)
        .where(or_(Task.user_id == user_id, Task.recipient_id == user_id))
        .values(**planned)
    )


def replan_due_soon(
    session: Session, default_lead_minutes: int, after_id: int, limit: int
) -> tuple[int, int | None]:
    """Re-plan the due-soon reminders still to come of up to `limit` tasks after `after_id` (in
    id order) with a new default lead time: open tasks whose deadline is ahead, without a
    remind_before of their own, not yet reminded for this deadline. Returns how many moved and
    the last id looked at (None: no task after `after_id`)."""
    batch = select(Task.id).where(Task.id > after_id).order_by(Task.id).limit(limit).cte("batch")
    new_time = schedule(
        func.coalesce(Task.recipient_id, Task.user_id),
        Task.deadline,
        Task.remind_before,
        default_lead_minutes,
    )["due_soon_at"]
    reminded = exists().where(
        TaskNotification.task_id == Task.id,
        TaskNotification.stage == NotificationStage.DUE_SOON.value,
        TaskNotification.deadline == Task.deadline,
    )
    moved = (
        update(Task)
        .where(
            Task.id.in_(select(batch.c.id)),
            text(f"tasks.{OPEN_TASK_SQL}"),
            Task.deadline > func.now(),
            Task.remind_before.is_(None),
            Task.due_soon_at.is_distinct_from(new_time),
            ~reminded,
        )
        .values(due_soon_at=new_time)
        .returning(Task.id)
        .cte("moved")
    )
    statement = select(
        select(func.count()).select_from(moved).scalar_subquery(),
        select(func.max(batch.c.id)).scalar_subquery(),
    )
    count, last = session.execute(statement).one()
    return int(count), None if last is None else int(last)


def _visible(user_id: Any) -> ColumnElement[bool]:
    """The caller's personal task, or a task of a list they are a member of."""
    return or_(
        Task.user_id == user_id,
        and_(
            Task.list_id.is_not(None),
            exists().where(ListMember.list_id == Task.list_id, ListMember.user_id == user_id),
        ),
    )


def earliest_due_for_owner(session: Session, user_id: int) -> datetime | None:
    """The earliest time a stage is due among the open tasks the account is reminded of, its
    personal ones and the list tasks it is the recipient of (None: none is)."""
    earliest = func.least(func.min(Task.due_soon_at), func.min(Task.overdue_at))
    statement = select(earliest).where(
        or_(Task.user_id == user_id, Task.recipient_id == user_id), text(OPEN_TASK_SQL)
    )
    found: datetime | None = session.execute(statement).scalar_one()
    return found


# Built once: a constant statement skips rebuilding the expression and its cache key per call.
_VISIBLE_TASK = select(Task).where(Task.id == bindparam("task_id"), _visible(bindparam("user_id")))


def get_visible(session: Session, user_id: int, task_id: int) -> Task | None:
    parameters = {"task_id": task_id, "user_id": user_id}
    return session.scalars(_VISIBLE_TASK, parameters).one_or_none()


def _role_of(user_id: Any) -> Any:
    """The caller's role for a task: "owner" of a personal one, else their role in its list."""
    member_role = (
        select(ListMember.role)
        .where(ListMember.list_id == Task.list_id, ListMember.user_id == user_id)
        .correlate_except(ListMember)
        .scalar_subquery()
    )
    return case((Task.user_id == user_id, literal(ListRole.OWNER.value, String)), else_=member_role)


_VISIBLE_TASK_AND_ROLE = select(Task, _role_of(bindparam("user_id"))).where(
    Task.id == bindparam("task_id"), _visible(bindparam("user_id"))
)


def get_with_role(session: Session, user_id: int, task_id: int) -> tuple[Task, str] | None:
    """The task with the caller's role for it, if they can see it, in one statement."""
    parameters = {"task_id": task_id, "user_id": user_id}
    row = session.execute(_VISIBLE_TASK_AND_ROLE, parameters).one_or_none()
    return None if row is None else (row[0], str(row[1]))


def list_visible(
    session: Session,
    user_id: int,
    filters: TaskFilters,
    after: TaskPosition | None,
    limit: int,
) -> list[Task]:
    """One page in (deadline, id) order, starting strictly after the `after` key (keyset paging),
    over the caller's personal tasks and every list they are a member of, in one statement: the
    personal range of ix_tasks_user_id_deadline_id and, for each membership, the list's range of
    ix_tasks_list_id_deadline_id, each cut at `limit` rows before they are merged.
    """
    me = literal(user_id, BigInteger)
    branches: list[Select[Any]] = []
    if filters.list_id is None or filters.list_id == PERSONAL:
        personal = _filtered(select(Task).where(Task.user_id == me), user_id, filters, after)
        branches.append(personal.order_by(Task.deadline, Task.id).limit(limit))
    if filters.list_id != PERSONAL:
        memberships = select(ListMember.list_id).where(ListMember.user_id == me)
        if filters.list_id is not None:
            memberships = memberships.where(ListMember.list_id == int(filters.list_id))
        membership = memberships.subquery("membership")
        in_list = _filtered(
            select(Task).where(Task.list_id == membership.c.list_id), user_id, filters, after
        )
        per_list = in_list.order_by(Task.deadline, Task.id).limit(limit).lateral("per_list")
        branches.append(select(*per_list.c).select_from(membership).join(per_list, true()))
    merged = union_all(*branches).subquery("visible") if len(branches) > 1 else None
    if merged is None:
        only = branches[0].subquery("visible")
        task = aliased(Task, only)
    else:
        task = aliased(Task, merged)
    statement = select(task).order_by(task.deadline, task.id).limit(limit)
    return list(session.scalars(statement))


def _filtered(
    statement: Select[Any], user_id: int, filters: TaskFilters, after: TaskPosition | None
) -> Select[Any]:
    if filters.status is not None:
        statement = statement.where(Task.status == filters.status)
    if filters.category is not None:
        statement = statement.where(Task.category == filters.category)
    if filters.due_before is not None:
        statement = statement.where(Task.deadline < filters.due_before)
    if filters.due_after is not None:
        statement = statement.where(Task.deadline >= filters.due_after)
    if filters.assignee == ASSIGNEE_NONE:
        statement = statement.where(Task.assignee_id.is_(None))
    elif filters.assignee is not None:
        assignee = user_id if filters.assignee == ASSIGNEE_ME else int(filters.assignee)
        statement = statement.where(Task.assignee_id == assignee)
    if after is not None:
        statement = statement.where(tuple_(Task.deadline, Task.id) > tuple_(*after))
    return statement


class Write(NamedTuple):
    """What a write to a task found and did, from its one statement.

    `role` is None when the caller cannot see the task (or it is missing); the write happened
    only when `task` is set. `destination_role` is the caller's role in the list a move goes to
    (OWNER for the personal tasks; None when not a member)."""

    role: str | None
    version_ok: bool
    destination_role: str | None
    assignee_ok: bool
    task: Task | None
    previous_remind_before: int | None
    previous_recipient: int | None


def _target(user_id: int, task_id: int) -> Any:
    """The task, locked, with the caller's role for it: a personal task of theirs (role owner),
    or a task of a list they are a member of, whose member row is locked too (so a removal
    cannot land between this check and the write)."""
    columns = (
        Task.id,
        Task.list_id,
        Task.user_id,
        Task.assignee_id,
        Task.created_by,
        Task.remind_before,
        Task.updated_at,
        func.coalesce(Task.recipient_id, Task.user_id).label("recipient"),
    )
    personal = (
        select(*columns, literal(ListRole.OWNER.value, String).label("role"))
        .where(Task.id == task_id, Task.user_id == user_id)
        .with_for_update(of=Task)
        .cte("personal")
    )
    # The caller's member row of the task's list, locked FOR SHARE before the task itself: a
    # removal (or role change) in flight makes this wait, one committed first leaves no row. The
    # same order as a removal's (member row, then the tasks whose assignment it clears), so the
    # two cannot deadlock.
    member = (
        select(ListMember.list_id, ListMember.role)
        .where(
            ListMember.user_id == user_id,
            ListMember.list_id == select(Task.list_id).where(Task.id == task_id).scalar_subquery(),
        )
        .with_for_update(read=True)
        .cte("member")
    )
    shared = (
        select(*columns, member.c.role.label("role"))
        .join(member, member.c.list_id == Task.list_id)
        .where(Task.id == task_id)
        .with_for_update(of=Task)
        .cte("shared")
    )
    target = union_all(select(*personal.c), select(*shared.c)).cte("target")
    return target


def update_visible(
    session: Session,
    user_id: int,
    task_id: int,
    values: dict[str, Any],
    default_lead_minutes: int,
    versions: frozenset[datetime] | None = None,
) -> Write:
    """Change the task if the caller may (its owner, or an owner or editor of its list; for a
    move, also of the destination), it is still at one of `versions` (when given) and the
    assignee is usable, all in one statement that also says which condition failed.

    `updated_at` is the task's version (its ETag is made from it), so it moves strictly forward
    on every write, even when two land within the same microsecond or the clock steps back.
    """
    target = _target(user_id, task_id)
    me = literal(user_id, BigInteger)
    values = dict(values)
    moving = "list_id" in values
    destination_role: Any = literal(ListRole.OWNER.value, String)
    new_list: Any = select(target.c.list_id).scalar_subquery()
    if moving:
        destination = values.pop("list_id")
        new_list = literal(destination, BigInteger)
        if destination is not None:
            destination_row = _member_row(new_list, user_id, "destination")
            destination_role = select(destination_row.c.role).scalar_subquery()
    assignee_ok: Any = true()
    new_assignee: Any = Task.assignee_id
    if "assignee_id" in values:
        wanted = values.pop("assignee_id")
        new_assignee = literal(wanted, BigInteger)
        if wanted is not None:
            assignee_row = _member_row(new_list, wanted, "assignee", lock_key_only=True)
            assignee_ok = case(
                (new_list.is_(None), literal(wanted == user_id)),
                else_=exists(select(assignee_row.c.list_id)),
            )
    elif moving:
        # A move keeps the assignee only if they are a member of the destination (or, into the
        # personal tasks, the caller).
        stays = case(
            (new_list.is_(None), Task.assignee_id == me),
            else_=exists().where(
                ListMember.list_id == new_list, ListMember.user_id == Task.assignee_id
            ),
        )
        new_assignee = case((stays, Task.assignee_id), else_=null())
    new_user = case((new_list.is_(None), me), else_=null()) if moving else Task.user_id
    creator = func.coalesce(Task.created_by, Task.user_id)
    new_recipient = recipient(new_list, new_assignee, creator)
    version_ok: Any = true() if versions is None else target.c.updated_at.in_(versions)
    next_version = func.greatest(func.now(), Task.updated_at + timedelta(microseconds=1))
    deadline = literal(values["deadline"], Task.deadline.type) if "deadline" in values else None
    remind = literal(values["remind_before"], Integer) if "remind_before" in values else None
    # Only what decides when reminders are due (or to whom) recomputes them: a renamed task keeps
    # the times the deadline check cleared once it was notified.
    planned: dict[str, Any] = {}
    reassigned: dict[str, Any] = {}
    if moving or new_assignee is not Task.assignee_id:
        reassigned = {
            "list_id": new_list,
            "user_id": new_user,
            "assignee_id": new_assignee,
            "created_by": creator,
            "recipient_id": new_recipient,
        }
    if reassigned or {"deadline", "remind_before", "status"} & values.keys():
        planned = schedule(
            func.coalesce(new_recipient, new_user)
            if reassigned
            else func.coalesce(Task.recipient_id, Task.user_id),
            Task.deadline if deadline is None else deadline,
            Task.remind_before if remind is None else remind,
            default_lead_minutes,
        )
    allowed = and_(
        target.c.role.in_(WRITER_ROLES),
        version_ok,
        func.coalesce(destination_role.in_(WRITER_ROLES), false()),
        assignee_ok,
    )
    updated = (
        update(Task)
        .where(Task.id == target.c.id, allowed)
        .values(**values, **reassigned, **planned, updated_at=next_version)
        .returning(
            *Task.__table__.c,
            target.c.remind_before.label("previous_remind_before"),
            target.c.recipient.label("previous_recipient"),
        )
        .cte("updated")
    )
    task = aliased(Task, updated)
    statement = select(
        target.c.role,
        version_ok.label("version_ok"),
        destination_role.label("destination_role"),
        assignee_ok.label("assignee_ok"),
        task,
        updated.c.previous_remind_before,
        updated.c.previous_recipient,
    ).select_from(target.outerjoin(updated, true()))
    row = session.execute(statement).one_or_none()
    if row is None:
        return Write(None, False, None, False, None, None, None)
    return Write(row[0], bool(row[1]), row[2], bool(row[3]), row[4], row[5], row[6])


class Removal(NamedTuple):
    role: str | None
    version_ok: bool
    deleted: bool


def delete_visible(
    session: Session, user_id: int, task_id: int, versions: frozenset[datetime] | None = None
) -> Removal:
    """Delete the task if the caller may (its owner, or an owner or editor of its list) and it
    is still at one of `versions` (when given), in one statement that says which failed."""
    target = _target(user_id, task_id)
    version_ok: Any = true() if versions is None else target.c.updated_at.in_(versions)
    deleted = (
        delete(Task)
        .where(Task.id == target.c.id, target.c.role.in_(WRITER_ROLES), version_ok)
        .returning(Task.id)
        .cte("deleted")
    )
    statement = select(
        target.c.role, version_ok.label("version_ok"), deleted.c.id.is_not(None)
    ).select_from(target.outerjoin(deleted, true()))
    row = session.execute(statement).one_or_none()
    if row is None:
        return Removal(None, False, False)
    return Removal(row[0], bool(row[1]), bool(row[2]))
