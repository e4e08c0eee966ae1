"""Queries on accounts."""

from __future__ import annotations

from sqlalchemy import delete, func, select, update
from sqlalchemy.dialects.postgresql import insert
from sqlalchemy.orm import Session

from taskline.models import User


def add_if_email_free(session: Session, email: str, password_hash: str) -> User | None:
    """Insert the account, or return None when the email (any case) is taken.

    ON CONFLICT keeps the transaction usable and needs no second query to tell a race apart.
    """
    statement = (
        insert(User)
        .values(email=email, password_hash=password_hash)
        .on_conflict_do_nothing(index_elements=[func.lower(User.email)])
        .returning(User)
    )
    return session.scalars(statement).one_or_none()


def get_by_email(session: Session, email: str) -> User | None:
    if "\x00" in email:  # PostgreSQL text cannot hold NUL, so no account has such an email
        return None
    return session.scalars(
        # lower() on both sides: PostgreSQL's and Python's case mappings differ (e.g. for "İ").
        select(User).where(func.lower(User.email) == func.lower(email))
    ).one_or_none()


def get(session: Session, user_id: int) -> User | None:
    return session.get(User, user_id)


def lock_for_change(session: Session, user_id: int) -> bool:
    """Lock the account's row until the transaction ends (False: no such account): account-level
    changes of one account take turns. FOR NO KEY UPDATE leaves tasks' foreign-key checks free."""
    statement = select(User.id).where(User.id == user_id).with_for_update(key_share=True)
    return session.execute(statement).one_or_none() is not None


def set_password_if_unchanged(
    session: Session, user_id: int, expected_hash: str, new_hash: str
) -> bool:
    """Replace the hash only if it is still the one the caller's password was checked against."""
    statement = (
        update(User)
        .where(User.id == user_id, User.password_hash == expected_hash)
        .values(password_hash=new_hash)
        .returning(User.id)
    )
    return session.execute(statement).one_or_none() is not None


def delete_if_unchanged(session: Session, user_id: int, expected_hash: str) -> bool:
    """Delete the account (its tasks, sessions and refresh tokens go with it, ON DELETE CASCADE),
    only if the password hash is still the one the caller's password was checked against."""
    statement = (
        delete(User)
        .where(User.id == user_id, User.password_hash == expected_hash)
        .returning(User.id)
    )
    return session.execute(statement).one_or_none() is not None
