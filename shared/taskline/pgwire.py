"""pg8000 for a Lambda's request path: one network round trip per statement.

pg8000 1.31 sends a statement with parameters in three exchanges, waiting for the server after
each: Parse+Sync, Describe+Sync, then Bind+Execute+Sync. PostgreSQL's extended query protocol
lets a client send Parse, Bind, Describe (of the portal), Execute and Sync at once and read the
answers together, which is what libpq does; the messages and the answers are the same, only the
waiting is gone. Two per-request costs pg8000 pays in pure Python go too: turning `%s`
placeholders into `$n` (a character-by-character scan of the SQL) is remembered per statement
text, and timestamps are parsed with `datetime.fromisoformat` instead of `strptime`.

A new connection costs fewer round trips too. Without a TLS context it attempts no TLS (libpq's
sslmode=disable), where pg8000 would "prefer" it: build a default context, loading the system
CA store, and spend a round trip on an SSLRequest. And SQLAlchemy's first-connection checks
(`Dialect`) cost one query sent in autocommit instead of six statements, BEGIN and ROLLBACK
included, in as many round trips.

A connection reset while reading is reported as pg8000 reports every other socket failure
(InterfaceError "network error"), so SQLAlchemy sees a lost connection, and closing a
connection whose server is gone is quiet. Everything else (types, errors, transactions, COPY)
is pg8000's own; the whole test suite runs through this module.

Private internals, and upgrading pg8000 or SQLAlchemy. Beyond their public API this relies on
(tests/layer/test_pgwire_upstream.py has a test for each, saying what it needs):
- pg8000's `legacy.Cursor`: the attributes its `__init__` sets (`_c`, `_context`, `_row_iter`,
  `_input_oids`, `paramstyle`) and `execute`, whose non-COPY path `Cursor.execute` repeats;
- pg8000's `core.CoreConnection`: `_in_transaction`, `_sock`, `autocommit`, `py_types`,
  `parameter_statuses`, `execute_simple`, `register_in_adapter`, the message senders
  (`send_PARSE`, `send_BIND`, `_send_message`, `send_EXECUTE`), `handle_messages` (which lets
  a reset on the first read through as OSError) and `execute_unnamed`, which `Connection`
  replaces; `core.Context`, `core._write`, `core._flush`, `core.SYNC_MSG`, `core.DESCRIBE`,
  `converters.make_params` and the timestamp converters; `dbapi.convert_paramstyle`;
- SQLAlchemy's pg8000 dialect: `initialize` learning the server version, default schema,
  isolation level and backslash escapes through `_get_server_version_info`,
  `_get_default_schema_name`, `get_default_isolation_level` and `_set_backslash_escapes`.
`VERIFIED_VERSIONS` are the versions all that was checked against (the pins). On any other
version of either library the module still imports (nothing private is touched at import),
but `ENABLED` is False: `taskline.db` uses stock pg8000 (`postgresql+pg8000`: correct, with
three round trips per statement, six statements on a new connection, and a connection reset on
the first read not reported as a lost connection) and logs one warning when it builds its
engine. To re-verify after an upgrade: install it, run
`pytest tests/layer/test_pgwire_upstream.py` (a failure names the hook and what to compare; for a
method repeated or replaced here, diff upstream's new source with this module's code, port what
changed and record the new hash in `UPSTREAM_SOURCES`), then test_pgwire.py,
test_db_round_trips.py, test_rds_proxy.py, test_db_faults.py and test_db_tls.py, and `make
bench` for the round-trip figures; then set `VERIFIED_VERSIONS` to the new pins.
"""

from __future__ import annotations

import re
import sys
import types
from contextlib import suppress
from datetime import datetime
from functools import lru_cache
from typing import Any, Final

import pg8000
import sqlalchemy
from pg8000 import converters, core, dbapi, legacy
from pg8000.exceptions import DatabaseError, InterfaceError
from sqlalchemy.dialects import registry
from sqlalchemy.dialects.postgresql.pg8000 import PGDialect_pg8000

from taskline import upstream

# What the private hooks below were verified against: shared/requirements.txt's pins.
VERIFIED_VERSIONS: Final = {"pg8000": "1.31.6", "SQLAlchemy": "2.1.9"}
# sha256 of upstream's source (inspect.getsource) of what this module repeats or replaces, as
# it was when it was copied ("module:qualified name"); tests/layer/test_pgwire_upstream.py compares.
UPSTREAM_SOURCES: Final = {
    "pg8000.legacy:Cursor.execute": (
        "54009f088e6f2b908ee033926465d71b8ebee9eefb81ce191ac6099440d19525"
    ),
    "pg8000.core:CoreConnection.execute_unnamed": (
        "2e8af5bad64b66405120f0f473c13d55fb60c66629db9b0bd0a2c7ba8617eabd"
    ),
}

# Each library's own `__version__` (pg8000 reads its from importlib.metadata at import).
UNVERIFIED: Final = upstream.unverified(
    VERIFIED_VERSIONS,
    {
        "pg8000": getattr(pg8000, "__version__", None),
        "SQLAlchemy": getattr(sqlalchemy, "__version__", None),
    },
)
# False on versions the hooks were not verified against: taskline.db then uses stock pg8000.
ENABLED: Final = not UNVERIFIED

# The SQLAlchemy URL scheme (taskline.db builds the engine's URL with it) and the DB-API module
# of the engine: this module's `Dialect` and connections, or stock pg8000's.
DRIVERNAME: Final = "postgresql+pgwire" if ENABLED else "postgresql+pg8000"
DBAPI: Final[types.ModuleType] = sys.modules[__name__] if ENABLED else pg8000
FALLBACK_WARNING: Final = (
    f"taskline.pgwire is off on {', '.join(UNVERIFIED)}: its private pg8000/SQLAlchemy hooks "
    "were not verified against that, so the engine uses stock pg8000 (postgresql+pg8000; three "
    "round trips per statement instead of one). Re-verify as taskline/pgwire.py's docstring "
    "says, then update pgwire.VERIFIED_VERSIONS."
)

# Describe (portal "P", name "" NUL-terminated: the unnamed portal), as the protocol spells it:
# https://www.postgresql.org/docs/current/protocol-message-formats.html#PROTOCOL-MESSAGE-FORMATS-DESCRIBE
_UNNAMED_PORTAL = b"P\x00"
_UNNAMED = b"\x00"  # the unnamed prepared statement (and portal): an empty NUL-terminated name


@lru_cache(maxsize=512)
def _numbered(operation: str) -> str:
    """`... WHERE id = %s` -> `... WHERE id = $1` (pg8000's own conversion, remembered)."""
    statement: str = dbapi.convert_paramstyle("format", operation, ())[0]
    return statement


def _timestamptz_in(text: str) -> Any:
    try:
        return datetime.fromisoformat(text)
    except ValueError:  # infinity, BC dates, years beyond 9999: pg8000 knows what to do
        return converters.timestamptz_in(text)


def _timestamp_in(text: str) -> Any:
    try:
        return datetime.fromisoformat(text)
    except ValueError:
        return converters.timestamp_in(text)


class Cursor(legacy.Cursor):  # type: ignore[misc]  # pg8000 is untyped
    """pg8000's DB-API cursor, converting each distinct SQL text's placeholders only once."""

    _c: Any
    _context: Any
    _row_iter: Any
    _input_oids: Any
    input_types: list[Any]
    paramstyle: str

    def execute(self, operation: str, args: Any = (), stream: Any = None) -> Any:
        if stream is not None or not args or not isinstance(args, tuple | list):
            return super().execute(operation, args, stream)
        if self.paramstyle != "format":
            return super().execute(operation, args, stream)
        try:
            if not self._c._in_transaction and not self._c.autocommit:
                self._c.execute_simple("begin transaction")
            self._context = self._c.execute_unnamed(
                _numbered(operation), vals=args, oids=self._input_oids
            )
            rows = [] if self._context.rows is None else self._context.rows
            self._row_iter = iter(rows)
            self._input_oids = ()
        except AttributeError as error:  # as pg8000's execute reports a closed cursor/connection
            if self._c is None:
                raise InterfaceError("Cursor closed") from error
            if self._c._sock is None:
                raise InterfaceError("connection is closed") from error
            raise
        except DatabaseError as error:  # as pg8000's execute maps server errors
            message = error.args[0]
            if not isinstance(message, dict):
                raise legacy.ProgrammingError(message) from error
            code = message["C"]
            if code == "28000":
                raise InterfaceError(message) from error
            if code == "23505":
                raise legacy.IntegrityError(message) from error
            raise legacy.ProgrammingError(message) from error
        self.input_types = []
        return self


class Connection(legacy.Connection):  # type: ignore[misc]  # pg8000 is untyped
    """A pg8000 DB-API connection that pipelines each statement into one round trip."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        if kwargs.get("ssl_context") is None:  # no context: plain, never an SSLRequest
            kwargs["ssl_context"] = False
        super().__init__(*args, **kwargs)
        self.register_in_adapter(converters.TIMESTAMPTZ, _timestamptz_in)
        self.register_in_adapter(converters.TIMESTAMP, _timestamp_in)

    def cursor(self) -> Cursor:
        return Cursor(self)

    def execute_unnamed(
        self, statement: str, vals: Any = (), oids: Any = (), stream: Any = None
    ) -> Any:
        if stream is not None:  # COPY needs pg8000's step-by-step exchange
            return super().execute_unnamed(statement, vals, oids, stream)
        context = core.Context(statement)
        self.send_PARSE(_UNNAMED, statement, oids)
        self.send_BIND(_UNNAMED, converters.make_params(self.py_types, vals))
        self._send_message(core.DESCRIBE, _UNNAMED_PORTAL)
        self.send_EXECUTE()
        core._write(self._sock, core.SYNC_MSG)
        core._flush(self._sock)
        self.handle_messages(context)
        return context

    def handle_messages(self, context: Any) -> None:
        try:
            super().handle_messages(context)
        except TimeoutError:  # the socket timeout: left as pg8000 raises it (taskline.db: 503)
            raise
        except OSError as error:  # pg8000 lets a reset on the first read through unwrapped,
            # which SQLAlchemy would take for a bug (500) instead of a lost connection
            raise InterfaceError("network error") from error

    def close(self) -> None:
        """pg8000's close, quiet when the server is already gone (no Terminate to deliver)."""
        sock = self._sock
        try:
            super().close()
        except InterfaceError:
            # Drop the undeliverable Terminate, or the buffer retries it when collected.
            with suppress(OSError):
                sock.close()

    def ping(self) -> None:
        """One round trip that proves the connection still works (an empty query)."""
        self.execute_simple(";")


def connect(*args: Any, **kwargs: Any) -> Connection:
    """Like `pg8000.connect`, with this module's connection."""
    return Connection(*args, **kwargs)


_SERVER_VERSION = re.compile(r"(\d+)(?:\.(\d+))?")


class Dialect(PGDialect_pg8000):
    """SQLAlchemy's pg8000 dialect, with a first connection that costs one round trip.

    On a new engine's first connection SQLAlchemy asks the server for its version
    (`select pg_catalog.version()`), `current_schema()`, `standard_conforming_strings` and
    the default isolation level, one statement each, inside a transaction pg8000 opens for
    them: six statements and six round trips before the request's own. The server already
    reported its version and standard_conforming_strings at start-up (ParameterStatus
    messages, https://www.postgresql.org/docs/current/protocol-flow.html#PROTOCOL-ASYNC);
    the other two are read with one SELECT sent in autocommit (no BEGIN, no ROLLBACK). The
    values are the ones SQLAlchemy's own queries return; if the server did not report a
    parameter, SQLAlchemy's query for it runs as before.
    """

    driver = "pgwire"
    supports_statement_cache = True  # what it compiles is pg8000's dialect's, cached the same

    @classmethod
    def import_dbapi(cls) -> types.ModuleType:
        import taskline.pgwire

        return taskline.pgwire

    def initialize(self, connection: Any) -> None:
        dbapi_connection = connection.connection.dbapi_connection
        self._reported = dict(getattr(dbapi_connection, "parameter_statuses", {}))
        autocommit, dbapi_connection.autocommit = dbapi_connection.autocommit, True
        try:
            schema, isolation = connection.exec_driver_sql(
                "SELECT current_schema(), current_setting('transaction_isolation')"
            ).one()
        finally:
            dbapi_connection.autocommit = autocommit
        self._session_facts: tuple[str, Any] = (str(schema), isolation.upper())
        super().initialize(connection)  # type: ignore[no-untyped-call]

    def _get_server_version_info(self, connection: Any) -> tuple[int, ...]:
        match = _SERVER_VERSION.match(self._reported.get("server_version", ""))
        if match is None:
            version: tuple[int, ...] = super()._get_server_version_info(connection)  # type: ignore[no-untyped-call]
            return version
        return tuple(int(part) for part in match.groups() if part is not None)

    def _get_default_schema_name(self, connection: Any) -> str:  # noqa: ARG002 - the API
        return self._session_facts[0]

    def get_default_isolation_level(self, dbapi_connection: Any) -> Any:  # noqa: ARG002
        return self._session_facts[1]

    def _set_backslash_escapes(self, connection: Any) -> None:
        reported = self._reported.get("standard_conforming_strings")
        if reported is None:
            super()._set_backslash_escapes(connection)  # type: ignore[no-untyped-call]
        else:
            self._backslash_escapes = reported == "off"

    def do_ping(self, dbapi_connection: Any) -> bool:
        dbapi_connection.ping()  # the empty query, one round trip (no cursor, no BEGIN)
        return True


registry.register("postgresql.pgwire", __name__, "Dialect")


def __getattr__(name: str) -> Any:
    """The rest of the DB-API module (errors, types, paramstyle...) is pg8000's: SQLAlchemy uses
    this module in pg8000's place (`create_engine(..., module=pgwire)`)."""
    return getattr(pg8000, name)
