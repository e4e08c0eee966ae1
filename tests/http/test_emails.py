"""One normalisation of email addresses on every path (issue 13): sign-up, login (form and
JSON), login throttling and `make invoke --user`. What a user signed up with signs them in,
in whichever Unicode form or domain encoding they type it."""

from __future__ import annotations

from urllib.parse import urlencode

import pytest

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
PAIRS = [(a, b) for group in SPELLINGS for a in group for b in group]


def _form_login(client: ApiClient, email: str, password: str = PASSWORD) -> int:
    return client.post(
        "/token",
        body=urlencode({"username": email, "password": password}),
        headers={"Content-Type": "application/x-www-form-urlencoded"},
    ).status


def _json_login(client: ApiClient, email: str, password: str = PASSWORD) -> int:
    return client.post("/token", json_body={"email": email, "password": password}).status


def test_one_spelling_per_address() -> None:
    assert normalize_email(DECOMPOSED) == COMPOSED
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


def test_the_stored_email_is_the_normalised_one(client: ApiClient) -> None:
    created = client.post("/users", json_body={"email": PUNYCODE, "password": PASSWORD})
    assert created.status == 201, created.body
    assert created.json()["email"] == UNICODE_DOMAIN
    created = client.post("/users", json_body={"email": DECOMPOSED, "password": PASSWORD})
    assert created.json()["email"] == COMPOSED


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
def test_make_invoke_user_finds_the_account_by_any_spelling(client: ApiClient, typed: str) -> None:
    from localdev.invoke import _fill_token

    client.sign_up(DECOMPOSED, PASSWORD)
    event = {"headers": {"authorization": "Bearer {{token}}"}}
    _fill_token(event, typed)
    token = event["headers"]["authorization"].removeprefix("Bearer ")
    me = client.get("/users/me", token=token)
    assert me.status == 200, me.body
    assert me.json()["email"] == COMPOSED
