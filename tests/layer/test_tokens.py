"""Access tokens: issued with a kid, verified with the algorithm pinned and every claim required."""

from __future__ import annotations

import json
import time
import uuid
from typing import Any

import jwt
import pytest

from taskline.errors import AuthenticationRequired
from taskline.security.tokens import (
    ALGORITHM,
    MAX_ID,
    issue_access_token,
    key_id,
    signing_keys,
    verify_access_token,
)
from tests.support.api import forge_token, valid_claims
from tests.support.environment import TEST_JWT_SECRET

OLD_SECRET = "the-previous-signing-key-" + "o" * 32
NEW_SECRET = "the-current-signing-key-" + "n" * 32
SESSION = uuid.UUID("6f9619ff-8b86-d011-b42d-00c04fc964ff")


def _unverified(token: str) -> tuple[dict[str, Any], dict[str, Any]]:
    return jwt.get_unverified_header(token), jwt.decode(token, options={"verify_signature": False})


def test_issued_token_verifies_as_its_user_and_session() -> None:
    issued = issue_access_token(42, SESSION)
    verified = verify_access_token(issued.token)
    assert verified.user_id == 42
    assert verified.sign_in_id == SESSION
    assert issued.expires_in == 900  # ACCESS_TOKEN_TTL_SECONDS' default: 15 minutes


def test_issued_token_carries_every_claim_and_a_kid() -> None:
    before = int(time.time())
    header, claims = _unverified(issue_access_token(7, SESSION).token)
    assert header["alg"] == ALGORITHM == "HS256"
    assert header["kid"] == key_id(TEST_JWT_SECRET.encode())
    assert set(claims) == {"sub", "iat", "exp", "iss", "aud", "jti", "sid"}
    assert claims["sub"] == "7"
    assert claims["sid"] == str(SESSION)
    assert claims["iss"] == "taskline"
    assert claims["aud"] == "taskline-api"
    assert before <= claims["iat"] <= int(time.time())
    assert claims["exp"] - claims["iat"] == 900


def test_every_token_has_its_own_jti() -> None:
    tokens = [issue_access_token(1, SESSION).token for _ in range(5)]
    jtis = {_unverified(token)[1]["jti"] for token in tokens}
    assert len(jtis) == 5
    assert verify_access_token(tokens[0]).token_id in jtis


def test_ttl_comes_from_the_settings(
    monkeypatch: pytest.MonkeyPatch, reload_settings: None
) -> None:
    monkeypatch.setenv("ACCESS_TOKEN_TTL_SECONDS", "120")
    issued = issue_access_token(1, SESSION)
    _, claims = _unverified(issued.token)
    assert issued.expires_in == 120
    assert claims["exp"] - claims["iat"] == 120


def test_key_id_names_a_key_without_revealing_it() -> None:
    kid = key_id(NEW_SECRET.encode())
    assert kid == key_id(NEW_SECRET.encode())
    assert kid != key_id(OLD_SECRET.encode())
    assert NEW_SECRET not in kid
    assert len(kid) == 16


def test_previous_keys_still_verify_after_rotation(
    monkeypatch: pytest.MonkeyPatch, reload_settings: None
) -> None:
    monkeypatch.setenv("JWT_SECRET", OLD_SECRET)
    old_token = issue_access_token(5, SESSION).token
    from taskline.settings import get_settings

    get_settings.cache_clear()
    monkeypatch.setenv("JWT_SECRET", NEW_SECRET)
    monkeypatch.setenv("JWT_PREVIOUS_SECRETS", json.dumps([OLD_SECRET]))
    assert verify_access_token(old_token).user_id == 5
    new_token = issue_access_token(6, SESSION).token
    assert _unverified(new_token)[0]["kid"] == key_id(NEW_SECRET.encode())
    assert [key.kid for key in signing_keys()] == [
        key_id(NEW_SECRET.encode()),
        key_id(OLD_SECRET.encode()),
    ]


def test_retired_keys_no_longer_verify(
    monkeypatch: pytest.MonkeyPatch, reload_settings: None
) -> None:
    monkeypatch.setenv("JWT_SECRET", OLD_SECRET)
    old_token = issue_access_token(5, SESSION).token
    from taskline.settings import get_settings

    get_settings.cache_clear()
    monkeypatch.setenv("JWT_SECRET", NEW_SECRET)
    with pytest.raises(AuthenticationRequired, match="unknown key"):
        verify_access_token(old_token)


def test_a_known_kid_with_another_keys_signature_is_refused() -> None:
    token = forge_token(valid_claims(1), secret=OLD_SECRET, kid=key_id(TEST_JWT_SECRET.encode()))
    with pytest.raises(AuthenticationRequired):
        verify_access_token(token)


def test_expiry_within_the_leeway_is_tolerated() -> None:
    now = int(time.time())
    token = forge_token(valid_claims(1, iat=now - 600, exp=now - 5))
    assert verify_access_token(token).user_id == 1


def test_expiry_beyond_the_leeway_is_refused() -> None:
    now = int(time.time())
    token = forge_token(valid_claims(1, iat=now - 600, exp=now - 120))
    with pytest.raises(AuthenticationRequired, match="expired"):
        verify_access_token(token)


def test_token_issued_in_the_future_is_refused() -> None:
    now = int(time.time())
    token = forge_token(valid_claims(1, iat=now + 600, exp=now + 1200))
    with pytest.raises(AuthenticationRequired):
        verify_access_token(token)


@pytest.mark.parametrize("claim", ["sub", "iat", "exp", "iss", "aud", "jti", "sid"])
def test_each_claim_is_required(claim: str) -> None:
    claims = valid_claims(1)
    del claims[claim]
    with pytest.raises(AuthenticationRequired):
        verify_access_token(forge_token(claims))


@pytest.mark.parametrize(
    "overrides",
    [
        {"iss": "someone-else"},
        {"aud": "another-api"},
        {"sub": "abc"},
        {"sub": "-1"},
        {"sub": "1.5"},
        {"sub": " 1"},
        {"sub": "١٢"},  # Arabic-Indic digits: isdigit() but not an id
        {"sub": str(MAX_ID + 1)},
        {"sub": "9" * 3000},
        {"sub": 1},  # must be a string
        {"jti": 12345},
        {"sid": "not-a-uuid"},
        {"sid": ""},
        {"sid": 5},  # must be a string
        {"sid": None},
        {"exp": "tomorrow"},
        {"iat": "yesterday"},
    ],
    ids=repr,
)
def test_bad_claims_are_refused(overrides: dict[str, Any]) -> None:
    with pytest.raises(AuthenticationRequired):
        verify_access_token(forge_token(valid_claims(1, **overrides)))


def test_largest_id_is_accepted() -> None:
    assert verify_access_token(forge_token(valid_claims(MAX_ID))).user_id == MAX_ID


def test_alg_none_is_refused() -> None:
    token = forge_token(valid_claims(1), secret="", algorithm="none")
    with pytest.raises(AuthenticationRequired):
        verify_access_token(token)


def test_other_hmac_algorithm_is_refused() -> None:
    token = forge_token(valid_claims(1), algorithm="HS512")
    with pytest.raises(AuthenticationRequired):
        verify_access_token(token)


@pytest.mark.parametrize("kid", [None, "0123456789abcdef", ""])
def test_missing_or_unknown_kid_is_refused(kid: str | None) -> None:
    with pytest.raises(AuthenticationRequired):
        verify_access_token(forge_token(valid_claims(1), kid=kid))


@pytest.mark.parametrize(
    "token",
    ["", "abc", "a.b.c", "eyJhbGciOiJIUzI1NiJ9..", "\x00", "é.é.é", "e30.e30.e30"],
    ids=repr,
)
def test_garbage_is_refused(token: str) -> None:
    with pytest.raises(AuthenticationRequired):
        verify_access_token(token)


def test_a_token_is_verified_once_until_the_caches_are_reset(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """The signature and claims of a token are checked on its first use only (PyJWT's decode is
    a dependency here, counted, not the thing under test); reset_caches forgets them."""
    from taskline.security.tokens import reset_caches

    token = issue_access_token(5, SESSION).token
    decoded: list[str] = []
    real = jwt.decode

    def counting(*args: Any, **kwargs: Any) -> Any:
        decoded.append(args[0])
        return real(*args, **kwargs)

    monkeypatch.setattr(jwt, "decode", counting)
    assert verify_access_token(token).user_id == 5
    assert verify_access_token(token).user_id == 5
    assert decoded == [token]
    reset_caches()
    assert verify_access_token(token).user_id == 5
    assert decoded == [token, token]
