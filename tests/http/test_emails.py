"""One normalisation of email addresses on every path (issue 13): sign-up, login (form and
JSON), login throttling and `make invoke --user`. What a user signed up with signs them in,
in whichever Unicode form or domain encoding they type it."""

from __future__ import annotations

from urllib.parse import urlencode

import pytest
from sqlalchemy import Engine, text

from taskline.emails import login_email, normalize_email
from tests.support.api import ApiClient, assert_problem
from tests.support.clock import FrozenClock

PASSWORD = "correct horse battery"
DECOMPOSED = "jose\u0301@example.com"  # e + combining acute accent
COMPOSED = "jos\u00e9@example.com"
PUNYCODE = "ann@xn--mnchen-3ya.de"
UNICODE_DOMAIN = "ann@m\u00fcnchen.de"
DECOMPOSED_DOMAIN = "ann@mu\u0308nchen.de"
UPPER_DOMAIN = "ann@M\u00dcNCHEN.DE"
# Each group holds spellings of one address.
SPELLINGS = [
    [DECOMPOSED, COMPOSED, "jose\u0301@EXAMPLE.com", "JOS\u00c9@example.com"],
    [PUNYCODE, UNICODE_DOMAIN, DECOMPOSED_DOMAIN, UPPER_DOMAIN, "ann@XN--MNCHEN-3YA.DE"],
]
PAIRS = [(a, b) for a in SPELLINGS[1] for b in SPELLINGS[1]]
# Non-ASCII local parts can no longer sign up (SES cannot mail them: no SMTPUTF8); accounts
# made before that rule still sign in by any spelling.
LEGACY_PAIRS = [(COMPOSED, typed) for typed in SPELLINGS[0]]


def legacy_account(admin_engine: Engine, email: str = COMPOSED) -> None:
    """An account stored before the stricter address rules (written outside the API)."""
    from taskline.security.passwords import hash_password

    with admin_engine.begin() as connection:
        connection.execute(
            text("INSERT INTO users (email, password_hash) VALUES (:email, :hash)"),
            {"email": email, "hash": hash_password(PASSWORD)},
        )


def _form_login(client: ApiClient, email: str, password: str = PASSWORD) -> int:
    return client.post(
        "/token",
        body=urlencode({"username": email, "password": password}),
        headers={"Content-Type": "application/x-www-form-urlencoded"},
    ).status


def _json_login(client: ApiClient, email: str, password: str = PASSWORD) -> int:
    return client.post("/token", json_body={"email": email, "password": password}).status


def test_one_spelling_per_address() -> None:
    assert login_email(DECOMPOSED) == COMPOSED  # a legacy account's spelling
    for spelling in SPELLINGS[1]:
        assert normalize_email(spelling) == UNICODE_DOMAIN
    assert login_email("not an address") == "not an address"
    assert login_email("jose\u0301") == "jos\u00e9"  # still one key for throttling
    with pytest.raises(ValueError, match="not a valid email"):
        normalize_email("ann@example.test")


@pytest.mark.parametrize(("signed_up_as", "logs_in_as"), PAIRS, ids=ascii)
def test_the_address_used_at_sign_up_signs_in(
    client: ApiClient, signed_up_as: str, logs_in_as: str
) -> None:
    client.sign_up(signed_up_as, PASSWORD)
    assert _form_login(client, logs_in_as) == 200
    assert _json_login(client, logs_in_as) == 200
    assert_problem(
        client.post("/users", json_body={"email": logs_in_as, "password": PASSWORD}), 409
    )


@pytest.mark.parametrize(("stored", "logs_in_as"), LEGACY_PAIRS, ids=ascii)
def test_a_legacy_non_ascii_local_part_still_signs_in(
    client: ApiClient, admin_engine: Engine, stored: str, logs_in_as: str
) -> None:
    legacy_account(admin_engine, stored)
    assert _form_login(client, logs_in_as) == 200
    assert _json_login(client, logs_in_as) == 200


def test_the_stored_email_is_the_normalised_one(client: ApiClient) -> None:
    created = client.post("/users", json_body={"email": PUNYCODE, "password": PASSWORD})
    assert created.status == 201, created.body
    assert created.json()["email"] == UNICODE_DOMAIN


# Issue 19 item 2: addresses that could make Taskline mail someone else, or that SES cannot
# send to, are refused at sign-up (and by the one normaliser invitations use too).
UNSAFE_AT_SIGN_UP = {
    "encoded word": "=?utf-8?q?victim=40evil=2Eexample=2C_spam?=@example.com",
    "encoded CR/LF": "=?utf-8?q?a=0D=0ABcc=3A_victim=40evil=2Eexample?=@example.com",
    "encoded word, base64": "=?utf-8?b?dmljdGltQGV2aWwuZXhhbXBsZQ==?=@example.com",
    "raw CR/LF": "a\r\nBcc: victim@evil.example@example.com",
    "control character": "a\x00b@example.com",
    "quoted string": '"victim@evil.example"@example.com',
    "quoted string, spaces": '"a b"@example.com',
    "display name": "Victim <victim@evil.example>",
    "two addresses": "a@example.com, victim@evil.example",
    "non-ASCII local part": COMPOSED,
    "domain literal": "a@[192.0.2.1]",
}


@pytest.mark.parametrize("address", UNSAFE_AT_SIGN_UP.values(), ids=UNSAFE_AT_SIGN_UP.keys())
def test_unsafe_addresses_are_refused_at_sign_up(
    client: ApiClient, admin_engine: Engine, address: str
) -> None:
    response = client.post("/users", json_body={"email": address, "password": PASSWORD})
    assert_problem(response, 422)
    with admin_engine.connect() as connection:
        assert connection.execute(text("SELECT count(*) FROM users")).scalar_one() == 0
    with pytest.raises(ValueError, match="not a valid email"):
        normalize_email(address)


def test_an_internationalised_domain_is_stored_in_unicode_and_mailed_in_punycode(
    client: ApiClient,
) -> None:
    from taskline.emails import mail_address

    created = client.post("/users", json_body={"email": PUNYCODE, "password": PASSWORD})
    assert created.json()["email"] == UNICODE_DOMAIN
    assert mail_address(UNICODE_DOMAIN).addr_spec == PUNYCODE


def test_spellings_share_one_throttling_counter(
    client: ApiClient,
    strict: None,
    frozen_clock: FrozenClock,
) -> None:
    client.sign_up(PUNYCODE, PASSWORD)
    for index, spelling in enumerate([UNICODE_DOMAIN, DECOMPOSED_DOMAIN, UPPER_DOMAIN]):
        response = client.post(
            "/token",
            json_body={"email": spelling, "password": "wrong guess"},
            source_ip=f"203.0.113.{index}",
        )
        assert response.status == 400
    blocked = client.post(
        "/token", json_body={"email": PUNYCODE, "password": PASSWORD}, source_ip="203.0.113.50"
    )
    assert blocked.status == 429


@pytest.mark.parametrize("typed", [COMPOSED, DECOMPOSED, "JOSE\u0301@Example.COM"], ids=ascii)
def test_make_invoke_user_finds_the_account_by_any_spelling(
    client: ApiClient, admin_engine: Engine, typed: str
) -> None:
    from localdev.invoke import _fill_token

    legacy_account(admin_engine)
    event = {"headers": {"authorization": "Bearer {{token}}"}}
    _fill_token(event, typed)
    token = event["headers"]["authorization"].removeprefix("Bearer ")
    me = client.get("/users/me", token=token)
    assert me.status == 200, me.body
    assert me.json()["email"] == COMPOSED
