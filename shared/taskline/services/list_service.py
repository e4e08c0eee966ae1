"""Shared lists: who may do what to a list, its members and its invitations, in one place.

Roles: the owner does everything; an editor renames the list (and writes its tasks); a viewer
reads. Any member reads the list and its members and may leave; only the owner invites, changes
roles, removes others, hands ownership over and deletes the list. A list the caller is not a
member of is 404, whatever it is; a member without the role gets 403 (forbidden).

Every use case runs on behalf of a live sign-in (account-level routes refuse an ended one, as
GET /users/me does) and checks the caller's role in the statement that acts, or under the row
locks it holds until commit (taskline.repositories.list_repository).
"""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta
from typing import Any

from sqlalchemy.orm import Session

from taskline import clock, invitation_email
from taskline.db import read_only, retry_if_disconnected, transaction
from taskline.domain import (
    INVITATION_LIFETIME_DAYS,
    MAX_INVITATION_EMAILS_PER_DAY,
    MAX_LISTS_PER_ACCOUNT,
    MAX_MEMBERS_PER_LIST,
    MAX_PENDING_INVITATIONS_PER_LIST,
    ListRole,
    QuotaScope,
)
from taskline.errors import (
    EmailUnverified,
    Forbidden,
    InvitationExpired,
    InvitationNotFound,
    ListConflict,
    ListNotFound,
    MemberNotFound,
    SendQuotaExceeded,
    SignInEnded,
)
from taskline.models import User
from taskline.pagination import decode_cursor, encode_cursor
from taskline.repositories import (
    invitation_repository,
    list_repository,
    send_quota_repository,
    task_repository,
    user_repository,
)
from taskline.repositories.list_repository import AnyRow
from taskline.schemas import (
    AccountRef,
    InvitationCreate,
    InvitationOut,
    InvitationPage,
    ListOut,
    ListPage,
    ListRef,
    MemberOut,
)
from taskline.security.tokens import VerifiedToken
from taskline.services import deadline_gate_service
from taskline.settings import get_settings

_DAY = timedelta(days=1)
_LIFETIME = timedelta(days=INVITATION_LIFETIME_DAYS)
# Keyset cursors reuse taskline.pagination's signed (position, id) format with a fixed position;
# the scope names the listing, so a cursor of one listing is refused by every other.
_NO_POSITION = datetime(1970, 1, 1, tzinfo=UTC)


def _signed_in(session: Session, token: VerifiedToken) -> User:
    """The caller's account. The routes are account-level (`SignedIn.LIVE`): the unit of work
    has already checked, inside this transaction, that the token's sign-in is live."""
    user = user_repository.get(session, token.user_id)
    if user is None:
        raise SignInEnded
    return user


def _default_lead() -> int:
    return get_settings().deadline_due_soon_minutes


def _list_out(row: AnyRow) -> ListOut:
    return ListOut(
        id=row.id,
        name=row.name,
        role=row.role,
        owner=AccountRef(id=row.owner_id, email=row.owner_email),
        member_count=row.member_count,
        created_at=row.created_at,
        updated_at=row.updated_at,
    )


def _invitation_out(row: AnyRow) -> InvitationOut:
    return InvitationOut(
        id=row.id,
        list=ListRef(id=row.list_id, name=row.list_name),
        email=row.email,
        role=row.role,
        invited_by=AccountRef(id=row.invited_by, email=row.inviter_email),
        created_at=row.created_at,
        expires_at=row.expires_at,
    )


def _scope(listing: str, user_id: int) -> bytes:
    return json.dumps([listing, user_id], separators=(",", ":")).encode()


def _after(cursor: str | None, scope: bytes) -> int | None:
    return None if cursor is None else decode_cursor(cursor, scope).id


def _next(rows: list[Any], limit: int, scope: bytes) -> str | None:
    return encode_cursor(_NO_POSITION, rows[limit - 1].id, scope) if len(rows) > limit else None


def _visible(session: Session, user_id: int, list_id: int) -> ListOut:
    row = list_repository.get(session, user_id, list_id)
    if row is None:
        raise ListNotFound
    return _list_out(row)


# Lists


def create(token: VerifiedToken, name: str) -> ListOut:
    with transaction() as session:
        user = _signed_in(session, token)
        list_repository.lock_account(session, user.id)
        if list_repository.count_memberships(session, user.id) >= MAX_LISTS_PER_ACCOUNT:
            raise ListConflict(f"An account can be in at most {MAX_LISTS_PER_ACCOUNT} lists.")
        list_id = list_repository.create(session, user.id, name)
        return _visible(session, user.id, list_id)


@retry_if_disconnected
def page(token: VerifiedToken, limit: int, cursor: str | None) -> ListPage:
    scope = _scope("lists", token.user_id)
    after = _after(cursor, scope)
    with read_only() as session:
        user = _signed_in(session, token)
        rows = list_repository.page(session, user.id, after, limit + 1)
    return ListPage(
        items=[_list_out(row) for row in rows[:limit]], next_cursor=_next(rows, limit, scope)
    )


@retry_if_disconnected
def get(token: VerifiedToken, list_id: int) -> ListOut:
    with read_only() as session:
        user = _signed_in(session, token)
        return _visible(session, user.id, list_id)


def rename(token: VerifiedToken, list_id: int, name: str) -> ListOut:
    with transaction() as session:
        user = _signed_in(session, token)
        role, renamed = list_repository.rename(session, user.id, list_id, name)
        if role is None:
            raise ListNotFound
        if not renamed:
            raise Forbidden("Only the list's owner and editors can rename it.")
        return _visible(session, user.id, list_id)


def delete(token: VerifiedToken, list_id: int) -> None:
    with transaction() as session:
        user = _signed_in(session, token)
        role, deleted = list_repository.delete_list(session, user.id, list_id)
        if role is None:
            raise ListNotFound
        if not deleted:
            raise Forbidden("Only the list's owner can delete it.")


# Members


def _member_out(row: AnyRow) -> MemberOut:
    return MemberOut.model_validate(row)


@retry_if_disconnected
def members(token: VerifiedToken, list_id: int) -> list[MemberOut]:
    with read_only() as session:
        user = _signed_in(session, token)
        rows = list_repository.members(session, user.id, list_id)
        if not rows:
            raise ListNotFound
        return [_member_out(row) for row in rows]


def _lock_as_member(session: Session, list_id: int, user_id: int) -> ListRole:
    role = list_repository.lock_membership(session, list_id, user_id)
    if role is None:
        raise ListNotFound
    return role


def change_role(token: VerifiedToken, list_id: int, member_id: int, role: ListRole) -> MemberOut:
    """The owner sets a member's role; `owner` hands ownership over (the old owner becomes an
    editor). The owner cannot step down otherwise: a list always has its one owner."""
    with transaction() as session:
        user = _signed_in(session, token)
        if _lock_as_member(session, list_id, user.id) is not ListRole.OWNER:
            raise Forbidden("Only the list's owner can change roles.")
        current = (
            ListRole.OWNER
            if member_id == user.id
            else list_repository.lock_member(session, list_id, member_id)
        )
        if current is None:
            raise MemberNotFound
        if current is ListRole.OWNER and role is not ListRole.OWNER:
            raise ListConflict("The owner keeps the role until handing ownership to a member.")
        if role is ListRole.OWNER and current is not ListRole.OWNER:
            list_repository.hand_over(session, list_id, user.id, member_id)
            deadline_gate_service.reminders_scheduled(
                task_repository.refresh_recipients(session, [list_id], _default_lead()).earliest_due
            )
        elif role is not current:
            list_repository.set_role(session, list_id, member_id, role)
        row = list_repository.member(session, list_id, member_id)
        if row is None:  # locked above
            raise MemberNotFound
        return _member_out(row)


def remove_member(token: VerifiedToken, list_id: int, member_id: int) -> None:
    """The owner removes anyone else; any member removes themself; the owner cannot leave."""
    with transaction() as session:
        user = _signed_in(session, token)
        role = _lock_as_member(session, list_id, user.id)
        if member_id == user.id:
            if role is ListRole.OWNER:
                raise ListConflict("The owner cannot leave; hand ownership over first.")
        elif role is not ListRole.OWNER:
            raise Forbidden("Only the list's owner can remove other members.")
        elif list_repository.lock_member(session, list_id, member_id) is None:
            raise MemberNotFound
        list_repository.remove_member(session, list_id, member_id)
        list_repository.touch(session, list_id)
        # Their assignments were cleared by the assignee key; reminders follow the new recipient.
        deadline_gate_service.reminders_scheduled(
            task_repository.refresh_recipients(session, [list_id], _default_lead()).earliest_due
        )


# Invitations (the owner's side)


def invite(token: VerifiedToken, list_id: int, request: InvitationCreate) -> InvitationOut:
    """Invite an address, or renew its pending invitation. The same statements run, and the
    same answer comes back, whether or not an account uses the address: the inviter learns
    nothing about it. The email goes out unless the address is suppressed or belongs to an
    account that has not verified it (no invitation email to an unproven address)."""
    now = clock.utcnow()
    with transaction() as session:
        user = _signed_in(session, token)
        if _lock_as_member(session, list_id, user.id) is not ListRole.OWNER:
            raise Forbidden("Only the list's owner can invite.")
        retry_after = send_quota_repository.take(
            session, QuotaScope.INVITATION, str(user.id), MAX_INVITATION_EMAILS_PER_DAY, _DAY, now
        )
        if retry_after is not None:
            raise SendQuotaExceeded(retry_after)
        if invitation_repository.address_is_member(session, list_id, request.email):
            raise ListConflict("This address is already a member of the list.")
        invitation_repository.purge_expired(session, list_id, now)
        pending = invitation_repository.count_pending_others(session, list_id, request.email, now)
        if pending >= MAX_PENDING_INVITATIONS_PER_LIST:
            raise ListConflict(
                f"A list can have at most {MAX_PENDING_INVITATIONS_PER_LIST} pending invitations."
            )
        invitation_id = invitation_repository.upsert(
            session, list_id, request.email, request.role, user.id, now, now + _LIFETIME
        )
        unverified_account, suppressed = invitation_repository.delivery(session, request.email)
        invitation = _invitation_out(invitation_repository.get(session, invitation_id))
    if unverified_account or suppressed:
        invitation_email.skip(invitation.email)
    else:
        invitation_email.send(
            get_settings(),
            invitation.email,
            invitation.list.name,
            invitation.invited_by.email,
            invitation.role.value,
            INVITATION_LIFETIME_DAYS,
        )
    return invitation


@retry_if_disconnected
def list_invitations(token: VerifiedToken, list_id: int) -> list[InvitationOut]:
    with read_only() as session:
        user = _signed_in(session, token)
        role, rows = invitation_repository.pending_for_list(
            session, user.id, list_id, clock.utcnow()
        )
        if role is None:
            raise ListNotFound
        if role is not ListRole.OWNER:
            raise Forbidden("Only the list's owner can see its invitations.")
        return [_invitation_out(row) for row in rows]


def revoke(token: VerifiedToken, list_id: int, invitation_id: int) -> None:
    with transaction() as session:
        user = _signed_in(session, token)
        role, revoked = invitation_repository.revoke(session, user.id, list_id, invitation_id)
        if role is None:
            raise ListNotFound
        if role is not ListRole.OWNER:
            raise Forbidden("Only the list's owner can revoke invitations.")
        if not revoked:
            raise InvitationNotFound


# Invitations (the addressee's side)


def _verified(user: User) -> None:
    # An invitation must never reach someone who merely signed up with the address.
    if user.email_verified_at is None:
        raise EmailUnverified


@retry_if_disconnected
def my_invitations(token: VerifiedToken, limit: int, cursor: str | None) -> InvitationPage:
    scope = _scope("invitations", token.user_id)
    after = _after(cursor, scope)
    with read_only() as session:
        user = _signed_in(session, token)
        _verified(user)
        rows = invitation_repository.addressed_to(
            session, user.id, clock.utcnow(), after, limit + 1
        )
    items = [_invitation_out(row) for row in rows[:limit]]
    return InvitationPage(items=items, next_cursor=_next(rows, limit, scope))


def _lock_mine(session: Session, user: User, invitation_id: int) -> AnyRow:
    """The caller's own invitation, locked; 404 for anyone else's, then 403 while the caller's
    address is unverified, then 410 once it expired."""
    invitation = invitation_repository.lock_addressed_to(session, user.id, invitation_id)
    if invitation is None:
        raise InvitationNotFound
    _verified(user)
    if invitation.expires_at <= clock.utcnow():
        raise InvitationExpired
    return invitation


def accept(token: VerifiedToken, invitation_id: int) -> ListOut:
    with transaction() as session:
        user = _signed_in(session, token)
        list_id = invitation_repository.list_of_addressed_to(session, user.id, invitation_id)
        if list_id is None:
            raise InvitationNotFound
        # The list's row, then the invitation's: the order in which inviting locks them too.
        list_repository.lock_list(session, list_id)
        invitation = _lock_mine(session, user, invitation_id)
        if list_repository.lock_member(session, list_id, user.id) is None:
            if list_repository.count_members(session, list_id) >= MAX_MEMBERS_PER_LIST:
                raise ListConflict(f"A list can have at most {MAX_MEMBERS_PER_LIST} members.")
            list_repository.lock_account(session, user.id)
            if list_repository.count_memberships(session, user.id) >= MAX_LISTS_PER_ACCOUNT:
                raise ListConflict(f"An account can be in at most {MAX_LISTS_PER_ACCOUNT} lists.")
            list_repository.add_member(session, list_id, user.id, ListRole(invitation.role))
            list_repository.touch(session, list_id)
            # A creator who rejoins gets their tasks' reminders back.
            deadline_gate_service.reminders_scheduled(
                task_repository.refresh_recipients(session, [list_id], _default_lead()).earliest_due
            )
        # Already a member (an older invitation, say): the role stays, the invitation is used up.
        invitation_repository.remove(session, invitation_id)
        return _visible(session, user.id, list_id)


def decline(token: VerifiedToken, invitation_id: int) -> None:
    with transaction() as session:
        user = _signed_in(session, token)
        _lock_mine(session, user, invitation_id)
        invitation_repository.remove(session, invitation_id)
