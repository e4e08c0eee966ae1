"""What taskline.pgwire takes from pg8000's and SQLAlchemy's internals, one test per hook.

pgwire reaches past both libraries' public API (see its docstring). Each test here names one
thing it relies on and fails, with what to do, when an upgrade changed it; the last ones show
that on versions it was not verified against, the functions run on stock pg8000 instead, with
one warning, still through the strict RDS Proxy stand-in (no refused connection, no pin).
After an upgrade, run this file first.
"""

from __future__ import annotations

import hashlib
import importlib
import inspect
import json
import re
from collections.abc import Callable
from typing import Any

import pytest
from pg8000 import converters, core, dbapi, legacy
from sqlalchemy.dialects.postgresql.base import PGDialect
from sqlalchemy.dialects.postgresql.pg8000 import PGDialect_pg8000
from sqlalchemy.engine.default import DefaultDialect

from localdev.template import ROOT
from taskline import pgwire, upstream
from taskline.api import resolver
from taskline.db import get_engine
from tests.support.processes import child_environment, run_python

REQUIREMENTS = ROOT / "shared" / "requirements.txt"
HOW_TO = "re-verify as taskline/pgwire.py's docstring says"


def _pins() -> dict[str, str]:
    pins: dict[str, str] = {}
    for line in REQUIREMENTS.read_text().splitlines():
        match = re.fullmatch(r"([A-Za-z0-9_.-]+)==(\S+)", line.split("#", 1)[0].strip())
        if match:
            pins[match[1].lower()] = match[2]
    return pins


@pytest.mark.parametrize(
    ("module", "verified"),
    [
        ("taskline.pgwire", pgwire.VERIFIED_VERSIONS),
        ("taskline.api.resolver", resolver.VERIFIED_VERSIONS),
    ],
)
def test_the_pins_are_the_versions_the_hooks_were_verified_against(
    module: str, verified: dict[str, str]
) -> None:
    pins = _pins()
    for name, version in verified.items():
        assert pins.get(name.lower()) == version, (
            f"shared/requirements.txt pins {name}=={pins.get(name.lower())}, but {module} was "
            f"verified against {version}: re-verify its hooks (its docstring says how), then "
            f"update {module}.VERIFIED_VERSIONS"
        )


def test_the_installed_versions_are_the_verified_ones() -> None:
    assert pgwire.UNVERIFIED == [], f"{pgwire.UNVERIFIED}: {HOW_TO}"
    assert pgwire.ENABLED
    assert pgwire.DRIVERNAME == "postgresql+pgwire"
    assert pgwire.DBAPI is pgwire


def test_unverified_names_each_library_whose_version_differs() -> None:
    verified = {"pg8000": "1.31.6", "SQLAlchemy": "2.1.9"}
    assert upstream.unverified(verified, {"pg8000": "1.31.6", "SQLAlchemy": "2.1.9"}) == []
    assert upstream.unverified(verified, {"pg8000": "1.32.0", "SQLAlchemy": "2.1.9"}) == [
        "pg8000 1.32.0 (verified against 1.31.6)"
    ]
    assert upstream.unverified(verified, {"pg8000": None}) == [
        "pg8000 of unknown version (verified against 1.31.6)",
        "SQLAlchemy of unknown version (verified against 2.1.9)",
    ]


# --- Code pgwire repeats or replaces: upstream's source must be what it was when copied.


def _resolve(name: str) -> Any:
    """`pg8000.legacy:Cursor.execute` -> that function."""
    module, _, qualified_name = name.partition(":")
    found: Any = importlib.import_module(module)
    for attribute in qualified_name.split("."):
        found = getattr(found, attribute, None)
        assert found is not None, f"{name} is gone: {HOW_TO}"
    return found


@pytest.mark.parametrize("dotted", sorted(pgwire.UPSTREAM_SOURCES))
def test_what_pgwire_copied_is_unchanged_upstream(dotted: str) -> None:
    """pgwire.Cursor.execute repeats legacy.Cursor.execute's path for parameters (with the
    placeholder conversion remembered), and pgwire.Connection.execute_unnamed replaces
    CoreConnection.execute_unnamed (the same messages, sent at once): a change upstream (a new
    error mapping, a new message) must be ported by hand."""
    source = inspect.getsource(_resolve(dotted))
    actual = hashlib.sha256(source.encode()).hexdigest()
    assert actual == pgwire.UPSTREAM_SOURCES[dotted], (
        f"{dotted} changed since taskline.pgwire copied it (sha256 {actual}, recorded "
        f"{pgwire.UPSTREAM_SOURCES[dotted]}): diff it with pgwire's version, port what changed, "
        "then record the new hash in pgwire.UPSTREAM_SOURCES"
    )


# --- Signatures of the internals pgwire calls.

SIGNATURES: list[tuple[str, Callable[..., Any], list[str], str]] = [
    (
        "legacy.Cursor.__init__",
        legacy.Cursor.__init__,
        ["self", "connection", "paramstyle"],
        "pgwire.Connection.cursor builds its Cursor with the connection",
    ),
    (
        "legacy.Cursor.execute",
        legacy.Cursor.execute,
        ["self", "operation", "args", "stream"],
        "pgwire.Cursor.execute overrides it and calls it for COPY and other paramstyles",
    ),
    (
        "CoreConnection.execute_simple",
        core.CoreConnection.execute_simple,
        ["self", "statement"],
        "BEGIN before a statement, and the ping (an empty query)",
    ),
    (
        "CoreConnection.execute_unnamed",
        core.CoreConnection.execute_unnamed,
        ["self", "statement", "vals", "oids", "stream"],
        "pgwire.Connection.execute_unnamed replaces it, and calls it for COPY",
    ),
    (
        "CoreConnection.send_PARSE",
        core.CoreConnection.send_PARSE,
        ["self", "statement_name_bin", "statement", "oids"],
        "the Parse of the unnamed statement",
    ),
    (
        "CoreConnection.send_BIND",
        core.CoreConnection.send_BIND,
        ["self", "statement_name_bin", "params"],
        "the Bind of the parameters, as converters.make_params encodes them",
    ),
    (
        "CoreConnection._send_message",
        core.CoreConnection._send_message,
        ["self", "code", "data"],
        "the Describe of the unnamed portal",
    ),
    (
        "CoreConnection.send_EXECUTE",
        core.CoreConnection.send_EXECUTE,
        ["self"],
        "the Execute of the unnamed portal",
    ),
    (
        "CoreConnection.handle_messages",
        core.CoreConnection.handle_messages,
        ["self", "context"],
        "reads every answer of the pipelined messages into one context",
    ),
    (
        "CoreConnection.register_in_adapter",
        core.CoreConnection.register_in_adapter,
        ["self", "oid", "in_func"],
        "the faster timestamp parsers",
    ),
    ("core.Context", core.Context, ["statement", "stream", "columns", "input_funcs"], "a context"),
    ("core._write", core._write, ["sock", "d"], "writes Sync after the pipelined messages"),
    ("core._flush", core._flush, ["sock"], "sends them in one write"),
    (
        "converters.make_params",
        converters.make_params,
        ["py_types", "values"],
        "encodes the Bind parameters",
    ),
    (
        "dbapi.convert_paramstyle",
        dbapi.convert_paramstyle,
        ["style", "query", "args"],
        "turns %s into $n (remembered per statement)",
    ),
    (
        "PGDialect._get_server_version_info",
        PGDialect_pg8000._get_server_version_info,
        ["self", "connection"],
        "pgwire.Dialect answers it from the server's start-up report",
    ),
    (
        "PGDialect._get_default_schema_name",
        PGDialect_pg8000._get_default_schema_name,
        ["self", "connection"],
        "pgwire.Dialect answers it from its one first-connection query",
    ),
    (
        "PGDialect_pg8000.get_default_isolation_level",
        PGDialect_pg8000.get_default_isolation_level,
        ["self", "dbapi_conn"],
        "pgwire.Dialect answers it from its one first-connection query",
    ),
    (
        "PGDialect._set_backslash_escapes",
        PGDialect_pg8000._set_backslash_escapes,
        ["self", "connection"],
        "pgwire.Dialect answers it from the server's start-up report",
    ),
]


@pytest.mark.parametrize(
    ("name", "function", "parameters", "use"), SIGNATURES, ids=[s[0] for s in SIGNATURES]
)
def test_the_internals_pgwire_calls_keep_their_signatures(
    name: str, function: Callable[..., Any], parameters: list[str], use: str
) -> None:
    actual = list(inspect.signature(function).parameters)
    assert actual == parameters, (
        f"{name} now takes {actual}, pgwire was written for {parameters} ({use}): {HOW_TO}"
    )


def test_the_protocol_constants_pgwire_sends_are_the_protocols() -> None:
    """Sync and Describe as PostgreSQL's protocol defines them; the timestamp types' OIDs."""
    assert core.SYNC_MSG == b"S\x00\x00\x00\x04", f"pg8000's SYNC_MSG changed: {HOW_TO}"
    assert core.DESCRIBE == b"D", f"pg8000's DESCRIBE changed: {HOW_TO}"
    assert (converters.TIMESTAMP, converters.TIMESTAMPTZ) == (1114, 1184), HOW_TO
    for parser in ("timestamp_in", "timestamptz_in"):
        assert callable(getattr(converters, parser, None)), f"converters.{parser} is gone: {HOW_TO}"


def test_a_pg8000_connection_and_cursor_have_the_state_pgwire_reads() -> None:
    """pgwire.Cursor.execute reads and sets the state legacy.Cursor keeps (`_c`, `_context`,
    `_row_iter`, `_input_oids`, `paramstyle`) and the connection's (`_in_transaction`,
    `autocommit`, `_sock`, `py_types`); pgwire.Dialect reads the ParameterStatus report
    (`parameter_statuses`: server_version, standard_conforming_strings)."""
    with get_engine().connect() as connection:
        dbapi_connection: Any = connection.connection.dbapi_connection
        cursor = dbapi_connection.cursor()
        for attribute in ("_c", "_context", "_row_iter", "_input_oids", "paramstyle"):
            assert hasattr(cursor, attribute), f"legacy.Cursor has no {attribute}: {HOW_TO}"
        assert cursor._c is dbapi_connection, f"legacy.Cursor._c is not its connection: {HOW_TO}"
        for attribute in ("_in_transaction", "autocommit", "_sock", "py_types"):
            assert hasattr(dbapi_connection, attribute), (
                f"pg8000's connection has no {attribute}: {HOW_TO}"
            )
        statuses = dbapi_connection.parameter_statuses
        for parameter in ("server_version", "standard_conforming_strings"):
            assert isinstance(statuses.get(parameter), str), (
                f"pg8000's parameter_statuses has no {parameter} (it has {sorted(statuses)}): "
                f"{HOW_TO}"
            )


@pytest.mark.parametrize(
    ("owner", "calls"),
    [
        (
            DefaultDialect.initialize,
            [
                "self._get_server_version_info(",
                "self._get_default_schema_name(",
                "self.get_default_isolation_level(",
            ],
        ),
        (PGDialect.initialize, ["self._set_backslash_escapes("]),
        (PGDialect._set_backslash_escapes, ["self._backslash_escapes ="]),
    ],
    ids=["DefaultDialect.initialize", "PGDialect.initialize", "PGDialect._set_backslash_escapes"],
)
def test_sqlalchemys_first_connection_asks_through_the_methods_pgwire_answers(
    owner: Callable[..., Any], calls: list[str]
) -> None:
    """pgwire.Dialect makes a new engine's first connection one query by answering these
    methods itself; if SQLAlchemy stopped asking through them, its own queries would come back
    (tests/faults/test_db_round_trips.py counts them)."""
    source = inspect.getsource(owner)
    for call in calls:
        assert call in source, (
            f"SQLAlchemy's {owner.__qualname__} no longer does {call}...): pgwire.Dialect's "
            f"answer is skipped: {HOW_TO}"
        )


# --- On versions pgwire was not verified against: stock pg8000, one warning, same results.

# Each library reports another version, as an upgrade would; then the functions are imported and
# a user's requests are sent through the local API Gateway (the parent's strict RDS Proxy
# stand-in sees every connection).
_FALLBACK_SCRIPT = """
import json
import pg8000, pytest, sqlalchemy
{simulate}
from localdev.gateway import LocalGateway
from tests.support.wire import listen
from localdev.template import load
from taskline import pgwire
from taskline.db import get_engine

gateway = LocalGateway(load())
wire = listen(pytest.MonkeyPatch())
statuses = []
def call(method, path, body=None, token=None, form=False):
    headers = []
    raw = b""
    if body is not None:
        raw = body.encode() if form else json.dumps(body).encode()
        kind = "application/x-www-form-urlencoded" if form else "application/json"
        headers.append(("Content-Type", kind))
    if token:
        headers.append(("Authorization", "Bearer " + token))
    path, _, query = path.partition("?")
    response = gateway.request(method, path, query, headers, raw)
    statuses.append(response.status)
    return response

email = "fallback@example.com"
call("POST", "/users", {{"email": email, "password": "correct horse battery"}})
grant = "grant_type=password&username=" + email + "&password=correct+horse+battery"
token = call("POST", "/token", grant, form=True).json()["access_token"]
task = {{"description": "Fallback", "category": "work", "deadline": "2030-01-15T09:00:00Z"}}
created = call("POST", "/tasks", task, token).json()
wire.clear()
call("GET", f"/tasks/{{created['id']}}", token=token)
read_round_trips = wire.round_trips
call("PATCH", f"/tasks/{{created['id']}}", {{"status": "Done"}}, token)
listed = call("GET", "/tasks?limit=5", token=token).json()
call("GET", "/users/me", token=token)
call("DELETE", f"/tasks/{{created['id']}}", token=token)
after = call("GET", "/tasks", token=token).json()
with get_engine().connect() as connection:
    dbapi_connection = connection.connection.dbapi_connection
print("RESULT " + json.dumps({{
    "statuses": statuses,
    "listed": [(item["id"], item["status"]) for item in listed],
    "after": after,
    "created_id": created["id"],
    "enabled": pgwire.ENABLED,
    "unverified": pgwire.UNVERIFIED,
    "driver": get_engine().dialect.driver,
    "read_round_trips": read_round_trips,
    "begun_before_a_ping": [
        i for i, sql in enumerate(wire.statements)
        if sql == ";" and i and wire.statements[i - 1] == "begin transaction"
    ],
    "pings": wire.statements.count(";"),
    "connection": type(dbapi_connection).__module__ + "." + type(dbapi_connection).__name__,
}}))
"""


def _run_with(simulate: str) -> tuple[dict[str, Any], list[dict[str, Any]]]:
    """The fallback script's result, and the JSON log lines the functions wrote."""
    environment = child_environment(
        # Ping on every checkout: the fallback's ping runs too, through the stand-in.
        DB_PING_AFTER_IDLE_SECONDS="0",
        POWERTOOLS_LOG_LEVEL="INFO",
    )
    completed = run_python(
        "-c", _FALLBACK_SCRIPT.format(simulate=simulate), env=environment, timeout=90
    )
    assert completed.returncode == 0, completed.stderr
    result: dict[str, Any] | None = None
    logs: list[dict[str, Any]] = []
    for line in completed.stdout.splitlines():
        if line.startswith("RESULT "):
            result = json.loads(line.removeprefix("RESULT "))
        elif line.startswith("{"):
            logs.append(json.loads(line))
    assert result is not None, completed.stdout + completed.stderr
    return result, logs


@pytest.mark.parametrize(
    ("simulate", "named"),
    [
        ("pg8000.__version__ = '1.32.0'", "pg8000 1.32.0 (verified against 1.31.6)"),
        ("sqlalchemy.__version__ = '2.1.10'", "SQLAlchemy 2.1.10 (verified against 2.1.9)"),
    ],
    ids=["pg8000", "SQLAlchemy"],
)
def test_an_unverified_version_runs_the_functions_on_stock_pg8000_with_one_warning(
    simulate: str, named: str
) -> None:
    result, logs = _run_with(simulate)
    assert result["enabled"] is False
    assert result["unverified"] == [named]
    assert result["driver"] == "pg8000"
    assert result["connection"] == "pg8000.legacy.Connection"
    assert result["statuses"] == [201, 200, 201, 200, 200, 200, 200, 204, 200]
    assert result["listed"] == [[result["created_id"], "Done"]]
    assert result["after"] == []
    # A read by id: the ping (DB_PING_AFTER_IDLE_SECONDS=0), then Parse, Describe and Bind with
    # Execute in turn; the ping is sent outside any transaction, as pgwire's is.
    assert result["read_round_trips"] == 1 + 3
    assert result["pings"] >= 7
    assert result["begun_before_a_ping"] == []
    warnings = [line for line in logs if line.get("level") == "WARNING"]
    assert len(warnings) == 1, warnings
    assert warnings[0]["message"].startswith(f"taskline.pgwire is off on {named}: "), warnings
    assert "stock pg8000 (postgresql+pg8000" in warnings[0]["message"]
    assert warnings[0]["unverified"] == [named]


def test_the_verified_versions_run_the_same_requests_on_pgwire_without_a_warning() -> None:
    """The same script with nothing simulated: what the fallback test compares against."""
    result, logs = _run_with("")
    assert result["enabled"] is True
    assert result["driver"] == "pgwire"
    assert result["connection"] == "taskline.pgwire.Connection"
    assert result["statuses"] == [201, 200, 201, 200, 200, 200, 200, 204, 200]
    assert result["read_round_trips"] == 1 + 1  # the ping, then the read in one round trip
    assert result["begun_before_a_ping"] == []
    assert [line for line in logs if line.get("level") == "WARNING"] == []
