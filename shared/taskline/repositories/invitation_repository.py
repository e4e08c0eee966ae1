"""Queries on list invitations, and the per-account quota of the emails they cause.

An invitation's address is stored as `lower()` of the address normalised as at sign-up,
computed by PostgreSQL, the very function the unique index of accounts' emails uses: the
spellings that reach one account reach its invitations, and none other does.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlalchemy import Row, Select, delete, exists, func, select
from sqlalchemy.dialects.postgresql import insert
from sqlalchemy.orm import Session, aliased

from taskline.domain import ListRole
from taskline.models import EmailSuppression, ListInvitation, ListMember, TaskList, User
from taskline.repositories.list_repository import locked_role

# A row of any shape (columns chosen per query).
AnyRow = Row[*tuple[Any, ...]]


def _shown() -> Select[*tuple[Any, ...]]:
    """Invitations with what a response shows: the list's name and the inviter's email."""
    inviter = aliased(User, name="inviter")
    return (
        select(
            ListInvitation.id,
            ListInvitation.list_id,
            TaskList.name.label("list_name"),
            ListInvitation.email,
            ListInvitation.role,
            ListInvitation.invited_by,
            inviter.email.label("inviter_email"),
            ListInvitation.created_at,
            ListInvitation.expires_at,
        )
        .join(TaskList, TaskList.id == ListInvitation.list_id)
        .join(inviter, inviter.id == ListInvitation.invited_by)
    )


def get(session: Session, invitation_id: int) -> AnyRow:
    return session.execute(_shown().where(ListInvitation.id == invitation_id)).one()


def purge_expired(session: Session, list_id: int, now: datetime) -> None:
    """Expired invitations of the list are of no use to anyone; they go before it counts."""
    session.execute(
        delete(ListInvitation).where(
            ListInvitation.list_id == list_id, ListInvitation.expires_at <= now
        )
    )


def address_is_member(session: Session, list_id: int, email: str) -> bool:
    statement = select(
        exists()
        .where(ListMember.list_id == list_id, User.id == ListMember.user_id)
        .where(func.lower(User.email) == func.lower(email))
    )
    return bool(session.scalar(statement))


def count_pending_others(session: Session, list_id: int, email: str, now: datetime) -> int:
    """Pending invitations of the list to addresses other than `email` (which would be
    renewed, not added)."""
    statement = (
        select(func.count())
        .select_from(ListInvitation)
        .where(
            ListInvitation.list_id == list_id,
            ListInvitation.expires_at > now,
            ListInvitation.email != func.lower(email),
        )
    )
    return int(session.execute(statement).scalar_one())


def upsert(
    session: Session,
    list_id: int,
    email: str,
    role: ListRole,
    invited_by: int,
    now: datetime,
    expires_at: datetime,
) -> int:
    """Invite the address, or renew its invitation (same id; new role, inviter and expiry)."""
    values = {
        "list_id": list_id,
        "email": func.lower(email),
        "role": role,
        "invited_by": invited_by,
        "created_at": now,
        "expires_at": expires_at,
    }
    inserting = insert(ListInvitation).values(**values)
    statement = inserting.on_conflict_do_update(
        index_elements=[ListInvitation.list_id, ListInvitation.email],
        set_={
            "role": inserting.excluded.role,
            "invited_by": inserting.excluded.invited_by,
            "created_at": inserting.excluded.created_at,
            "expires_at": inserting.excluded.expires_at,
        },
    ).returning(ListInvitation.id)
    return int(session.execute(statement).scalar_one())


def delivery(session: Session, email: str) -> tuple[bool, bool]:
    """(an account uses the address without having verified it, the address is suppressed),
    in one statement whatever the answer, so both kinds of address cost the same."""
    unverified = exists().where(
        func.lower(User.email) == func.lower(email), User.email_verified_at.is_(None)
    )
    suppressed = exists().where(EmailSuppression.address == func.lower(email))
    row = session.execute(select(unverified, suppressed)).one()
    return bool(row[0]), bool(row[1])


def pending_for_list(
    session: Session, user_id: int, list_id: int, now: datetime
) -> tuple[ListRole | None, list[AnyRow]]:
    """The user's role in the list and, if they own it, its pending invitations (oldest first),
    in one statement."""
    role = (
        select(ListMember.role)
        .where(ListMember.list_id == list_id, ListMember.user_id == user_id)
        .scalar_subquery()
    )
    # One row whatever the answer (the role, NULL for a non-member), joined to the invitations
    # only when that role is the owner's.
    me = select(role.label("my_role")).subquery("me")
    pending = (
        _shown()
        .where(ListInvitation.list_id == list_id, ListInvitation.expires_at > now)
        .subquery("pending")
    )
    statement = (
        select(me.c.my_role, *pending.c)
        .select_from(me.outerjoin(pending, me.c.my_role == ListRole.OWNER))
        .order_by(pending.c.created_at, pending.c.id)
    )
    rows = list(session.execute(statement))
    my_role = rows[0].my_role
    invitations = [row for row in rows if row.id is not None]
    return (None if my_role is None else ListRole(my_role)), invitations


def revoke(
    session: Session, user_id: int, list_id: int, invitation_id: int
) -> tuple[ListRole | None, bool]:
    """Delete the invitation if the user owns its list, in one statement. Returns the user's
    role (None: not a member) and whether an invitation was deleted."""
    me = locked_role(list_id, user_id).cte("me")
    allowed = select(me.c.role).where(me.c.role == ListRole.OWNER).exists()
    revoked = (
        delete(ListInvitation)
        .where(ListInvitation.id == invitation_id, ListInvitation.list_id == list_id, allowed)
        .returning(ListInvitation.id)
        .cte("revoked")
    )
    statement = select(
        select(me.c.role).scalar_subquery(), select(revoked.c.id).exists().label("revoked")
    )
    role, done = session.execute(statement).one()
    return (None if role is None else ListRole(role)), bool(done)


def _my_address(user_id: int) -> Any:
    return select(func.lower(User.email)).where(User.id == user_id).scalar_subquery()


def addressed_to(
    session: Session, user_id: int, now: datetime, after_id: int | None, limit: int
) -> list[AnyRow]:
    """One page (id order, after `after_id`) of the pending invitations to the user's address."""
    statement = _shown().where(
        ListInvitation.email == _my_address(user_id), ListInvitation.expires_at > now
    )
    if after_id is not None:
        statement = statement.where(ListInvitation.id > after_id)
    return list(session.execute(statement.order_by(ListInvitation.id).limit(limit)))


def list_of_addressed_to(session: Session, user_id: int, invitation_id: int) -> int | None:
    """The list of the invitation if it is addressed to the user's address (unlocked: accepting
    locks the list first, then the invitation, the order every writer follows)."""
    statement = select(ListInvitation.list_id).where(
        ListInvitation.id == invitation_id, ListInvitation.email == _my_address(user_id)
    )
    return session.execute(statement).scalar_one_or_none()


def lock_addressed_to(session: Session, user_id: int, invitation_id: int) -> AnyRow | None:
    """The invitation if it is addressed to the user's address, locked until the transaction
    ends (so it is accepted or declined once); None for anyone else's."""
    statement = (
        select(
            ListInvitation.id,
            ListInvitation.list_id,
            ListInvitation.role,
            ListInvitation.expires_at,
        )
        .where(ListInvitation.id == invitation_id)
        .where(ListInvitation.email == _my_address(user_id))
        .with_for_update()
    )
    return session.execute(statement).one_or_none()


def remove(session: Session, invitation_id: int) -> None:
    session.execute(delete(ListInvitation).where(ListInvitation.id == invitation_id))
