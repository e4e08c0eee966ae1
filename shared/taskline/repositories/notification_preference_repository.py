"""Queries on notification preferences and suppressed email addresses."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlalchemy import case, delete, exists, func, select
from sqlalchemy.dialects.postgresql import insert
from sqlalchemy.orm import Session

from taskline.models import EmailSuppression, NotificationPreference, User


def get(
    session: Session, user_id: int, *, for_update: bool = False
) -> NotificationPreference | None:
    statement = select(NotificationPreference).where(NotificationPreference.user_id == user_id)
    if for_update:
        statement = statement.with_for_update()
    return session.scalars(statement).one_or_none()


def save(
    session: Session, user_id: int, values: dict[str, Any], now: datetime
) -> NotificationPreference:
    """Insert or replace the account's preferences (every column in `values`) at `now`.

    `email_enabled_at` moves only when email goes from off to on."""
    table = NotificationPreference
    statement = insert(table).values(user_id=user_id, **values, updated_at=now)
    switched_on = (~table.email_enabled) & statement.excluded.email_enabled
    upsert = statement.on_conflict_do_update(
        index_elements=[table.user_id],
        set_={
            **{name: statement.excluded[name] for name in values},
            "updated_at": now,
            "email_enabled_at": case((switched_on, now), else_=table.email_enabled_at),
        },
    ).returning(table)
    # The row may already be in the session (read FOR UPDATE before): refresh it from RETURNING.
    upsert = upsert.execution_options(populate_existing=True)
    saved: NotificationPreference = session.scalars(upsert).one()
    return saved


def deliverable(session: Session, user_id: int) -> bool:
    """Whether email may go to the account's address: verified by its owner, and neither
    unsubscribed by its recipient nor reported by SES as bouncing or complaining."""
    statement = select(
        User.email_verified_at.is_not(None)
        & ~exists().where(EmailSuppression.address == func.lower(User.email))
    ).where(User.id == user_id)
    return bool(session.scalar(statement))


def suppression(session: Session, address: str) -> EmailSuppression | None:
    """The suppression of `address` (any case), if there is one."""
    return session.get(EmailSuppression, address.lower())


def lift_suppression(session: Session, user_id: int) -> None:
    """Only a fresh verification of the address by its owner calls this."""
    address = select(func.lower(User.email)).where(User.id == user_id).scalar_subquery()
    session.execute(delete(EmailSuppression).where(EmailSuppression.address == address))


def suppress(session: Session, addresses: dict[str, tuple[str, str | None]]) -> int:
    """Record undeliverable addresses {lower(address): (reason, feedback id)}; an address
    already listed keeps its first report. Returns how many were new."""
    if not addresses:
        return 0
    statement = (
        insert(EmailSuppression)
        .values(
            [
                {"address": address, "reason": reason, "feedback_id": feedback_id}
                for address, (reason, feedback_id) in addresses.items()
            ]
        )
        .on_conflict_do_nothing()
        .returning(EmailSuppression.address)
    )
    return len(session.scalars(statement).all())


def suppress_user_address(session: Session, user_id: int, reason: str, now: datetime) -> None:
    """Suppress the account's current address now, whatever was recorded before (a newer
    suppression makes older verification links stale)."""
    address = select(func.lower(User.email)).where(User.id == user_id).scalar_subquery()
    statement = insert(EmailSuppression).values(address=address, reason=reason, created_at=now)
    session.execute(
        statement.on_conflict_do_update(
            index_elements=[EmailSuppression.address],
            set_={"reason": reason, "created_at": now, "feedback_id": None},
        )
    )
