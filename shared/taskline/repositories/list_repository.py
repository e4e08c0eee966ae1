"""Queries on shared lists and their members.

Every statement that acts on a list on behalf of a caller reads the caller's membership in the
same statement, or after locking it (`lock_membership`) in the same transaction: a member
removed or demoted concurrently can never act on what they no longer may (no check-then-act).
"""

from __future__ import annotations

from datetime import timedelta
from typing import Any

from sqlalchemy import (
    Row,
    Select,
    delete,
    exists,
    func,
    insert,
    literal,
    select,
    update,
)
from sqlalchemy.orm import Session, aliased

from taskline.domain import ListRole
from taskline.models import ListMember, TaskList, User

WRITERS = (ListRole.OWNER, ListRole.EDITOR)

# A list's version moves strictly forward, even when two writes land within a microsecond.
_NEXT_VERSION = func.greatest(func.now(), TaskList.updated_at + timedelta(microseconds=1))

# A row of any shape (columns chosen per query).
AnyRow = Row[*tuple[Any, ...]]


def _lists_of(user_id: int) -> Select[*tuple[Any, ...]]:
    """The lists the user belongs to, with their role, owner and member count."""
    me = aliased(ListMember, name="me")
    owner = aliased(User, name="owner")
    member_count = (
        select(func.count())
        .select_from(ListMember)
        .where(ListMember.list_id == TaskList.id)
        .correlate(TaskList)
        .scalar_subquery()
    )
    return (
        select(
            TaskList.id,
            TaskList.name,
            me.role,
            TaskList.owner_id,
            owner.email.label("owner_email"),
            member_count.label("member_count"),
            TaskList.created_at,
            TaskList.updated_at,
        )
        .join(me, (me.list_id == TaskList.id) & (me.user_id == user_id))
        .join(owner, owner.id == TaskList.owner_id)
    )


def get(session: Session, user_id: int, list_id: int) -> AnyRow | None:
    """The list as the user sees it, or None if they are not a member (or it does not exist)."""
    return session.execute(_lists_of(user_id).where(TaskList.id == list_id)).one_or_none()


def page(session: Session, user_id: int, after_id: int | None, limit: int) -> list[AnyRow]:
    """One page of the user's lists in id order, strictly after `after_id` (keyset paging)."""
    statement = _lists_of(user_id)
    if after_id is not None:
        statement = statement.where(TaskList.id > after_id)
    return list(session.execute(statement.order_by(TaskList.id).limit(limit)))


def lock_account(session: Session, user_id: int) -> None:
    """Serialise what adds memberships of one account (the per-account limit). NO KEY UPDATE
    does not block the foreign-key checks of other transactions' rows that reference it."""
    session.execute(select(User.id).where(User.id == user_id).with_for_update(key_share=True))


def count_memberships(session: Session, user_id: int) -> int:
    statement = select(func.count()).select_from(ListMember).where(ListMember.user_id == user_id)
    return int(session.execute(statement).scalar_one())


def create(session: Session, user_id: int, name: str) -> int:
    """A new list with the user as its owner (member row and list in one statement; the
    deferred owner key is checked at commit)."""
    new_list = (
        insert(TaskList).values(name=name, owner_id=user_id).returning(TaskList.id).cte("new_list")
    )
    statement = (
        insert(ListMember)
        .from_select(
            [ListMember.list_id, ListMember.user_id, ListMember.role],
            select(new_list.c.id, literal(user_id), literal(ListRole.OWNER, ListMember.role.type)),
        )
        .returning(ListMember.list_id)
    )
    return int(session.execute(statement).scalar_one())


def locked_role(list_id: int, user_id: int) -> Select[ListRole]:
    """The user's role in the list, with the list's row and then the member's row locked (FOR
    NO KEY UPDATE, in FROM order: every statement here locks a list before its members, so two
    transactions never wait for each other in a circle). A concurrent removal or role change
    waits for this transaction, or has happened and is seen: READ COMMITTED re-reads a row
    once its lock is granted. NO KEY UPDATE leaves the foreign-key checks of task writes
    (KEY SHARE) free to run."""
    return (
        select(ListMember.role)
        .select_from(TaskList)
        .join(ListMember, ListMember.list_id == TaskList.id)
        .where(TaskList.id == list_id, ListMember.user_id == user_id)
        .with_for_update(key_share=True)
    )


def _my_role(list_id: int, user_id: int) -> Any:
    return locked_role(list_id, user_id).cte("me")


def rename(session: Session, user_id: int, list_id: int, name: str) -> tuple[ListRole | None, bool]:
    """Rename the list if the user is its owner or an editor, in one statement. Returns the
    user's role (None: not a member) and whether the list was renamed."""
    me = _my_role(list_id, user_id)
    allowed = select(me.c.role).where(me.c.role.in_(WRITERS)).exists()
    renamed = (
        update(TaskList)
        .where(TaskList.id == list_id, allowed)
        .values(name=name, updated_at=_NEXT_VERSION)
        .returning(TaskList.id)
        .cte("renamed")
    )
    statement = select(
        select(me.c.role).scalar_subquery(), select(renamed.c.id).exists().label("renamed")
    )
    role, done = session.execute(statement).one()
    return (None if role is None else ListRole(role)), bool(done)


def delete_list(session: Session, user_id: int, list_id: int) -> tuple[ListRole | None, bool]:
    """Delete the list if the user owns it, in one statement; its tasks, members and invitations
    go with it (foreign keys cascade). Returns the user's role and whether it was deleted."""
    me = _my_role(list_id, user_id)
    allowed = select(me.c.role).where(me.c.role == ListRole.OWNER).exists()
    deleted = (
        delete(TaskList).where(TaskList.id == list_id, allowed).returning(TaskList.id).cte("gone")
    )
    statement = select(
        select(me.c.role).scalar_subquery(), select(deleted.c.id).exists().label("deleted")
    )
    role, done = session.execute(statement).one()
    return (None if role is None else ListRole(role)), bool(done)


def lock_membership(session: Session, list_id: int, user_id: int) -> ListRole | None:
    """The user's role in the list, with the list's row and the member's row locked until the
    transaction ends (`locked_role`), or None if they are not a member. Every change of a
    list's membership locks the list's row first, so those changes happen one after the
    other, each seeing the last."""
    role = session.execute(locked_role(list_id, user_id)).scalar_one_or_none()
    return None if role is None else ListRole(role)


def lock_list(session: Session, list_id: int) -> None:
    """The list's row alone, as `locked_role` locks it (for a caller not yet a member)."""
    session.execute(
        select(TaskList.id).where(TaskList.id == list_id).with_for_update(key_share=True)
    )


def lock_member(session: Session, list_id: int, user_id: int) -> ListRole | None:
    """Another member's role, their row locked (the list's row is already locked)."""
    statement = (
        select(ListMember.role)
        .where(ListMember.list_id == list_id, ListMember.user_id == user_id)
        .with_for_update(key_share=True)
    )
    role = session.execute(statement).scalar_one_or_none()
    return None if role is None else ListRole(role)


_MEMBER_COLUMNS = (ListMember.user_id, User.email, ListMember.role, ListMember.joined_at)


def members(session: Session, user_id: int, list_id: int) -> list[AnyRow]:
    """The list's members, oldest first, if the user is one of them, else nothing (a list
    always has its owner, so an empty answer means the user is not a member)."""
    me = aliased(ListMember, name="me")
    is_member = exists().where(me.list_id == list_id, me.user_id == user_id)
    statement = (
        select(*_MEMBER_COLUMNS)
        .join(User, User.id == ListMember.user_id)
        .where(ListMember.list_id == list_id, is_member)
        .order_by(ListMember.joined_at, ListMember.user_id)
    )
    return list(session.execute(statement))


def member(session: Session, list_id: int, user_id: int) -> AnyRow | None:
    statement = (
        select(*_MEMBER_COLUMNS)
        .join(User, User.id == ListMember.user_id)
        .where(ListMember.list_id == list_id, ListMember.user_id == user_id)
    )
    return session.execute(statement).one_or_none()


def count_members(session: Session, list_id: int) -> int:
    statement = select(func.count()).select_from(ListMember).where(ListMember.list_id == list_id)
    return int(session.execute(statement).scalar_one())


def set_role(session: Session, list_id: int, user_id: int, role: ListRole) -> None:
    session.execute(
        update(ListMember)
        .where(ListMember.list_id == list_id, ListMember.user_id == user_id)
        .values(role=role)
    )


def hand_over(session: Session, list_id: int, old_owner_id: int, new_owner_id: int) -> None:
    """The old owner becomes an editor and the member the owner. Three statements in this
    order: the one-owner index is checked row by row, the owner key (deferred) at commit."""
    set_role(session, list_id, old_owner_id, ListRole.EDITOR)
    set_role(session, list_id, new_owner_id, ListRole.OWNER)
    session.execute(
        update(TaskList)
        .where(TaskList.id == list_id)
        .values(owner_id=new_owner_id, updated_at=_NEXT_VERSION)
    )


def add_member(session: Session, list_id: int, user_id: int, role: ListRole) -> None:
    session.execute(insert(ListMember).values(list_id=list_id, user_id=user_id, role=role))


def remove_member(session: Session, list_id: int, user_id: int) -> None:
    """The member goes; tasks assigned to them lose their assignee (the assignee key's
    ON DELETE SET NULL (assignee_id))."""
    session.execute(
        delete(ListMember).where(ListMember.list_id == list_id, ListMember.user_id == user_id)
    )


def touch(session: Session, list_id: int) -> None:
    """A new version of the list (its member count changed)."""
    session.execute(update(TaskList).where(TaskList.id == list_id).values(updated_at=_NEXT_VERSION))
