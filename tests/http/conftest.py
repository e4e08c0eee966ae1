"""Fixtures of the HTTP contract tests."""

from __future__ import annotations

import pytest


@pytest.fixture
def strict(monkeypatch: pytest.MonkeyPatch, reload_settings: None) -> None:
    """Small limits: 3 failures per account, 6 per IP, in 10 minutes; 5 minutes' lockout."""
    monkeypatch.setenv("LOGIN_MAX_FAILURES_PER_ACCOUNT", "3")
    monkeypatch.setenv("LOGIN_MAX_FAILURES_PER_IP", "6")
    monkeypatch.setenv("LOGIN_FAILURE_WINDOW_SECONDS", "600")
    monkeypatch.setenv("LOGIN_LOCKOUT_SECONDS", "300")


from tests.http.lists_support import make_account  # noqa: E402, F401 - the list tests' accounts
