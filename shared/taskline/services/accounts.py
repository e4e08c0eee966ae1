"""Sign-up, login and profile."""

from __future__ import annotations

from taskline.db import read_only, retry_if_disconnected, transaction
from taskline.errors import AuthenticationRequired, EmailAlreadyRegistered, InvalidCredentials
from taskline.repositories import users
from taskline.schemas import PasswordGrant, TokenOut, UserCreate, UserOut
from taskline.security.passwords import hash_password, verify_password
from taskline.security.tokens import issue_access_token


def register(request: UserCreate) -> UserOut:
    password_hash = hash_password(request.password)  # hashed before the transaction opens
    with transaction() as session:
        user = users.add_if_email_free(session, request.email, password_hash)
        if user is None:
            raise EmailAlreadyRegistered
        return UserOut.model_validate(user)


@retry_if_disconnected
def issue_token(grant: PasswordGrant) -> TokenOut:
    """Exchange email and password for an access token.

    Every failure looks and costs the same: one bcrypt check, one InvalidCredentials.
    """
    with read_only() as session:
        user = users.get_by_email(session, grant.username)
    if not verify_password(grant.password, user.password_hash if user else None) or user is None:
        raise InvalidCredentials
    token = issue_access_token(user.id)
    return TokenOut(access_token=token.token, expires_in=token.expires_in)


@retry_if_disconnected
def profile(user_id: int) -> UserOut:
    with read_only() as session:
        user = users.get(session, user_id)
        if user is None:
            raise AuthenticationRequired("The account behind this token no longer exists.")
        return UserOut.model_validate(user)
