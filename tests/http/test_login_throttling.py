"""Login throttling: per account (any case of the email) and per source IP, answered with 429
and Retry-After, the same for known and unknown emails, and over once the wait has passed."""

from __future__ import annotations

import threading
from typing import Any

import pytest
from sqlalchemy import Engine, text

from taskline.services import sign_in_service
from tests.support.api import ApiClient
from tests.support.clock import FrozenClock

PASSWORD = "correct horse battery"


def _login(client: ApiClient, email: str, password: str, ip: str = "198.51.100.7") -> Any:
    return client.post("/token", json_body={"email": email, "password": password}, source_ip=ip)


def test_changing_the_emails_case_does_not_bypass_the_account_limit(
    client: ApiClient, strict: None, frozen_clock: FrozenClock
) -> None:
    client.sign_up("Ann.Lee@example.com", PASSWORD)
    spellings = ["ann.lee@example.com", "ANN.LEE@EXAMPLE.COM", "Ann.Lee@Example.com"]
    for index, spelling in enumerate(spellings):  # each from its own address
        assert _login(client, spelling, "wrong guess", ip=f"203.0.113.{index}").status == 400
    blocked = _login(client, "aNN.lEE@example.COM", PASSWORD, ip="203.0.113.99")
    assert blocked.status == 429
    assert blocked.header("Retry-After") == "300"
    assert blocked.header("Cache-Control") == "no-store"
    assert blocked.header("Content-Type") == "application/json"
    assert blocked.json() == {
        "error": "slow_down",
        "error_description": "Too many failed password attempts; try again in 300 seconds.",
    }
    # Form logins share the counter.
    form = client.post(
        "/token",
        body=f"username=ANN.LEE%40example.com&password={PASSWORD.replace(' ', '+')}",
        headers={"Content-Type": "application/x-www-form-urlencoded"},
        source_ip="203.0.113.100",
    )
    assert form.status == 429


def test_retry_after_counts_down_and_the_right_password_works_after_the_wait(
    client: ApiClient, strict: None, frozen_clock: FrozenClock
) -> None:
    email = client.sign_up()
    for _ in range(3):
        assert _login(client, email, "wrong guess").status == 400
    assert _login(client, email, PASSWORD).header("Retry-After") == "300"
    frozen_clock.advance(120.5)
    still = _login(client, email, PASSWORD)
    assert still.status == 429
    assert still.header("Retry-After") == "180"  # rounded up, never 0
    frozen_clock.advance(179.5)
    response = _login(client, email, PASSWORD)
    assert response.status == 200
    assert client.get("/users/me", token=response.json()["access_token"]).status == 200


GHOSTS = {
    "unknown email": ["nobody-here@example.com"] * 5,
    # No account can hold a NUL (PostgreSQL text cannot), yet it is counted like any email,
    # whatever its case.
    "NUL in the email, any case": [
        "nobody\x00here@example.com",
        "NOBODY\x00HERE@EXAMPLE.COM",
        "Nobody\x00Here@example.com",
        "nobody\x00here@EXAMPLE.com",
        "nObOdY\x00hErE@example.com",
    ],
}


@pytest.mark.parametrize("ghost", GHOSTS)
def test_unknown_emails_are_throttled_exactly_like_real_ones(
    client: ApiClient, strict: None, frozen_clock: FrozenClock, ghost: str
) -> None:
    real = client.sign_up()
    answers: dict[str, list[tuple[int, str | None, bytes]]] = {"real": [], "ghost": []}
    for name, spellings in (("real", [real] * 5), ("ghost", GHOSTS[ghost])):
        for attempt, email in enumerate(spellings):
            response = _login(client, email, "wrong guess", ip=f"192.0.2.{attempt}")
            answers[name].append((response.status, response.header("Retry-After"), response.body))
    assert answers["real"] == answers["ghost"]
    assert [status for status, _, _ in answers["ghost"]] == [400, 400, 400, 429, 429]


def test_a_successful_login_resets_the_accounts_count(
    client: ApiClient, strict: None, frozen_clock: FrozenClock
) -> None:
    email = client.sign_up()
    for _ in range(2):
        assert _login(client, email, "wrong guess").status == 400
    assert _login(client, email, PASSWORD).status == 200
    for _ in range(3):
        assert _login(client, email, "wrong guess").status == 400
    assert _login(client, email, PASSWORD).status == 429


def test_failures_outside_the_window_are_forgotten(
    client: ApiClient, strict: None, frozen_clock: FrozenClock
) -> None:
    email = client.sign_up()
    for _ in range(3):
        assert _login(client, email, "wrong guess").status == 400
        frozen_clock.advance(250)  # the first failure falls out before a fourth attempt
    # The window of the first failure (600 s) has passed: a new window starts.
    assert _login(client, email, "wrong guess").status == 400
    assert _login(client, email, PASSWORD).status == 200


def test_too_many_failures_from_one_ip_block_that_ip_for_every_account(
    client: ApiClient, strict: None, frozen_clock: FrozenClock
) -> None:
    victim = client.sign_up()
    attacker_ip, other_ip = "203.0.113.66", "203.0.113.77"
    for index in range(6):  # two failures each for three accounts: under the account limit
        email = f"target-{index // 2}@example.com"
        assert _login(client, email, "wrong guess", ip=attacker_ip).status == 400
    blocked = _login(client, victim, PASSWORD, ip=attacker_ip)
    assert blocked.status == 429
    assert blocked.header("Retry-After") == "300"
    assert blocked.json()["error"] == "slow_down"
    # Everyone else is unaffected, the victim included.
    assert _login(client, victim, PASSWORD, ip=other_ip).status == 200
    frozen_clock.advance(300)
    assert _login(client, victim, PASSWORD, ip=attacker_ip).status == 200


def test_successful_logins_do_not_use_up_the_ip_allowance(
    client: ApiClient, strict: None, frozen_clock: FrozenClock
) -> None:
    email = client.sign_up()
    for _ in range(8):  # more than the IP limit, all successful
        assert _login(client, email, PASSWORD, ip="192.0.2.50").status == 200


def test_throttling_does_not_touch_the_refresh_grant(
    client: ApiClient, strict: None, frozen_clock: FrozenClock
) -> None:
    email = client.sign_up()
    pair = client.login_pair(email)
    for _ in range(4):
        _login(client, email, "wrong guess", ip="127.0.0.1")
    assert _login(client, email, PASSWORD, ip="127.0.0.1").status == 429
    assert client.refresh(pair["refresh_token"]).status == 200


def test_malformed_grants_are_not_counted(
    client: ApiClient, strict: None, frozen_clock: FrozenClock
) -> None:
    email = client.sign_up()
    for _ in range(5):
        response = client.post("/token", json_body={"email": email}, source_ip="192.0.2.9")
        assert response.status == 400
        assert response.json()["error"] == "invalid_request"
    assert _login(client, email, PASSWORD, ip="192.0.2.9").status == 200


def test_default_limits(client: ApiClient, frozen_clock: FrozenClock) -> None:
    """Defaults: 5 failures per account in 15 minutes, then 15 minutes' wait."""
    email = client.sign_up()
    for _ in range(5):
        assert _login(client, email, "wrong guess").status == 400
    response = _login(client, email, PASSWORD)
    assert response.status == 429
    assert response.header("Retry-After") == "900"


def test_concurrent_guesses_cannot_slip_past_the_limit(
    client: ApiClient, strict: None, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Each attempt is counted before its password check, under the counter's row lock."""
    from taskline.errors import InvalidCredentials, LoginThrottled
    from taskline.schemas import PasswordGrant

    threads = 6
    monkeypatch.setenv("DB_POOL_SIZE", str(threads))
    email = client.sign_up()
    grant = PasswordGrant(username=email, password="wrong guess")
    start = threading.Barrier(threads)
    outcomes: list[type[Exception]] = []
    lock = threading.Lock()

    def guess() -> None:
        start.wait(timeout=30)
        try:
            sign_in_service.issue_token(grant, "192.0.2.200")
        except (InvalidCredentials, LoginThrottled) as error:
            with lock:
                outcomes.append(type(error))

    workers = [threading.Thread(target=guess) for _ in range(threads)]
    for worker in workers:
        worker.start()
    for worker in workers:
        worker.join(timeout=60)
    assert (
        sorted(o.__name__ for o in outcomes) == ["InvalidCredentials"] * 3 + ["LoginThrottled"] * 3
    )


def test_stale_counters_are_pruned(
    client: ApiClient, strict: None, frozen_clock: FrozenClock, admin_engine: Engine
) -> None:
    for index in range(4):
        _login(client, f"sprayed-{index}@example.com", "wrong guess", ip=f"192.0.2.{index}")
    with admin_engine.connect() as connection:
        assert connection.execute(text("SELECT count(*) FROM login_throttles")).scalar() == 8
    frozen_clock.advance(600 + 300 + 1)  # window and lockout both long over
    _login(client, "someone-else@example.com", "wrong guess", ip="192.0.2.99")
    with admin_engine.connect() as connection:
        subjects = connection.execute(text("SELECT subject FROM login_throttles")).scalars().all()
    assert len(subjects) == 2  # only the new attempt's account and IP are left
    assert "192.0.2.99" in subjects
