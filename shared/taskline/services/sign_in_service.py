"""Signing in and out: the token endpoint's grants, revocation, and logout everywhere.

A sign-in starts at a password grant and is a family of refresh tokens, each exchanged once
for the next (RFC 6749 section 6, rotated as RFC 9700 section 4.14.2 recommends). A token
presented again after it was exchanged means two parties hold it, so the sign-in ends for
both. Access tokens carry the sign-in's id (`sid`) and stay stateless: ending a sign-in stops
its refresh tokens at once, while its access tokens run out within ACCESS_TOKEN_TTL_SECONDS
(see docs/security.md).
"""

from __future__ import annotations

import uuid
from datetime import datetime, timedelta
from typing import TYPE_CHECKING

from aws_lambda_powertools import Logger

from taskline import clock
from taskline.db import UnitOfWorkCheck, transaction
from taskline.errors import (
    AccountGone,
    AuthenticationRequired,
    InvalidCredentials,
    InvalidRefreshToken,
    LoginThrottled,
    SignInEnded,
)
from taskline.repositories import calendar_feed_repository, sign_in_repository, user_repository
from taskline.schemas import LoginName, PasswordGrant, RefreshGrant, TokenOut, TokenRevocation
from taskline.security.passwords import verify_password
from taskline.security.tokens import (
    VerifiedToken,
    could_be_ours,
    issue_access_token,
    looks_like_jwt,
    new_refresh_token,
    refresh_token_hash,
    verify_access_token,
)
from taskline.services import throttling_service
from taskline.settings import get_settings

if TYPE_CHECKING:
    from sqlalchemy.orm import Session

logger = Logger(child=True)


def issue_token(grant: PasswordGrant | RefreshGrant, source_ip: str) -> TokenOut:
    """The token grants: a new sign-in from email and password, or the next pair of a sign-in."""
    if isinstance(grant, RefreshGrant):
        return _refresh(grant)
    return _sign_in(grant, throttling_service.source_key(source_ip))


def _sign_in(grant: PasswordGrant, source_ip: str) -> TokenOut:
    """Every failure looks and costs the same: one bcrypt check, one InvalidCredentials; and
    a throttled attempt is refused before any check, for known and unknown emails alike."""
    now = clock.utcnow()
    with transaction() as session:
        wait = throttling_service.register_attempt(session, grant.username, source_ip, now)
        user = user_repository.get_by_email(session, grant.username) if wait is None else None
    if wait is not None:
        raise LoginThrottled(wait)
    if not verify_password(grant.password, user.password_hash if user else None) or user is None:
        raise InvalidCredentials
    return _start_sign_in(user.id, now, forgive=(grant.username, source_ip))


def sign_in_trusted(username: str) -> TokenOut:
    """A sign-in for the account `username` signs in to, found exactly as a password grant
    finds it (any spelling that would sign in), without the password: for local tools that
    act as a known account (`make invoke --user`). No route calls it. InvalidCredentials when
    no account has that email."""
    from pydantic import TypeAdapter

    login = TypeAdapter(LoginName).validate_python(username)  # as PasswordGrant.username
    with transaction() as session:
        user = user_repository.get_by_email(session, login)
    if user is None:
        raise InvalidCredentials
    return _start_sign_in(user.id, clock.utcnow())


def _start_sign_in(user_id: int, now: datetime, forgive: tuple[str, str] | None = None) -> TokenOut:
    """A new sign-in (and its first refresh token) for the account; `forgive`: the login name
    and source whose failed attempts the sign-in clears."""
    settings = get_settings()
    sign_in_id, refresh_token = uuid.uuid4(), new_refresh_token()
    try:
        with transaction() as session:
            if forgive is not None:
                throttling_service.forgive(session, *forgive)
            sign_in_repository.prune_for_user(session, user_id, now)
            sign_in_repository.start(
                session,
                user_id,
                sign_in_id,
                refresh_token_hash(refresh_token),
                now,
                token_expires_at=now + timedelta(seconds=settings.refresh_token_ttl_seconds),
                session_expires_at=now + timedelta(seconds=settings.session_max_age_seconds),
            )
    except AccountGone as error:  # the account was deleted meanwhile
        raise InvalidCredentials from error
    return _pair(user_id, sign_in_id, refresh_token)


def _refresh(grant: RefreshGrant) -> TokenOut:
    if not could_be_ours(grant.refresh_token):
        raise InvalidRefreshToken
    now = clock.utcnow()
    presented = refresh_token_hash(grant.refresh_token)
    successor = new_refresh_token()
    expires_at = now + timedelta(seconds=get_settings().refresh_token_ttl_seconds)
    with transaction() as session:
        rotated = sign_in_repository.rotate(
            session, presented, refresh_token_hash(successor), now, expires_at
        )
        # Not exchangeable. If it was exchanged before, someone replays it: end the session.
        reused = (
            None
            if rotated
            else sign_in_repository.end_for_token(session, presented, used_only=True)
        )
    if reused is not None:
        logger.warning(
            "Refresh token reused; session ended",
            extra={"user_id": reused.user_id, "session_id": str(reused.sign_in_id)},
        )
    if rotated is None:
        raise InvalidRefreshToken
    return _pair(rotated.user_id, rotated.sign_in_id, successor)


def _pair(user_id: int, sign_in_id: uuid.UUID, refresh_token: str) -> TokenOut:
    access = issue_access_token(user_id, sign_in_id)
    return TokenOut(
        access_token=access.token, expires_in=access.expires_in, refresh_token=refresh_token
    )


def revoke(request: TokenRevocation) -> None:
    """Revocation (RFC 7009): end the sign-in of a refresh or access token.

    Unknown, expired or malformed tokens change nothing and are not reported (section 2.2),
    whatever their length: text longer than any token we issue is unknown without more work.
    """
    if not could_be_ours(request.token):
        return
    if looks_like_jwt(request.token):
        try:
            token = verify_access_token(request.token)
        except AuthenticationRequired:
            return
        with transaction() as session:
            sign_in_repository.end(session, token.sign_in_id, token.user_id)
        return
    with transaction() as session:
        sign_in_repository.end_for_token(
            session, refresh_token_hash(request.token), used_only=False
        )


def logout_all(token: VerifiedToken) -> None:
    """End every sign-in of the caller's account, the caller's own included, and revoke its
    calendar feed: a sign-out everywhere leaves no way in that a stolen session could have made."""
    with transaction() as session:
        ended = sign_in_repository.end_all(session, token.user_id, token.sign_in_id, clock.utcnow())
        if ended is None:
            raise SignInEnded
        calendar_feed_repository.remove(session, token.user_id)


def live_sign_in_check(token: VerifiedToken) -> UnitOfWorkCheck:
    """What each unit of work of an account-level request checks first: the token's sign-in is
    still live (not logged out, ended by a password change or logout-all, expired, or gone with
    its account), else SignInEnded (401).

    In a transaction the account's row is locked first, so account-level changes of one
    account take turns (a sign-out that revokes the calendar feed cannot interleave with a
    request issuing one), then the sign-in is held until the commit."""

    def check(session: Session, writes: bool) -> None:
        if writes and not user_repository.lock_for_change(session, token.user_id):
            raise SignInEnded
        live = sign_in_repository.hold_live(
            session, token.user_id, token.sign_in_id, clock.utcnow(), lock=writes
        )
        if not live:
            raise SignInEnded

    return check
