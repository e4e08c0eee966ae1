"""Test fixtures: a real PostgreSQL (embedded, or DATABASE_URL), migrated once per session.

Each test session gets its own database; tables are emptied after every test. Functions are
called through the local API Gateway stand-in, with the HTTP API 2.0 events AWS would send.
"""

from __future__ import annotations

import os
import time
from collections.abc import Iterator
from typing import Any

import pytest
from sqlalchemy import Engine, create_engine, make_url, text

from localdev import database
from localdev.gateway import GatewayResponse, LocalGateway
from localdev.rdsproxy import RdsProxyStandIn, proxied_url, upstream_for
from localdev.template import load
from tests.support.api import SEEN_RESPONSE_HEADERS, ApiClient, verify_email
from tests.support.aurora import RunningAurora, running_aurora
from tests.support.caches import clear_caches
from tests.support.clock import FrozenClock
from tests.support.environment import (
    DEFAULT_STATEMENT_TIMEOUT_MS,
    TEST_APP_PASSWORD,
    TEST_APP_ROLE,
    TEST_DATABASE,
    TEST_JWT_SECRET,
)

# Powertools names loggers after the service when a module creates them, which may happen while
# test modules are collected, before any fixture runs: set these before anything is imported.
os.environ.update(
    {
        "POWERTOOLS_SERVICE_NAME": "taskline-test",
        "POWERTOOLS_METRICS_NAMESPACE": "TasklineTest",
        "POWERTOOLS_METRICS_DISABLED": "true",
    }
)


# TASKLINE_DB_STANDIN=aurora: the functions reach the database through the strict Aurora
# Serverless v2 stand-in (localdev.aurora: IAM tokens over TLS, auto-pause) instead of the RDS
# Proxy one, and every test starts with the database paused. `make test` runs the tests marked
# aurora_contract that way (tests/aurora/test_contract_through_aurora.py).
DB_STANDIN = os.environ.get("TASKLINE_DB_STANDIN", "rdsproxy")
AURORA_PAUSE_AFTER = 0.2  # seconds idle before it pauses (300 s at the least in AWS)
AURORA_RESUME_SECONDS = 0.2  # Aurora: about 15 s; scaled down (tests/aurora use longer ones)


@pytest.fixture(scope="session")
def database_url() -> Iterator[str]:
    server = database.server_url()
    url = database.fresh_migrated_database(server, TEST_DATABASE)
    yield url
    clear_caches()
    database.drop_database(server, TEST_DATABASE)


@pytest.fixture(scope="session")
def rds_proxy(database_url: str) -> Iterator[RdsProxyStandIn]:
    """The strict RDS Proxy stand-in (localdev.rdsproxy) in front of the test database: every
    connection the functions open goes through it (DATABASE_URL below)."""
    with RdsProxyStandIn(upstream_for(database_url)) as proxy:
        _PROXY_FIGURES["proxy"] = proxy
        yield proxy


@pytest.fixture(scope="session")
def session_aurora(database_url: str) -> Iterator[RunningAurora | None]:
    """The Aurora stand-in of TASKLINE_DB_STANDIN=aurora (None otherwise)."""
    if DB_STANDIN != "aurora":
        yield None
        return
    with running_aurora(
        database_url, pause_after=AURORA_PAUSE_AFTER, resume_seconds=AURORA_RESUME_SECONDS
    ) as running:
        _PROXY_FIGURES["aurora"] = running
        yield running


@pytest.fixture(autouse=True)
def _start_paused(session_aurora: RunningAurora | None) -> None:
    """With the Aurora stand-in, each test meets a paused database: the pooled connection is
    let go (as the server's idle timeout would) and the instance pauses."""
    if session_aurora is None:
        return
    from taskline.db import get_engine

    if get_engine.cache_info().currsize:
        get_engine().dispose()
    stand_in = session_aurora.stand_in
    deadline = time.monotonic() + 5
    while stand_in.open_connections and time.monotonic() < deadline:
        time.sleep(0.01)
    stand_in.pause_now()


@pytest.fixture(scope="session")
def app_database_url(
    database_url: str, rds_proxy: RdsProxyStandIn, session_aurora: RunningAurora | None
) -> Iterator[str]:
    """The test database as the functions reach it in AWS: through the strict proxy, as the
    data-only role the migration function provisions (its statement timeout and UTC are role
    defaults; nothing rides in the startup packet). Tests' own checks use the direct URL."""
    from taskline.db import sqlalchemy_url
    from taskline.migrate import provision_app_role

    owner = create_engine(sqlalchemy_url(database_url))
    provision_app_role(
        owner, TEST_APP_ROLE, TEST_APP_PASSWORD, statement_timeout_ms=DEFAULT_STATEMENT_TIMEOUT_MS
    )
    if session_aurora is not None:
        yield session_aurora.settings(connect_timeout=5)["DATABASE_URL"]
        clear_caches()
        with owner.begin() as connection:
            connection.exec_driver_sql(f'DROP OWNED BY "{TEST_APP_ROLE}"')
            connection.exec_driver_sql(f'DROP ROLE IF EXISTS "{TEST_APP_ROLE}"')
        owner.dispose()
        return
    url = make_url(proxied_url(database_url, rds_proxy.port))
    yield url.set(username=TEST_APP_ROLE, password=TEST_APP_PASSWORD).render_as_string(
        hide_password=False
    )
    clear_caches()
    with owner.begin() as connection:
        connection.exec_driver_sql(f'DROP OWNED BY "{TEST_APP_ROLE}"')
        connection.exec_driver_sql(f'DROP ROLE IF EXISTS "{TEST_APP_ROLE}"')
    owner.dispose()


@pytest.fixture(autouse=True)
def _no_pinning_or_refusal(rds_proxy: RdsProxyStandIn) -> Iterator[None]:
    """The request path, through RDS Proxy's rules: no refused connection, and no statement that
    would pin a session, in any test. (Migrations run beside the proxy, on the direct URL.)"""
    sessions_before, pins_before = len(rds_proxy.sessions), len(rds_proxy.pins)
    yield
    refused = [s.refused for s in rds_proxy.sessions[sessions_before:] if s.refused]
    pins = [(pin.reason, pin.statement) for pin in rds_proxy.pins[pins_before:]]
    assert not refused, f"RDS Proxy would refuse these connections: {refused}"
    assert not pins, f"These statements would pin an RDS Proxy session: {pins}"


_PROXY_FIGURES: dict[str, RdsProxyStandIn | RunningAurora] = {}


def pytest_terminal_summary(terminalreporter: Any) -> None:
    aurora = _PROXY_FIGURES.get("aurora")
    if isinstance(aurora, RunningAurora):
        stand_in = aurora.stand_in
        terminalreporter.write_line(
            f"strict Aurora Serverless v2 stand-in: {len(stand_in.connections)} connections, "
            f"{len(stand_in.refused)} refused, {stand_in.pauses} pauses, "
            f"{len(stand_in.resumes)} resumes"
        )
    proxy = _PROXY_FIGURES.get("proxy")
    if isinstance(proxy, RdsProxyStandIn):
        terminalreporter.write_line(
            f"strict RDS Proxy stand-in: {len(proxy.sessions)} connections, "
            f"{len(proxy.refused)} refused, {len(proxy.pins)} pinning statements"
        )


@pytest.fixture(scope="session", autouse=True)
def environment(app_database_url: str, session_aurora: RunningAurora | None) -> Iterator[None]:
    """The settings every function reads; individual tests may monkeypatch and reload them."""
    values = {
        "DATABASE_URL": app_database_url,
        "JWT_SECRET": TEST_JWT_SECRET,
        "BCRYPT_ROUNDS": "4",  # the cheapest cost keeps the suite fast; the default (12) is tested
        "DB_SSL_MODE": "disable",
        "AWS_DEFAULT_REGION": "us-east-1",
        "AWS_ACCESS_KEY_ID": "testing",
        "AWS_SECRET_ACCESS_KEY": "testing",
    }
    if session_aurora is not None:
        values.update(session_aurora.settings(connect_timeout=5))
    saved = {name: os.environ.get(name) for name in values}
    os.environ.update(values)
    clear_caches()
    yield
    for name, value in saved.items():
        if value is None:
            os.environ.pop(name, None)
        else:
            os.environ[name] = value


@pytest.fixture
def reload_settings() -> Iterator[None]:
    """Use after monkeypatching the environment: settings, engine and keys are re-read."""
    clear_caches()
    yield
    clear_caches()


@pytest.fixture(scope="session")
def admin_engine(database_url: str) -> Iterator[Engine]:
    """A separate connection pool for the tests' own checks and clean-up."""
    from taskline.db import sqlalchemy_url

    # Straight to the server (no proxy): clean-up is never cut short by a role's timeout.
    engine = create_engine(
        sqlalchemy_url(database_url),
        pool_size=2,
        connect_args={"startup_params": {"statement_timeout": "0"}},
    )
    yield engine
    engine.dispose()


@pytest.fixture(autouse=True)
def _empty_tables(admin_engine: Engine) -> Iterator[None]:
    yield
    from taskline.models import Base

    tables = ", ".join(table.name for table in Base.metadata.sorted_tables)
    with admin_engine.begin() as connection:
        connection.execute(text(f"TRUNCATE {tables} RESTART IDENTITY CASCADE"))


@pytest.fixture(scope="session")
def gateway() -> LocalGateway:
    return LocalGateway(load())


@pytest.fixture
def checkpw_calls(monkeypatch: pytest.MonkeyPatch) -> list[bytes]:
    """Records every bcrypt check (bcrypt is a dependency there, not the thing under test)."""
    import bcrypt

    calls: list[bytes] = []
    real = bcrypt.checkpw

    def counting(password: bytes, hashed: bytes) -> bool:
        calls.append(hashed)
        return real(password, hashed)

    monkeypatch.setattr(bcrypt, "checkpw", counting)
    return calls


@pytest.fixture
def client(gateway: LocalGateway) -> ApiClient:
    """An anonymous client."""
    return ApiClient(gateway)


@pytest.fixture
def user(gateway: LocalGateway) -> ApiClient:
    """A client signed up and logged in as a fresh user, its address verified (through the
    verification link, as its owner would); tests of unverified accounts sign up themselves."""
    anonymous = ApiClient(gateway)
    email = anonymous.sign_up()
    signed_in = ApiClient(gateway, anonymous.login(email))
    verify_email(signed_in)
    return signed_in


@pytest.fixture
def other_user(gateway: LocalGateway) -> ApiClient:
    anonymous = ApiClient(gateway)
    email = anonymous.sign_up()
    signed_in = ApiClient(gateway, anonymous.login(email))
    verify_email(signed_in)
    return signed_in


@pytest.fixture
def frozen_clock(monkeypatch: pytest.MonkeyPatch) -> FrozenClock:
    """Freeze the clock of database-kept state (sessions, refresh tokens, login throttling).

    Access tokens keep real time (PyJWT checks `exp` against the system clock)."""
    from taskline import clock

    frozen = FrozenClock()
    monkeypatch.setattr(clock, "utcnow", frozen)
    return frozen


# Every response header the suite sees, recorded at the local gateway, which every in-process
# test uses (tests/http/test_cors.py checks each one is readable by a page on another origin).
@pytest.fixture(scope="session", autouse=True)
def _record_response_headers() -> Iterator[None]:
    real = LocalGateway._route

    def recording(self: LocalGateway, method: str, path: str, *args: Any) -> GatewayResponse:
        response = real(self, method, path, *args)
        for name, _ in response.headers:
            SEEN_RESPONSE_HEADERS.setdefault(name.lower(), f"{response.status} {method} {path}")
        return response

    LocalGateway._route = recording  # type: ignore[method-assign,assignment]
    yield
    LocalGateway._route = real  # type: ignore[method-assign]


def pytest_configure(config: pytest.Config) -> None:
    config.addinivalue_line("markers", "after_all: runs after every other test of the session")
    config.addinivalue_line(
        "markers",
        "aurora_contract: part of the contract subset make test also runs through the paused"
        " Aurora stand-in (TASKLINE_DB_STANDIN=aurora)",
    )


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    """Tests marked after_all go last (they read what the whole run recorded)."""
    items.sort(key=lambda item: item.get_closest_marker("after_all") is not None)
