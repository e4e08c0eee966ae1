"""Test fixtures: a real PostgreSQL (embedded, or DATABASE_URL), migrated once per session.

Each test session gets its own database; tables are emptied after every test. Functions are
called through the local API Gateway stand-in, with the HTTP API 2.0 events AWS would send.
"""

from __future__ import annotations

import json
import os
import time
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import UTC, datetime, timedelta
from typing import Any
from urllib.parse import urlencode

import jwt
import pytest
from sqlalchemy import Engine, create_engine, make_url, text

from localdev import database
from localdev.gateway import GatewayResponse, LocalGateway
from localdev.rdsproxy import RdsProxyStandIn, proxied_url, upstream_for
from localdev.template import load

TEST_JWT_SECRET = "test-signing-key-" + "x" * 32
TEST_DATABASE = f"taskline_test_{os.getpid()}"
# The data-only login the functions use, as in AWS (roles are per server: one per test run).
TEST_APP_ROLE = f"taskline_app_test_{os.getpid()}"
TEST_APP_PASSWORD = "test-app-Password-0123456789"
DEFAULT_STATEMENT_TIMEOUT_MS = 5000  # Settings' default, DB_STATEMENT_TIMEOUT_MS

# Powertools names loggers after the service when a module creates them, which may happen while
# test modules are collected, before any fixture runs: set these before anything is imported.
os.environ.update(
    {
        "POWERTOOLS_SERVICE_NAME": "taskline-test",
        "POWERTOOLS_METRICS_NAMESPACE": "TasklineTest",
        "POWERTOOLS_METRICS_DISABLED": "true",
    }
)


def _clear_caches() -> None:
    from taskline import secret_store
    from taskline.db import get_engine
    from taskline.security import passwords, tokens
    from taskline.settings import get_settings

    if get_engine.cache_info().currsize:
        get_engine().dispose()
    for cached in (get_settings, get_engine):
        cached.cache_clear()
    tokens.reset_caches()
    passwords.reset_decoy_cache()
    secret_store.reset()


@pytest.fixture(scope="session")
def database_url() -> Iterator[str]:
    server = database.server_url()
    url = database.fresh_migrated_database(server, TEST_DATABASE)
    yield url
    _clear_caches()
    database.drop_database(server, TEST_DATABASE)


@pytest.fixture(scope="session")
def rds_proxy(database_url: str) -> Iterator[RdsProxyStandIn]:
    """The strict RDS Proxy stand-in (localdev.rdsproxy) in front of the test database: every
    connection the functions open goes through it (DATABASE_URL below)."""
    with RdsProxyStandIn(upstream_for(database_url)) as proxy:
        _PROXY_FIGURES["proxy"] = proxy
        yield proxy


@pytest.fixture(scope="session")
def app_database_url(database_url: str, rds_proxy: RdsProxyStandIn) -> Iterator[str]:
    """The test database as the functions reach it in AWS: through the strict proxy, as the
    data-only role the migration function provisions (its statement timeout and UTC are role
    defaults; nothing rides in the startup packet). Tests' own checks use the direct URL."""
    from taskline.db import sqlalchemy_url
    from taskline.migrate import provision_app_role

    owner = create_engine(sqlalchemy_url(database_url))
    provision_app_role(
        owner, TEST_APP_ROLE, TEST_APP_PASSWORD, statement_timeout_ms=DEFAULT_STATEMENT_TIMEOUT_MS
    )
    url = make_url(proxied_url(database_url, rds_proxy.port))
    yield url.set(username=TEST_APP_ROLE, password=TEST_APP_PASSWORD).render_as_string(
        hide_password=False
    )
    _clear_caches()
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


_PROXY_FIGURES: dict[str, RdsProxyStandIn] = {}


def pytest_terminal_summary(terminalreporter: Any) -> None:
    proxy = _PROXY_FIGURES.get("proxy")
    if proxy is not None:
        terminalreporter.write_line(
            f"strict RDS Proxy stand-in: {len(proxy.sessions)} connections, "
            f"{len(proxy.refused)} refused, {len(proxy.pins)} pinning statements"
        )


@contextmanager
def login_statement_timeout(admin_engine: Engine, milliseconds: int) -> Iterator[None]:
    """Give the functions' login another statement timeout as its role default (where the
    migration function sets it in AWS), for connections opened inside the block."""
    from taskline.migrate import set_session_defaults

    set_session_defaults(admin_engine, TEST_APP_ROLE, milliseconds)
    _clear_caches()
    try:
        yield
    finally:
        set_session_defaults(admin_engine, TEST_APP_ROLE, DEFAULT_STATEMENT_TIMEOUT_MS)
        _clear_caches()


@pytest.fixture(scope="session", autouse=True)
def environment(app_database_url: str) -> Iterator[None]:
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
    saved = {name: os.environ.get(name) for name in values}
    os.environ.update(values)
    _clear_caches()
    yield
    for name, value in saved.items():
        if value is None:
            os.environ.pop(name, None)
        else:
            os.environ[name] = value


@pytest.fixture
def reload_settings() -> Iterator[None]:
    """Use after monkeypatching the environment: settings, engine and keys are re-read."""
    _clear_caches()
    yield
    _clear_caches()


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


class ApiClient:
    """Sends requests through the local API Gateway, so each call is a real HTTP API 2.0 event
    delivered to the function that owns the route."""

    def __init__(self, gateway: LocalGateway, token: str | None = None) -> None:
        self.gateway = gateway
        self.token = token

    def request(
        self,
        method: str,
        path: str,
        *,
        json_body: Any = None,
        body: bytes | str | None = None,
        query: dict[str, Any] | None = None,
        headers: dict[str, str] | None = None,
        token: str | None = None,
        source_ip: str = "127.0.0.1",
    ) -> GatewayResponse:
        sent = dict(headers or {})
        raw = b""
        if json_body is not None:
            raw = json.dumps(json_body).encode()
            sent.setdefault("Content-Type", "application/json")
        elif body is not None:
            raw = body.encode() if isinstance(body, str) else body
        bearer = token if token is not None else self.token
        if bearer and "Authorization" not in sent:
            sent["Authorization"] = f"Bearer {bearer}"
        path, _, raw_query = path.partition("?")
        if query:
            raw_query = urlencode(query)
        return self.gateway.request(
            method, path, raw_query, list(sent.items()), raw, source_ip=source_ip
        )

    def get(self, path: str, **kwargs: Any) -> GatewayResponse:
        return self.request("GET", path, **kwargs)

    def post(self, path: str, **kwargs: Any) -> GatewayResponse:
        return self.request("POST", path, **kwargs)

    def put(self, path: str, **kwargs: Any) -> GatewayResponse:
        return self.request("PUT", path, **kwargs)

    def patch(self, path: str, **kwargs: Any) -> GatewayResponse:
        return self.request("PATCH", path, **kwargs)

    def delete(self, path: str, **kwargs: Any) -> GatewayResponse:
        return self.request("DELETE", path, **kwargs)

    def sign_up(self, email: str | None = None, password: str = "correct horse battery") -> str:
        email = email or f"user-{uuid.uuid4().hex[:8]}@example.com"
        response = self.post("/users", json_body={"email": email, "password": password})
        assert response.status == 201, response.body
        return email

    def login(self, email: str, password: str = "correct horse battery") -> str:
        token: str = self.login_pair(email, password)["access_token"]
        return token

    def login_pair(self, email: str, password: str = "correct horse battery") -> dict[str, Any]:
        """The whole token response of a password grant (access and refresh token)."""
        response = self.post(
            "/token",
            body=urlencode({"grant_type": "password", "username": email, "password": password}),
            headers={"Content-Type": "application/x-www-form-urlencoded"},
        )
        assert response.status == 200, response.body
        pair: dict[str, Any] = response.json()
        return pair

    def refresh(self, refresh_token: str) -> GatewayResponse:
        return self.post(
            "/token",
            body=urlencode({"grant_type": "refresh_token", "refresh_token": refresh_token}),
            headers={"Content-Type": "application/x-www-form-urlencoded"},
        )


@pytest.fixture
def client(gateway: LocalGateway) -> ApiClient:
    """An anonymous client."""
    return ApiClient(gateway)


@pytest.fixture
def user(gateway: LocalGateway) -> ApiClient:
    """A client signed up and logged in as a fresh user."""
    anonymous = ApiClient(gateway)
    email = anonymous.sign_up()
    return ApiClient(gateway, anonymous.login(email))


@pytest.fixture
def other_user(gateway: LocalGateway) -> ApiClient:
    anonymous = ApiClient(gateway)
    email = anonymous.sign_up()
    return ApiClient(gateway, anonymous.login(email))


def task_body(**overrides: Any) -> dict[str, Any]:
    body: dict[str, Any] = {
        "description": "Write the quarterly report",
        "category": "work",
        "deadline": "2030-01-15T09:00:00Z",
    }
    body.update(overrides)
    return body


def assert_problem(response: GatewayResponse, status: int) -> dict[str, Any]:
    """The response is an RFC 9457 problem with this status; returns its body."""
    assert response.status == status, response.body
    assert response.header("Content-Type") == "application/problem+json", response.headers
    body: dict[str, Any] = response.json()
    assert {"type", "title", "status", "detail"} <= body.keys(), body
    assert body["status"] == status
    assert all(isinstance(body[key], str) and body[key] for key in ("type", "title", "detail"))
    if status == 422:
        assert body["errors"], body
        for error in body["errors"]:
            assert set(error) == {"loc", "msg", "type"}, error
            assert isinstance(error["loc"], list)
            assert error["loc"]
    return body


def forge_token(
    claims: dict[str, Any],
    *,
    secret: str = TEST_JWT_SECRET,
    kid: str | None = "current",
    algorithm: str = "HS256",
) -> str:
    """A JWT signed as the caller says (kid "current" is the key the API signs with now)."""
    from taskline.security.tokens import key_id

    headers: dict[str, Any] = {}
    if kid == "current":
        headers["kid"] = key_id(secret.encode())
    elif kid is not None:
        headers["kid"] = kid
    return jwt.encode(claims, secret, algorithm=algorithm, headers=headers)


def valid_claims(user_id: int | str, **overrides: Any) -> dict[str, Any]:
    """The claims of a good access token for `user_id`, with any of them replaced."""
    now = int(time.time())
    claims: dict[str, Any] = {
        "sub": str(user_id),
        "iat": now,
        "exp": now + 600,
        "iss": "taskline",
        "aud": "taskline-api",
        "jti": uuid.uuid4().hex,
        "sid": str(uuid.uuid4()),  # a session id; only the account routes look the session up
    }
    claims.update(overrides)
    return claims


def user_id_of(client: ApiClient) -> int:
    me = client.get("/users/me")
    assert me.status == 200, me.body
    user_id: int = me.json()["id"]
    return user_id


class FrozenClock:
    """Stands in for `taskline.clock.utcnow`: time moves only when a test says so."""

    def __init__(self) -> None:
        self.now = datetime(2030, 1, 1, 12, 0, tzinfo=UTC)

    def __call__(self) -> datetime:
        return self.now

    def advance(self, seconds: float) -> None:
        self.now += timedelta(seconds=seconds)


@pytest.fixture
def frozen_clock(monkeypatch: pytest.MonkeyPatch) -> FrozenClock:
    """Freeze the clock of database-kept state (sessions, refresh tokens, login throttling).

    Access tokens keep real time (PyJWT checks `exp` against the system clock)."""
    from taskline import clock

    frozen = FrozenClock()
    monkeypatch.setattr(clock, "utcnow", frozen)
    return frozen


@pytest.fixture(scope="session")
def tls_server() -> Iterator[Any]:
    """A TLS-only PostgreSQL (a stand-in for RDS Proxy) with a migrated `taskline` database.

    Started on first use only: the tests of the AWS code paths need it, the rest do not.
    """
    from tests import tls_postgres

    server = tls_postgres.start(tls_postgres.CertificateAuthority.create("Taskline Test CA"))
    try:
        from taskline.db import sqlalchemy_url
        from taskline.migrate import upgrade

        database.ensure_database(server.superuser_url(), "taskline")
        engine = create_engine(sqlalchemy_url(server.superuser_url("taskline")))
        upgrade(engine)
        engine.dispose()
        yield server
    finally:
        server.stop()


# --- Every response header the suite sees (tests/test_cors.py checks each one is readable by
# a page on another origin). Recorded at the local gateway, which every in-process test uses.
SEEN_RESPONSE_HEADERS: dict[str, str] = {}  # lower-cased name -> the first route that sent it


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


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    """Tests marked after_all go last (they read what the whole run recorded)."""
    items.sort(key=lambda item: item.get_closest_marker("after_all") is not None)
