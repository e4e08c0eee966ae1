"""Signing in and out: the token endpoint's grants, revocation, and logout everywhere.

A session starts at a password grant and is a family of refresh tokens, each exchanged once
for the next (RFC 6749 section 6, rotated as RFC 9700 section 4.14.2 recommends). A token
presented again after it was exchanged means two parties hold it, so the session ends for
both. Access tokens carry the session's id (`sid`) and stay stateless: ending a session stops
its refresh tokens at once, while its access tokens run out within ACCESS_TOKEN_TTL_SECONDS
(see docs/security.md).
"""

from __future__ import annotations

import uuid
from datetime import datetime, timedelta

from aws_lambda_powertools import Logger
from sqlalchemy.exc import IntegrityError

from taskline import clock
from taskline.db import FOREIGN_KEY_VIOLATION, sqlstate, transaction
from taskline.errors import (
    AuthenticationRequired,
    InvalidCredentials,
    InvalidRefreshToken,
    LoginThrottled,
    SessionEnded,
)
from taskline.repositories import sessions, users
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
from taskline.services import throttling
from taskline.settings import get_settings

logger = Logger(child=True)


def issue_token(grant: PasswordGrant | RefreshGrant, source_ip: str) -> TokenOut:
    """POST /token: a new session from email and password, or the next pair of a session."""
    if isinstance(grant, RefreshGrant):
        return _refresh(grant)
    return _sign_in(grant, throttling.source_key(source_ip))


def _sign_in(grant: PasswordGrant, source_ip: str) -> TokenOut:
    """Every failure looks and costs the same: one bcrypt check, one InvalidCredentials; and
    a throttled attempt is refused before any check, for known and unknown emails alike."""
    now = clock.utcnow()
    with transaction() as session:
        wait = throttling.register_attempt(session, grant.username, source_ip, now)
        user = users.get_by_email(session, grant.username) if wait is None else None
    if wait is not None:
        raise LoginThrottled(wait)
    if not verify_password(grant.password, user.password_hash if user else None) or user is None:
        raise InvalidCredentials
    return _start_session(user.id, now, forgive=(grant.username, source_ip))


def sign_in_trusted(username: str) -> TokenOut:
    """A session for the account `username` signs in to, found exactly as a password grant
    finds it (any spelling that would sign in), without the password: for local tools that
    act as a known account (`make invoke --user`). No route calls it. InvalidCredentials when
    no account has that email."""
    from pydantic import TypeAdapter

    login = TypeAdapter(LoginName).validate_python(username)  # as PasswordGrant.username
    with transaction() as session:
        user = users.get_by_email(session, login)
    if user is None:
        raise InvalidCredentials
    return _start_session(user.id, clock.utcnow())


def _start_session(user_id: int, now: datetime, forgive: tuple[str, str] | None = None) -> TokenOut:
    """A new session (and its first refresh token) for the account; `forgive`: the login name
    and source whose failed attempts the sign-in clears."""
    settings = get_settings()
    session_id, refresh_token = uuid.uuid4(), new_refresh_token()
    try:
        with transaction() as session:
            if forgive is not None:
                throttling.forgive(session, *forgive)
            sessions.prune_for_user(session, user_id, now)
            sessions.start(
                session,
                user_id,
                session_id,
                refresh_token_hash(refresh_token),
                now,
                token_expires_at=now + timedelta(seconds=settings.refresh_token_ttl_seconds),
                session_expires_at=now + timedelta(seconds=settings.session_max_age_seconds),
            )
    except IntegrityError as error:
        if sqlstate(error) == FOREIGN_KEY_VIOLATION:  # the account was deleted meanwhile
            raise InvalidCredentials from error
        raise
    return _pair(user_id, session_id, refresh_token)


def _refresh(grant: RefreshGrant) -> TokenOut:
    if not could_be_ours(grant.refresh_token):
        raise InvalidRefreshToken
    now = clock.utcnow()
    presented = refresh_token_hash(grant.refresh_token)
    successor = new_refresh_token()
    expires_at = now + timedelta(seconds=get_settings().refresh_token_ttl_seconds)
    with transaction() as session:
        rotated = sessions.rotate(
            session, presented, refresh_token_hash(successor), now, expires_at
        )
        # Not exchangeable. If it was exchanged before, someone replays it: end the session.
        reused = None if rotated else sessions.end_for_token(session, presented, used_only=True)
    if reused is not None:
        logger.warning(
            "Refresh token reused; session ended",
            extra={"user_id": reused.user_id, "session_id": str(reused.session_id)},
        )
    if rotated is None:
        raise InvalidRefreshToken
    return _pair(rotated.user_id, rotated.session_id, successor)


def _pair(user_id: int, session_id: uuid.UUID, refresh_token: str) -> TokenOut:
    access = issue_access_token(user_id, session_id)
    return TokenOut(
        access_token=access.token, expires_in=access.expires_in, refresh_token=refresh_token
    )


def revoke(request: TokenRevocation) -> None:
    """POST /token/revoke (RFC 7009): end the session of a refresh or access token.

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
            sessions.end(session, token.session_id, token.user_id)
        return
    with transaction() as session:
        sessions.end_for_token(session, refresh_token_hash(request.token), used_only=False)


def logout_all(token: VerifiedToken) -> None:
    """End every session of the caller's account, the caller's own included."""
    with transaction() as session:
        ended = sessions.end_all(session, token.user_id, token.session_id, clock.utcnow())
    if ended is None:
        raise SessionEnded
