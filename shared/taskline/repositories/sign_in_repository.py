"""Queries on sign-ins (refresh-token families) and their refresh tokens."""

from __future__ import annotations

import uuid
from dataclasses import dataclass
from datetime import datetime

from sqlalchemy import Exists, delete, exists, func, insert, literal, select, update
from sqlalchemy.orm import Session

from taskline.models import RefreshToken, SignIn, User


@dataclass(frozen=True)
class Rotated:
    user_id: int
    sign_in_id: uuid.UUID


@dataclass(frozen=True)
class Ended:
    user_id: int
    sign_in_id: uuid.UUID


def start(
    session: Session,
    user_id: int,
    sign_in_id: uuid.UUID,
    token_hash: bytes,
    now: datetime,
    token_expires_at: datetime,
    session_expires_at: datetime,
) -> None:
    """A new sign-in with its first refresh token, in one statement."""
    new_sign_in = (
        insert(SignIn)
        .values(id=sign_in_id, user_id=user_id, created_at=now, expires_at=session_expires_at)
        .returning(SignIn.id)
        .cte("new_sign_in")
    )
    statement = insert(RefreshToken).from_select(
        [
            RefreshToken.token_hash,
            RefreshToken.sign_in_id,
            RefreshToken.created_at,
            RefreshToken.expires_at,
        ],
        select(
            literal(token_hash),
            new_sign_in.c.id,
            literal(now),
            literal(min(token_expires_at, session_expires_at)),
        ),
    )
    session.execute(statement)


def rotate(
    session: Session, token_hash: bytes, new_hash: bytes, now: datetime, new_expires_at: datetime
) -> Rotated | None:
    """Spend an unused, unexpired refresh token of a live sign-in and add its successor.

    One statement: the UPDATE takes the token's row lock, so of several concurrent exchanges
    of one token exactly one matches `used_at IS NULL`; the others find it used.
    """
    spent = (
        update(RefreshToken)
        .where(
            RefreshToken.token_hash == token_hash,
            RefreshToken.used_at.is_(None),
            RefreshToken.expires_at > now,
            SignIn.id == RefreshToken.sign_in_id,
            SignIn.expires_at > now,
        )
        .values(used_at=now)
        .returning(RefreshToken.sign_in_id.label("sign_in_id"), SignIn.user_id, SignIn.expires_at)
        .cte("spent")
    )
    statement = (
        insert(RefreshToken)
        .from_select(
            [
                RefreshToken.token_hash,
                RefreshToken.sign_in_id,
                RefreshToken.created_at,
                RefreshToken.expires_at,
            ],
            select(
                literal(new_hash),
                spent.c.sign_in_id,
                literal(now),
                func.least(literal(new_expires_at), spent.c.expires_at),
            ),
        )
        .returning(
            RefreshToken.sign_in_id,
            select(spent.c.user_id).scalar_subquery(),
        )
    )
    row = session.execute(statement).one_or_none()
    if row is None:
        return None
    return Rotated(user_id=row[1], sign_in_id=row[0])


def end_for_token(session: Session, token_hash: bytes, *, used_only: bool) -> Ended | None:
    """End the sign-in the refresh token belongs to (with `used_only`, only if the token was
    already spent: the reuse that betrays a stolen token). Its refresh tokens go with it."""
    family = select(RefreshToken.sign_in_id).where(RefreshToken.token_hash == token_hash)
    if used_only:
        family = family.where(RefreshToken.used_at.is_not(None))
    statement = (
        delete(SignIn)
        .where(SignIn.id.in_(family.scalar_subquery()))
        .returning(SignIn.id, SignIn.user_id)
    )
    row = session.execute(statement).one_or_none()
    return None if row is None else Ended(sign_in_id=row[0], user_id=row[1])


def end(session: Session, sign_in_id: uuid.UUID, user_id: int) -> bool:
    """End one session: its row goes, and every refresh token of the family with it."""
    statement = (
        delete(SignIn)
        .where(SignIn.id == sign_in_id, SignIn.user_id == user_id)
        .returning(SignIn.id)
    )
    return session.execute(statement).one_or_none() is not None


def end_all(session: Session, user_id: int, caller: uuid.UUID, now: datetime) -> int | None:
    """End every sign-in of the user, provided the caller's own sign-in is still live.

    None when it is not (the caller's token belongs to an ended sign-in or a deleted account):
    the check and the deletes are one statement, which sees the table as it was before.
    """
    statement = (
        delete(SignIn)
        .where(SignIn.user_id == user_id, _live(caller, user_id, now))
        .returning(SignIn.id)
    )
    ended = list(session.scalars(statement))
    return len(ended) if ended else None


def end_others(session: Session, user_id: int, keep: uuid.UUID) -> int:
    statement = (
        delete(SignIn).where(SignIn.user_id == user_id, SignIn.id != keep).returning(SignIn.id)
    )
    return len(list(session.scalars(statement)))


def prune_for_user(session: Session, user_id: int, now: datetime) -> None:
    """Drop the user's expired sign-ins, and expired tokens of live ones (kept until then so a
    replayed, already-used token is still recognised)."""
    session.execute(delete(SignIn).where(SignIn.user_id == user_id, SignIn.expires_at <= now))
    session.execute(
        delete(RefreshToken).where(
            RefreshToken.expires_at <= now,
            RefreshToken.sign_in_id.in_(select(SignIn.id).where(SignIn.user_id == user_id)),
        )
    )


def user_signed_in(
    session: Session, user_id: int, sign_in_id: uuid.UUID, now: datetime
) -> User | None:
    """The account, if the access token's sign-in is still live: a revocation check folded into
    the query that reads the account anyway."""
    statement = select(User).where(User.id == user_id, _live(sign_in_id, user_id, now))
    return session.scalars(statement).one_or_none()


def _live(sign_in_id: uuid.UUID, user_id: int, now: datetime) -> Exists:
    return exists().where(
        SignIn.id == sign_in_id,
        SignIn.user_id == user_id,
        SignIn.expires_at > now,
    )


def hold_live(
    session: Session, user_id: int, sign_in_id: uuid.UUID, now: datetime, *, lock: bool
) -> bool:
    """Whether the sign-in is live; with `lock`, it stays so until this transaction ends.

    FOR KEY SHARE conflicts with the DELETE that ends a sign-in (logout, logout-all, password
    change, account deletion): whichever comes second waits for the first to commit, so a
    change made under a live sign-in is never committed after that sign-in ended (and an
    ending that revokes something, such as the calendar feed, sees what was made before it).
    """
    statement = select(SignIn.id).where(
        SignIn.id == sign_in_id, SignIn.user_id == user_id, SignIn.expires_at > now
    )
    if lock:
        statement = statement.with_for_update(read=True, key_share=True)
    return session.scalars(statement).one_or_none() is not None
