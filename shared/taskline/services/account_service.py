"""Sign-up, profile, password change and account deletion."""

from __future__ import annotations

from taskline import clock
from taskline.db import read_only, retry_if_disconnected, transaction
from taskline.errors import EmailAlreadyRegistered, SignInEnded, TooManyAttempts, WrongPassword
from taskline.models import User
from taskline.repositories import (
    calendar_feed_repository,
    list_handover_repository,
    sign_in_repository,
    task_repository,
    user_repository,
)
from taskline.schemas import AccountDeletion, PasswordChange, ProfileOut, UserCreate, UserOut
from taskline.security.passwords import hash_password, verify_password
from taskline.security.tokens import VerifiedToken
from taskline.services import (
    deadline_gate_service,
    email_verification_service,
    throttling_service,
)
from taskline.settings import get_settings


def register(request: UserCreate, base_url: str) -> UserOut:
    """Create the account, then email it a verification link (or log it without a sender)."""
    password_hash = hash_password(request.password)  # hashed before the transaction opens
    with transaction() as session:
        user = user_repository.add_if_email_free(session, request.email, password_hash)
        if user is None:
            raise EmailAlreadyRegistered
        email_verification_service.take_quota(session, user.id, clock.utcnow())
        created = UserOut.model_validate(user)
    email_verification_service.send_after_sign_up(
        email_verification_service.Recipient(created.id, created.email), base_url
    )
    return created


@retry_if_disconnected
def profile(token: VerifiedToken) -> ProfileOut:
    """The caller's account, if the token's sign-in is live: one SELECT, outside a transaction."""
    with read_only() as session:
        user = sign_in_repository.user_signed_in(
            session, token.user_id, token.sign_in_id, clock.utcnow()
        )
        if user is None:
            raise SignInEnded
        return ProfileOut.of(user)


def change_password(token: VerifiedToken, request: PasswordChange, source_ip: str) -> None:
    """Set a new password, given the current one; every other sign-in of the account ends,
    and so does the calendar feed (whoever held a stolen session may have issued it).

    The caller's sign-in goes on. Access tokens of the ended sign-ins stop working on the
    account routes at once and elsewhere when they expire (docs/security.md).
    """
    source_ip = throttling_service.source_key(source_ip)
    user = _confirm_password(token, request.current_password, source_ip)
    new_hash = hash_password(request.new_password)
    with transaction() as session:
        # Compare-and-set: a concurrent change makes the password just checked a stale one.
        if not user_repository.set_password_if_unchanged(
            session, user.id, user.password_hash, new_hash
        ):
            raise WrongPassword
        throttling_service.forgive(session, user.email, source_ip)
        sign_in_repository.end_others(session, user.id, keep=token.sign_in_id)
        calendar_feed_repository.remove(session, user.id)


def delete_account(token: VerifiedToken, request: AccountDeletion, source_ip: str) -> None:
    """Delete the account, given its password: its tasks, sign-ins, refresh tokens, idempotency
    keys, preferences and calendar feed go in the same statement (foreign keys cascade), so all
    of it happens or none of it.

    Each list it owns goes first to its longest-standing editor (else viewer), or is deleted when
    no one else is in it; its assignments are cleared, and the tasks it was reminded of (or the
    lists it owned) remind their new recipients, all in the same transaction.
    """
    source_ip = throttling_service.source_key(source_ip)
    user = _confirm_password(token, request.password, source_ip)
    with transaction() as session:
        affected = list_handover_repository.memberships(session, user.id)
        list_handover_repository.hand_over_owned(session, user.id)
        if not user_repository.delete_if_unchanged(session, user.id, user.password_hash):
            raise WrongPassword
        deadline_gate_service.reminders_scheduled(
            task_repository.refresh_recipients(
                session, affected, get_settings().deadline_due_soon_minutes
            ).earliest_due
        )
        throttling_service.forgive(session, user.email, source_ip)


def _confirm_password(token: VerifiedToken, password: str, source_ip: str) -> User:
    """The caller's account if its sign-in is live and `password` is right. Checks count
    towards login throttling, so a stolen access token cannot be used to guess the password."""
    now = clock.utcnow()
    with transaction() as session:
        user = sign_in_repository.user_signed_in(session, token.user_id, token.sign_in_id, now)
        wait = None
        if user is not None:
            wait = throttling_service.register_attempt(session, user.email, source_ip, now)
    if user is None:
        raise SignInEnded
    if wait is not None:
        raise TooManyAttempts(wait)
    if not verify_password(password, user.password_hash):
        raise WrongPassword
    return user
