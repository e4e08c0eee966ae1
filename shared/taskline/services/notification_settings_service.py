"""Notification preferences of an account, and one-click unsubscribing from emails."""

from __future__ import annotations

from typing import Any

from sqlalchemy.orm import Session

from taskline import clock
from taskline.db import read_only, retry_if_disconnected, transaction
from taskline.domain import SuppressionReason
from taskline.errors import UnsubscribeLinkExpired, UnsubscribeLinkInvalid
from taskline.models import NotificationPreference, User
from taskline.repositories import notification_preference_repository, task_repository
from taskline.schemas import (
    NotificationPreferencesOut,
    NotificationPreferencesPatch,
    NotificationPreferencesReplace,
)
from taskline.security.unsubscribe import UnsubscribeClaim, verify_unsubscribe_token
from taskline.services import deadline_gate_service
from taskline.settings import get_settings

# Preferences that decide when each stage of a task is due (stored on the tasks).
SCHEDULE_FIELDS = ("due_soon_enabled", "overdue_enabled", "due_soon_minutes")


def _defaults() -> dict[str, Any]:
    return {
        "email_enabled": True,
        "due_soon_enabled": True,
        "overdue_enabled": True,
        "due_soon_minutes": get_settings().deadline_due_soon_minutes,
    }


def _values(row: NotificationPreference | None) -> dict[str, Any]:
    if row is None:
        return _defaults()
    return {name: getattr(row, name) for name in _defaults()}


def _out(session: Session, user_id: int, row: NotificationPreference | None) -> Any:
    return NotificationPreferencesOut(
        **_values(row),
        email_deliverable=notification_preference_repository.deliverable(session, user_id),
        updated_at=row.updated_at if row is not None else None,
    )


@retry_if_disconnected
def get(user_id: int) -> NotificationPreferencesOut:
    with read_only() as session:
        result: NotificationPreferencesOut = _out(
            session, user_id, notification_preference_repository.get(session, user_id)
        )
        return result


def update(
    user_id: int, request: NotificationPreferencesReplace | NotificationPreferencesPatch
) -> NotificationPreferencesOut:
    """Save the preferences; when they change when a stage is due, recompute that for every
    task of the account in the same transaction (the deadline check reads it from the tasks).

    `email_enabled: true` does not lift a recipient's unsubscribe, a bounce or a complaint:
    those stick to the address until its owner verifies it again (email_verification_service).
    Already sent reminders are not re-armed by a new lead time."""
    changes = (
        request.changes()
        if isinstance(request, NotificationPreferencesPatch)
        else request.model_dump()
    )
    with transaction() as session:
        current = notification_preference_repository.get(session, user_id, for_update=True)
        before = _values(current)
        after = {**before, **changes}
        row = notification_preference_repository.save(session, user_id, after, clock.utcnow())
        if any(before[name] != after[name] for name in SCHEDULE_FIELDS):
            task_repository.reschedule_owner(
                session, user_id, get_settings().deadline_due_soon_minutes
            )
            deadline_gate_service.reminders_scheduled(
                task_repository.earliest_due_for_owner(session, user_id)
            )
        result: NotificationPreferencesOut = _out(session, user_id, row)
        return result


@retry_if_disconnected
def check_unsubscribe_link(token: str) -> None:
    """For the confirmation page: the link would work (nothing changes)."""
    claim = verify_unsubscribe_token(token)
    with read_only() as session:
        _check_link(session, claim, for_update=False)


def _check_link(
    session: Session, claim: UnsubscribeClaim, *, for_update: bool
) -> NotificationPreference | None:
    """The account's preferences, if the link may still switch its email off: not issued
    before the address was last verified (superseded), nor before email was last switched on
    (so an old email cannot undo a later opt-in)."""
    user = session.get(User, claim.user_id)
    if user is None:
        raise UnsubscribeLinkInvalid  # the account was deleted
    current = notification_preference_repository.get(session, claim.user_id, for_update=for_update)
    switched_on = current.email_enabled_at if current is not None else None
    for since in (switched_on, user.email_verified_at):
        if since is not None and claim.issued_at < int(since.timestamp()):
            raise UnsubscribeLinkExpired
    return current


def unsubscribe(token: str) -> None:
    """Switch email off for the link's account, and suppress its address: the recipient's
    choice sticks to the address, so the account holder switching email on again does not
    undo it (only a fresh verification of the address by its owner does). Repeating it is
    harmless; a superseded link does nothing (UnsubscribeLinkExpired)."""
    claim = verify_unsubscribe_token(token)
    now = clock.utcnow()
    with transaction() as session:
        current = _check_link(session, claim, for_update=True)
        switched_off = {**_values(current), "email_enabled": False}
        notification_preference_repository.save(session, claim.user_id, switched_off, now)
        notification_preference_repository.suppress_user_address(
            session, claim.user_id, SuppressionReason.UNSUBSCRIBE.value, now
        )
