"""Sign-up, profile, password change and account deletion."""

from __future__ import annotations

from taskline import clock
from taskline.db import read_only, retry_if_disconnected, transaction
from taskline.errors import EmailAlreadyRegistered, SessionEnded, TooManyAttempts, WrongPassword
from taskline.models import User
from taskline.repositories import sessions, users
from taskline.schemas import AccountDeletion, PasswordChange, UserCreate, UserOut
from taskline.security.passwords import hash_password, verify_password
from taskline.security.tokens import VerifiedToken
from taskline.services import throttling


def register(request: UserCreate) -> UserOut:
    password_hash = hash_password(request.password)  # hashed before the transaction opens
    with transaction() as session:
        user = users.add_if_email_free(session, request.email, password_hash)
        if user is None:
            raise EmailAlreadyRegistered
        return UserOut.model_validate(user)


@retry_if_disconnected
def profile(token: VerifiedToken) -> UserOut:
    """The caller's account, if the token's session is live: one SELECT, outside a transaction."""
    with read_only() as session:
        user = sessions.user_in_live_session(
            session, token.user_id, token.session_id, clock.utcnow()
        )
        if user is None:
            raise SessionEnded
        return UserOut.model_validate(user)


def change_password(token: VerifiedToken, request: PasswordChange, source_ip: str) -> None:
    """Set a new password, given the current one; every other session of the account ends.

    The caller's session goes on. Access tokens of the ended sessions stop working on the
    account routes at once and elsewhere when they expire (docs/security.md).
    """
    source_ip = throttling.source_key(source_ip)
    user = _confirm_password(token, request.current_password, source_ip)
    new_hash = hash_password(request.new_password)
    with transaction() as session:
        # Compare-and-set: a concurrent change makes the password just checked a stale one.
        if not users.set_password_if_unchanged(session, user.id, user.password_hash, new_hash):
            raise WrongPassword
        throttling.forgive(session, user.email, source_ip)
        sessions.end_others(session, user.id, keep=token.session_id)


def delete_account(token: VerifiedToken, request: AccountDeletion, source_ip: str) -> None:
    """Delete the account, given its password: its tasks, sessions, refresh tokens and idempotency
    keys go in the same statement (foreign keys cascade), so all of it happens or none of it."""
    source_ip = throttling.source_key(source_ip)
    user = _confirm_password(token, request.password, source_ip)
    with transaction() as session:
        if not users.delete_if_unchanged(session, user.id, user.password_hash):
            raise WrongPassword
        throttling.forgive(session, user.email, source_ip)


def _confirm_password(token: VerifiedToken, password: str, source_ip: str) -> User:
    """The caller's account if its session is live and `password` is right. Checks count
    towards login throttling, so a stolen access token cannot be used to guess the password."""
    now = clock.utcnow()
    with transaction() as session:
        user = sessions.user_in_live_session(session, token.user_id, token.session_id, now)
        wait = None
        if user is not None:
            wait = throttling.register_attempt(session, user.email, source_ip, now)
    if user is None:
        raise SessionEnded
    if wait is not None:
        raise TooManyAttempts(wait)
    if not verify_password(password, user.password_hash):
        raise WrongPassword
    return user
