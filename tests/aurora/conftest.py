"""Fixtures of the Aurora Serverless v2 stand-in tests: the stand-in, with resume and pause times
scaled down from Aurora's (about 15 s to resume, 300 s idle at the least) so the suite stays
fast, and the functions' settings scaled with them."""

from __future__ import annotations

from collections.abc import Iterator

import pytest
from sqlalchemy import Engine

from tests.support.aurora import RunningAurora, running_aurora
from tests.support.caches import clear_caches
from tests.support.environment import DEFAULT_STATEMENT_TIMEOUT_MS, TEST_APP_ROLE

# Aurora resumes in about 15 s and the HTTP API gives up after 30 s: the tests keep that ratio.
AURORA_RESUME_SECONDS = 15.0
GATEWAY_LIMIT_SECONDS = 30.0
RESUME_SECONDS = 1.0
SCALE = RESUME_SECONDS / AURORA_RESUME_SECONDS
SCALED_GATEWAY_LIMIT = GATEWAY_LIMIT_SECONDS * SCALE  # 2 s
# The function's connect bound, scaled from the starter profile's 20 s (docs/deploy.md).
SCALED_CONNECT_TIMEOUT = 20.0 * SCALE
IDLE_SESSION_TIMEOUT_SECONDS = 1  # the role's idle_session_timeout here (60 s in AWS)
PAUSE_AFTER = 0.3  # SecondsUntilAutoPause, scaled (300 s at the least in AWS)


@pytest.fixture(scope="module")
def aurora(database_url: str, app_database_url: str) -> Iterator[RunningAurora]:
    # app_database_url: the functions' login role exists (the stand-in logs in as it upstream).
    with running_aurora(
        database_url, pause_after=PAUSE_AFTER, resume_seconds=RESUME_SECONDS
    ) as running:
        yield running


def use_aurora(
    running: RunningAurora,
    monkeypatch: pytest.MonkeyPatch,
    admin_engine: Engine,
    connect_timeout: float = SCALED_CONNECT_TIMEOUT,
) -> None:
    """Point the functions at the stand-in, with the role's idle-session timeout scaled."""
    from taskline.migrate import set_session_defaults

    set_session_defaults(
        admin_engine, TEST_APP_ROLE, DEFAULT_STATEMENT_TIMEOUT_MS, IDLE_SESSION_TIMEOUT_SECONDS
    )
    for name, value in running.settings(connect_timeout).items():
        monkeypatch.setenv(name, value)
    monkeypatch.setenv("DB_IDLE_SESSION_TIMEOUT_SECONDS", str(IDLE_SESSION_TIMEOUT_SECONDS))
    monkeypatch.setenv("DB_PING_AFTER_IDLE_SECONDS", str(IDLE_SESSION_TIMEOUT_SECONDS / 2))
    clear_caches()


@pytest.fixture
def through_aurora(
    aurora: RunningAurora, monkeypatch: pytest.MonkeyPatch, admin_engine: Engine
) -> Iterator[RunningAurora]:
    use_aurora(aurora, monkeypatch, admin_engine)
    yield aurora
    clear_caches()
    from taskline.migrate import set_session_defaults

    set_session_defaults(admin_engine, TEST_APP_ROLE, DEFAULT_STATEMENT_TIMEOUT_MS)
