"""bcrypt hashing: configurable cost, refusal instead of truncation, one check whatever happens."""

from __future__ import annotations

import pytest

from taskline.security.passwords import hash_password, verify_password


def test_hash_uses_the_configured_cost(
    monkeypatch: pytest.MonkeyPatch, reload_settings: None
) -> None:
    monkeypatch.setenv("BCRYPT_ROUNDS", "5")
    hashed = hash_password("correct horse battery")
    assert hashed.startswith("$2b$05$")
    assert "correct horse" not in hashed


def test_hashes_are_salted() -> None:
    assert hash_password("same password") != hash_password("same password")


def test_right_and_wrong_passwords() -> None:
    hashed = hash_password("correct horse battery")
    assert verify_password("correct horse battery", hashed)
    assert not verify_password("correct horse batterY", hashed)
    assert not verify_password("", hashed)


def test_passwords_are_not_truncated() -> None:
    """bcrypt reads 72 bytes; a longer password must not match the hash of its first 72 bytes."""
    prefix = "a" * 72
    hashed = hash_password(prefix)
    assert verify_password(prefix, hashed)
    assert not verify_password(prefix + "b", hashed)


def test_multibyte_passwords() -> None:
    password = "pässwörd-😀-密码"
    hashed = hash_password(password)
    assert verify_password(password, hashed)
    assert not verify_password(password.replace("ä", "a"), hashed)


def test_nul_characters_are_harmless() -> None:
    hashed = hash_password("before\x00after-and-more")
    assert verify_password("before\x00after-and-more", hashed)
    assert not verify_password("before", hashed)


@pytest.mark.parametrize(
    ("password", "has_account"),
    [
        ("correct horse battery", True),  # right
        ("wrong password!", True),  # wrong
        ("x" * 73, True),  # over-long
        ("é" * 37, True),  # over-long in bytes only
        ("correct horse battery", False),  # no such account
        ("x" * 5000, False),
    ],
)
def test_every_outcome_costs_one_bcrypt_check(
    checkpw_calls: list[bytes], password: str, has_account: bool
) -> None:
    hashed = hash_password("correct horse battery") if has_account else None
    verify_password(password, hashed)
    assert len(checkpw_calls) == 1


def test_decoy_hash_has_the_configured_cost(
    monkeypatch: pytest.MonkeyPatch, reload_settings: None, checkpw_calls: list[bytes]
) -> None:
    monkeypatch.setenv("BCRYPT_ROUNDS", "5")
    assert not verify_password("anything at all", None)
    assert checkpw_calls[0].startswith(b"$2b$05$")


def test_the_decoy_is_made_once_until_its_cache_is_reset(
    monkeypatch: pytest.MonkeyPatch, reload_settings: None, checkpw_calls: list[bytes]
) -> None:
    from taskline.security.passwords import reset_decoy_cache
    from taskline.settings import get_settings

    verify_password("anything at all", None)
    verify_password("something else", None)
    assert checkpw_calls[0] == checkpw_calls[1]  # one decoy per container
    monkeypatch.setenv("BCRYPT_ROUNDS", "5")
    get_settings.cache_clear()
    reset_decoy_cache()
    verify_password("anything at all", None)
    assert checkpw_calls[2] != checkpw_calls[0]
    assert checkpw_calls[2].startswith(b"$2b$05$")
