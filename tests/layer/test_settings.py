"""Settings: parsed from the environment once, with safe defaults and refused bad values."""

from __future__ import annotations

import json
from typing import Annotated

import pytest
from pydantic import Field, ValidationError

from taskline.settings import (
    MIN_JWT_SECRET_BYTES,
    EnvironmentSettings,
    NoDecode,
    Settings,
    get_settings,
)

OPTIONAL_KNOBS = (
    "DB_CONNECT_TIMEOUT_SECONDS",
    "DB_STATEMENT_TIMEOUT_MS",
    "DB_SSL_MODE",
    "DB_SSL_ROOT_CERT",
    "DB_POOL_SIZE",
    "JWT_PREVIOUS_SECRETS",
    "JWT_ISSUER",
    "JWT_AUDIENCE",
    "ACCESS_TOKEN_TTL_SECONDS",
    "JWT_LEEWAY_SECONDS",
    "REFRESH_TOKEN_TTL_SECONDS",
    "SESSION_MAX_AGE_SECONDS",
    "LOGIN_MAX_FAILURES_PER_ACCOUNT",
    "LOGIN_MAX_FAILURES_PER_IP",
    "LOGIN_FAILURE_WINDOW_SECONDS",
    "LOGIN_LOCKOUT_SECONDS",
    "BCRYPT_ROUNDS",
)


@pytest.fixture
def bare_environment(monkeypatch: pytest.MonkeyPatch) -> pytest.MonkeyPatch:
    """Only the two required variables are set."""
    for name in OPTIONAL_KNOBS:
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("DATABASE_URL", "postgresql://app:pw@db.internal:5432/taskline")
    monkeypatch.setenv("JWT_SECRET", "s" * MIN_JWT_SECRET_BYTES)
    return monkeypatch


def test_defaults(bare_environment: pytest.MonkeyPatch) -> None:
    settings = Settings()
    assert settings.bcrypt_rounds == 12
    assert settings.db_connect_timeout_seconds == 5.0
    assert settings.db_statement_timeout_ms == 5000
    assert settings.db_ssl_mode == "disable"
    assert settings.db_ssl_root_cert is None
    assert settings.db_pool_size == 1
    assert settings.jwt_previous_secrets == []
    assert settings.jwt_issuer == "taskline"
    assert settings.jwt_audience == "taskline-api"
    # Short-lived access tokens (15 minutes): the longest one outlives a logout (docs/security.md).
    assert settings.access_token_ttl_seconds == 900
    assert settings.refresh_token_ttl_seconds == 14 * 86400
    assert settings.session_max_age_seconds == 90 * 86400
    assert settings.login_max_failures_per_account == 5
    assert settings.login_max_failures_per_ip == 50
    assert settings.login_failure_window_seconds == 900
    assert settings.login_lockout_seconds == 900
    assert 0 <= settings.jwt_leeway_seconds <= 60
    assert settings.database_url is not None
    assert settings.database_url.get_secret_value() == (
        "postgresql://app:pw@db.internal:5432/taskline"
    )


def test_values_come_from_the_environment(bare_environment: pytest.MonkeyPatch) -> None:
    bare_environment.setenv("BCRYPT_ROUNDS", "10")
    bare_environment.setenv("DB_SSL_MODE", "verify-full")
    bare_environment.setenv("DB_CONNECT_TIMEOUT_SECONDS", "1.5")
    bare_environment.setenv("ACCESS_TOKEN_TTL_SECONDS", "1800")  # not the default (900)
    bare_environment.setenv("JWT_PREVIOUS_SECRETS", json.dumps(["p" * 32, "q" * 40]))
    settings = Settings()
    assert settings.bcrypt_rounds == 10
    assert settings.db_ssl_mode == "verify-full"
    assert settings.db_connect_timeout_seconds == 1.5
    assert settings.access_token_ttl_seconds == 1800
    assert [s.get_secret_value() for s in settings.jwt_previous_secrets] == ["p" * 32, "q" * 40]


@pytest.mark.parametrize("missing", ["DATABASE_URL", "JWT_SECRET"])
def test_required_variables(bare_environment: pytest.MonkeyPatch, missing: str) -> None:
    bare_environment.delenv(missing)
    with pytest.raises(ValidationError):
        Settings()


@pytest.mark.parametrize(
    "secret",
    [
        "s" * (MIN_JWT_SECRET_BYTES - 1),
        "é" * 15,  # 30 bytes in UTF-8
        "",
    ],
)
def test_short_jwt_secret_is_refused(bare_environment: pytest.MonkeyPatch, secret: str) -> None:
    bare_environment.setenv("JWT_SECRET", secret)
    with pytest.raises(ValidationError) as raised:
        Settings()
    assert "jwt_secret" in str(raised.value)
    assert "JWT signing keys must be at least 32 bytes" in str(raised.value)


def test_secret_length_counts_utf8_bytes(bare_environment: pytest.MonkeyPatch) -> None:
    bare_environment.setenv("JWT_SECRET", "é" * 16)  # 16 characters, 32 bytes
    secret = Settings().jwt_secret
    assert secret is not None
    assert len(secret.get_secret_value()) == 16


def test_short_previous_secret_is_refused(bare_environment: pytest.MonkeyPatch) -> None:
    bare_environment.setenv("JWT_PREVIOUS_SECRETS", json.dumps(["p" * 32, "short"]))
    with pytest.raises(ValidationError):
        Settings()


def test_rejected_values_are_not_echoed(bare_environment: pytest.MonkeyPatch) -> None:
    """A refused secret must not end up in the start-up error (and so in the logs)."""
    bare_environment.setenv("JWT_SECRET", "hunter2-almost-a-real-key")
    with pytest.raises(ValidationError) as raised:
        Settings()
    assert "hunter2" not in str(raised.value)


@pytest.mark.parametrize(
    ("name", "value"),
    [
        ("BCRYPT_ROUNDS", "3"),
        ("BCRYPT_ROUNDS", "17"),
        ("BCRYPT_ROUNDS", "twelve"),
        ("JWT_LEEWAY_SECONDS", "61"),
        ("JWT_LEEWAY_SECONDS", "-1"),
        ("ACCESS_TOKEN_TTL_SECONDS", "10"),
        ("DB_SSL_MODE", "prefer"),
        ("DB_CONNECT_TIMEOUT_SECONDS", "0"),
        ("DB_STATEMENT_TIMEOUT_MS", "50"),
        ("DB_POOL_SIZE", "0"),
        ("JWT_PREVIOUS_SECRETS", "not json"),
    ],
)
def test_out_of_range_values_are_refused(
    bare_environment: pytest.MonkeyPatch, name: str, value: str
) -> None:
    bare_environment.setenv(name, value)
    with pytest.raises(ValidationError):
        Settings()


def test_secrets_do_not_show_in_repr(bare_environment: pytest.MonkeyPatch) -> None:
    text = repr(Settings())
    assert "s" * MIN_JWT_SECRET_BYTES not in text
    assert "pw@db.internal" not in text


def test_settings_are_parsed_once(reload_settings: None) -> None:
    assert get_settings() is get_settings()


def test_reloading_reads_the_environment_again(
    monkeypatch: pytest.MonkeyPatch, reload_settings: None
) -> None:
    before = get_settings().bcrypt_rounds
    monkeypatch.setenv("BCRYPT_ROUNDS", str(before + 1))
    assert get_settings().bcrypt_rounds == before  # cached
    get_settings.cache_clear()
    assert get_settings().bcrypt_rounds == before + 1


def test_local_server_start_up_refuses_a_short_key(
    monkeypatch: pytest.MonkeyPatch, reload_settings: None
) -> None:
    """`make run` parses the settings before serving, so a weak key stops it at start-up."""
    from localdev.server import migrate

    monkeypatch.setenv("JWT_SECRET", "too-short")
    with pytest.raises(ValidationError):
        migrate()


def test_variable_names_match_in_any_case_and_arguments_win(
    bare_environment: pytest.MonkeyPatch,
) -> None:
    bare_environment.setenv("bcrypt_rounds", "11")
    bare_environment.setenv("Jwt_Issuer", "mixed-case")
    settings = Settings()
    assert (settings.bcrypt_rounds, settings.jwt_issuer) == (11, "mixed-case")
    assert Settings(bcrypt_rounds=5).bcrypt_rounds == 5


def test_list_and_mapping_fields_are_read_as_json(monkeypatch: pytest.MonkeyPatch) -> None:
    class Knobs(EnvironmentSettings):
        allowed: list[str] = Field(default_factory=list)
        limits: dict[str, int] | None = None
        raw: Annotated[list[str], NoDecode] = Field(default_factory=list)

    monkeypatch.setenv("ALLOWED", '["a", "b"]')
    monkeypatch.setenv("LIMITS", '{"x": 1}')
    monkeypatch.setenv("RAW", '["kept as text"]')
    with pytest.raises(ValidationError):  # NoDecode: the raw string is not a list
        Knobs()
    monkeypatch.delenv("RAW")
    knobs = Knobs()
    assert (knobs.allowed, knobs.limits) == (["a", "b"], {"x": 1})
    monkeypatch.setenv("ALLOWED", "a,b")
    with pytest.raises(ValidationError) as raised:
        Knobs()
    assert "ALLOWED is not valid JSON" in str(raised.value)
