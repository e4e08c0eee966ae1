"""Handing an account's lists over before the account goes (the database refuses to delete an
owner whose list was not handed over: lists' owner key to list_members)."""

from __future__ import annotations

from sqlalchemy import and_, case, delete, select, update
from sqlalchemy.dialects.postgresql import distinct_on
from sqlalchemy.orm import Session

from taskline.domain import ListRole
from taskline.models import ListMember, TaskList


def memberships(session: Session, user_id: int) -> list[int]:
    """The lists the account belongs to, whatever its role."""
    statement = select(ListMember.list_id).where(ListMember.user_id == user_id)
    return list(session.scalars(statement))


def hand_over_owned(session: Session, user_id: int) -> dict[int, int]:
    """Hand each list the account owns to its longest-standing editor, else its longest-standing
    viewer; delete the lists no one else is in (their tasks and invitations go with them).
    Returns {list id: new owner}. The account's own member rows stay (as an editor's) until the
    account is deleted in the same transaction."""
    owned = select(TaskList.id).where(TaskList.owner_id == user_id).with_for_update().subquery()
    editors_first = case((ListMember.role == ListRole.EDITOR.value, 0), else_=1)
    successors = (
        select(ListMember.list_id, ListMember.user_id)
        .where(ListMember.list_id.in_(select(owned.c.id)), ListMember.user_id != user_id)
        .order_by(ListMember.list_id, editors_first, ListMember.joined_at, ListMember.user_id)
        .ext(distinct_on(ListMember.list_id))
    )
    heirs = {int(list_id): int(heir) for list_id, heir in session.execute(successors)}
    if heirs:
        # One owner per list at every moment (a unique index): the old owner steps down first;
        # the lists' owner key is deferred to the commit, by which the new owner is in place.
        session.execute(
            update(ListMember)
            .where(ListMember.user_id == user_id, ListMember.list_id.in_(heirs))
            .values(role=ListRole.EDITOR.value)
        )
        for list_id, heir in heirs.items():
            session.execute(
                update(ListMember)
                .where(and_(ListMember.list_id == list_id, ListMember.user_id == heir))
                .values(role=ListRole.OWNER.value)
            )
            session.execute(update(TaskList).where(TaskList.id == list_id).values(owner_id=heir))
    session.execute(delete(TaskList).where(TaskList.owner_id == user_id, TaskList.id.not_in(heirs)))
    return heirs
