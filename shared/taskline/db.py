"""The database engine (one per container, created lazily) and the unit of work."""

from __future__ import annotations

import ssl
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from contextvars import ContextVar
from functools import lru_cache, wraps
from pathlib import Path
from typing import Any

from aws_lambda_powertools import Logger
from sqlalchemy import URL, Engine, create_engine, event, make_url
from sqlalchemy.engine import ExceptionContext
from sqlalchemy.exc import DBAPIError, DisconnectionError
from sqlalchemy.orm import Session

from taskline import pgwire
from taskline.errors import AccountGone, DatabaseResuming, DatabaseUnavailable
from taskline.settings import Settings, get_settings

# SQLSTATE classes and codes that mean "the database is not there for us right now".
_UNAVAILABLE_SQLSTATE_PREFIXES = ("08", "53", "57P")
_QUERY_CANCELED = "57014"  # statement_timeout fired
# The server (or RDS Proxy) refused the user name or password: the secret may have rotated.
_AUTHENTICATION_FAILED = frozenset({"28P01", "28000"})
# A row names a parent that is gone (pg8000 reports it as ProgrammingError or IntegrityError, so
# match this code): e.g. a token that outlived its account.
FOREIGN_KEY_VIOLATION = "23503"
# Foreign keys are named fk_<table>_<column>_<referred table> (models.NAMING_CONVENTION): these
# name users.id, and violating one means the account was deleted meanwhile.
_FOREIGN_KEY_TO_USERS_SUFFIX = "_users"

# What every unit of work of this request checks first, before its own statements (None: nothing).
# The resolver sets it per request: an account route's must find the token's sign-in still live
# (taskline.api.auth). One context per thread, so concurrent requests in one process (make run)
# do not see each other's.
UnitOfWorkCheck = Callable[[Session, bool], None]
_unit_of_work_check: ContextVar[UnitOfWorkCheck | None] = ContextVar(
    "taskline_unit_of_work_check", default=None
)

logger = Logger(child=True)

# Trust anchors for TLS to AWS: the Amazon RDS CA bundle (DB instances) plus the Amazon Trust
# Services roots that sign RDS Proxy's ACM certificates (built by `make ca-bundle`).
AWS_CA_BUNDLE = Path(__file__).resolve().parent / "certs" / "aws-rds-ca-bundle.pem"


def sqlalchemy_url(database_url: str) -> URL:
    """Turn a libpq-style URL into a pg8000 one; `?host=/dir` becomes pg8000's `unix_sock`,
    `?host=name` the TCP host."""
    url = make_url(database_url).set(drivername="postgresql+pg8000")
    query = dict(url.query)
    host = query.pop("host", None)
    if isinstance(host, str) and host.startswith("/"):
        query["unix_sock"] = f"{host}/.s.PGSQL.{url.port or 5432}"
        url = url._replace(host=None, port=None)  # URL.set() cannot clear a field
    elif isinstance(host, str) and host:
        url = url.set(host=host)  # libpq lets ?host= name a TCP host too
    return url.set(query=query)


def root_cert(settings: Settings) -> str | None:
    """The CA file that verifies the server: DB_SSL_ROOT_CERT, else the shipped AWS bundle when
    connecting by DB_HOST (AWS), else None (the system trust store, for DATABASE_URL)."""
    if settings.db_ssl_root_cert:
        return settings.db_ssl_root_cert
    if settings.database_url is None:
        return str(AWS_CA_BUNDLE)
    return None


@lru_cache(maxsize=4)
def ssl_context(mode: str, cafile: str | None) -> ssl.SSLContext | None:
    """The TLS context for `mode`, built once per container and shared by every connection.

    With a CA file, that file is the only trust anchor (the system store is not loaded).
    """
    if mode == "disable":
        return None
    context = ssl.create_default_context(cafile=cafile)
    context.minimum_version = ssl.TLSVersion.TLSv1_2
    if mode == "require":
        # Encrypt without verifying the peer, like libpq's sslmode=require.
        context.check_hostname = False
        context.verify_mode = ssl.CERT_NONE
    return context


def _connect_with_stored_credentials(
    dialect: Any, _record: Any, cargs: tuple[Any, ...], cparams: dict[str, Any]
) -> Any:
    """Open a DBAPI connection as the user in DB_SECRET_ARN (read through the secret store).

    If the server refuses the cached password, the secret is read again and, when it changed
    (rotation), the connection is retried once with the new one.
    """
    from taskline import secret_store

    credentials = secret_store.database_credentials()
    try:
        return dialect.connect(*cargs, **_as_user(cparams, credentials))
    except dialect.loaded_dbapi.Error as error:
        if raw_sqlstate(error) not in _AUTHENTICATION_FAILED:
            raise
        fresh = secret_store.database_credentials(refresh=True)
        if fresh == credentials:
            raise
    return dialect.connect(*cargs, **_as_user(cparams, fresh))


def _connect_with_iam_token(
    dialect: Any, _record: Any, cargs: tuple[Any, ...], cparams: dict[str, Any]
) -> Any:
    """Open a DBAPI connection with IAM database authentication: a fresh token per connection.

    The token is a SigV4-presigned `connect` URL for this host, port and user, signed locally
    with the function's own credentials (no network call, so no endpoint is needed on the
    request path); it is valid for 15 minutes and used only while logging in: an open session
    outlives it.
    https://docs.aws.amazon.com/AmazonRDS/latest/AuroraUserGuide/UsingWithRDS.IAMDBAuth.Connecting.html
    https://docs.aws.amazon.com/AmazonRDS/latest/AuroraUserGuide/UsingWithRDS.IAMDBAuth.html
    """
    settings = get_settings()
    user = settings.db_user or cparams.get("user")
    host = cparams.get("host") or settings.db_host
    port = int(cparams.get("port") or settings.db_port)
    token = rds_client().generate_db_auth_token(DBHostname=host, Port=port, DBUsername=user)
    return dialect.connect(*cargs, **{**cparams, "user": user, "password": token})


@lru_cache(maxsize=1)
def rds_client() -> Any:
    """The container's RDS client, created on first use (only its local signer is used)."""
    import boto3

    return boto3.client("rds")


def _as_user(cparams: dict[str, Any], credentials: Any) -> dict[str, Any]:
    return {
        **cparams,
        "user": credentials.username,
        "password": credentials.password.get_secret_value(),
    }


def database_url(settings: Settings) -> URL:
    """DATABASE_URL, or DB_HOST/DB_PORT/DB_NAME without credentials, as a URL of pgwire's
    dialect (pg8000's, with fewer round trips on a new connection), or of stock pg8000's when
    pgwire is off (`pgwire.ENABLED`: installed versions it was not verified against)."""
    if settings.database_url is not None:
        url = sqlalchemy_url(settings.database_url.get_secret_value())
        return url.set(drivername=pgwire.DRIVERNAME)
    return URL.create(
        pgwire.DRIVERNAME, host=settings.db_host, port=settings.db_port, database=settings.db_name
    )


def socket_timeout_seconds(settings: Settings) -> float:
    """pg8000's socket timeout for the API functions: it bounds connecting and every read, so
    it must outlast a statement (and RDS Proxy's borrow wait before it: the template checks)."""
    return settings.db_connect_timeout_seconds + settings.db_statement_timeout_ms / 1000


def build_engine(settings: Settings, *, socket_timeout: float | None = None) -> Engine:
    """An engine holding one pooled connection: a Lambda container serves one request at a time.

    With DB_HOST (AWS), the credentials are not part of the URL: they are fetched from
    Secrets Manager when a connection is opened, so a rotated password is picked up.

    Connections are `taskline.pgwire`'s (one round trip per statement), or stock pg8000's, with
    one warning logged, when pgwire is off (`pgwire.ENABLED`). Connecting is bounded by
    DB_CONNECT_TIMEOUT_SECONDS; once connected, reads by `socket_timeout`, else
    `socket_timeout_seconds(settings)` (the deploy-time migrations wait longer). Instead of a
    ping before every checkout (SQLAlchemy's pool_pre_ping, one more round trip per request), a
    connection is pinged only after it sat idle for DB_PING_AFTER_IDLE_SECONDS, which is when a
    Lambda container was frozen long enough for the server or the network to drop it; a dead one is
    replaced before use. Reads that meet a connection dropped sooner are retried once
    (`retry_if_disconnected`); writes answer 503 once and the next request reconnects.
    """
    connect_args: dict[str, Any] = {
        # While connecting, the socket timeout is the connect bound (a resuming Aurora instance
        # holds a new connection); once connected it becomes one that outlasts a statement
        # (`_bound_connecting`).
        "timeout": settings.db_connect_timeout_seconds,
        "application_name": "taskline",
        # RDS Proxy refuses every startup-packet option but a few (TimeZone is one of them) with
        # FATAL 0A000, and a plain SET would pin the session to one database connection; so
        # statement_timeout is a default of the role (`taskline.migrate.set_session_defaults`,
        # applied by the migrations), which costs no round trip and pins nothing.
        # https://docs.aws.amazon.com/AmazonRDS/latest/UserGuide/rds-proxy-connecting.html#rds-proxy-connecting-postgresql
        "startup_params": {"TimeZone": "UTC"},
    }
    # No context: a plain connection, never an SSLRequest (pg8000 would attempt TLS on None).
    connect_args["ssl_context"] = ssl_context(settings.db_ssl_mode, root_cert(settings)) or False
    if not pgwire.ENABLED:
        logger.warning(pgwire.FALLBACK_WARNING, extra={"unverified": pgwire.UNVERIFIED})
    engine = create_engine(
        database_url(settings),
        connect_args=connect_args,
        pool_size=settings.db_pool_size,
        max_overflow=0,
        pool_timeout=settings.db_connect_timeout_seconds,
        # Errors are logged; their SQL parameters can hold emails and password hashes.
        hide_parameters=True,
        module=pgwire.DBAPI,  # pg8000, with pgwire's connections (or without, when it is off)
    )
    if settings.db_iam_auth or settings.database_url is None:
        event.listen(engine, "do_connect", _bound_connecting(settings))
    event.listen(
        engine,
        "connect",
        _timeout_after_connecting(socket_timeout or socket_timeout_seconds(settings)),
    )
    event.listen(engine, "handle_error", _connect_timed_out(settings))
    _ping_when_idle(engine, settings.db_ping_after_idle_seconds)
    event.listen(engine, "handle_error", _discard_after_timeout)
    event.listen(engine, "handle_error", _log_refused_connection)
    return engine


def _bound_connecting(settings: Settings) -> Callable[..., Any]:
    """The do_connect hook: log in (IAM token, stored credentials, or the URL's), and tell a
    connect that ran out of time (DB_CONNECT_TIMEOUT_SECONDS) from other failures.

    Aurora Serverless v2 holds a new connection while a paused instance resumes, about 15 s
    and up to 30 s after a long pause (https://docs.aws.amazon.com/AmazonRDS/latest/AuroraUserGuide/aurora-serverless-v2-auto-pause.html#auto-pause-how-it-works);
    the HTTP API answers 503 itself after 30 s, and a Lambda timeout would be a 500. So the wait
    is bounded here and a timed-out connect becomes DatabaseResuming: 503 with Retry-After.
    Nothing of the request ran yet, so a retry (same Idempotency-Key) writes once.
    """
    login = _connect_with_iam_token if settings.db_iam_auth else _connect_with_stored_credentials

    def connect(dialect: Any, record: Any, cargs: tuple[Any, ...], cparams: dict[str, Any]) -> Any:
        try:
            return login(dialect, record, cargs, cparams)
        except TimeoutError as error:
            raise DatabaseResuming(settings.db_connect_retry_after_seconds) from error
        except dialect.loaded_dbapi.InterfaceError as error:
            if isinstance(error.__cause__ or error.__context__, TimeoutError):
                raise DatabaseResuming(settings.db_connect_retry_after_seconds) from error
            raise

    return connect


def _connect_timed_out(settings: Settings) -> Callable[[ExceptionContext], None]:
    """The same for a connect without a do_connect hook (DATABASE_URL with a password)."""

    def handle(context: ExceptionContext) -> None:
        error = context.original_exception
        connecting = context.connection is None and not context.is_pre_ping
        if connecting and isinstance(error.__cause__ or error.__context__, TimeoutError):
            raise DatabaseResuming(settings.db_connect_retry_after_seconds) from error

    return handle


def _timeout_after_connecting(timeout: float) -> Callable[[Any, Any], None]:
    # Once logged in, the socket timeout bounds every read, so it must outlast a statement
    # (socket_timeout_seconds; the deploy-time migrations' own, longer one).

    def widen(dbapi_connection: Any, _record: Any) -> None:
        sock = getattr(dbapi_connection, "_usock", None)  # pg8000's socket (TLS or not)
        if sock is not None:
            sock.settimeout(timeout)

    return widen


# The server or RDS Proxy refused the connection for a reason no retry can fix: an option or
# feature it does not support (0A000), or the login (class 28). Left to surface as a 500, which
# the functions' error alarms count; the log line says what to fix.
_CONFIGURATION_REFUSALS = ("0A000", "28")


def _log_refused_connection(context: ExceptionContext) -> None:
    code = raw_sqlstate(context.original_exception)
    if code is None or not code.startswith(_CONFIGURATION_REFUSALS):
        return
    details = context.original_exception.args[0]
    logger.error(
        "The database refused the connection: fix the configuration",
        extra={"sqlstate": code, "database_message": details.get("M")},
    )


def _discard_after_timeout(context: ExceptionContext) -> None:
    """A socket timeout leaves the conversation mid-way: the timed-out statement's answer may
    still arrive, and must never be read as the next statement's. Python's socket refuses any
    read after a timeout, so the connection could only fail on its next use; it is discarded
    now instead, like a lost one, which spares the next request that failed round trip. The
    TimeoutError itself goes on (503, and no retry: the time is already spent)."""
    if isinstance(context.original_exception, TimeoutError):
        context.is_disconnect = True


_LAST_USED = "taskline_last_used"


def _idle_seconds(last_used: tuple[float, float]) -> float:
    # The wall clock keeps counting while a Lambda sandbox is frozen, the monotonic one may not;
    # the monotonic one never jumps back. The longer of the two is the safer answer.
    monotonic, wall = last_used
    return max(time.monotonic() - monotonic, time.time() - wall)


def _ping_when_idle(engine: Engine, ping_after_idle: float) -> None:
    @event.listens_for(engine, "checkout")
    def ping_if_idle(dbapi_connection: Any, record: Any, _proxy: Any) -> None:
        last_used = record.info.get(_LAST_USED)  # none yet on a connection just made
        if last_used is None or _idle_seconds(last_used) < ping_after_idle:
            return
        try:
            _ping(engine.dialect, dbapi_connection)
        except Exception as error:  # dead in any way: the pool replaces it and checks out again
            raise DisconnectionError from error

    @event.listens_for(engine, "checkin")
    def stamp(_dbapi_connection: Any, record: Any) -> None:
        record.info[_LAST_USED] = (time.monotonic(), time.time())


def _ping(dialect: Any, dbapi_connection: Any) -> None:
    """One round trip proving the connection works, outside any transaction (in a transaction
    pg8000 would send BEGIN first, and the pooled connection would stay in it)."""
    autocommit, dbapi_connection.autocommit = dbapi_connection.autocommit, True
    try:
        dialect.do_ping(dbapi_connection)  # pgwire's: the empty query; pg8000's: `;` by cursor
    finally:
        dbapi_connection.autocommit = autocommit


@lru_cache(maxsize=1)
def get_engine() -> Engine:
    """The container's engine, built on first use."""
    return build_engine(get_settings())


def close_connections() -> None:
    """Drop the pooled connections (if an engine exists) without discarding the engine: used
    after a SnapStart restore, when connections opened before the snapshot are dead."""
    if get_engine.cache_info().currsize:
        get_engine().dispose(close=False)


def check_every_unit_of_work(check: UnitOfWorkCheck | None) -> None:
    """Run `check(session, writes)` at the start of each transaction and read of this request
    (or context), before anything else; it raises to refuse the unit of work. `writes` is True
    in a transaction: the check can lock what it relies on until the commit."""
    _unit_of_work_check.set(check)


def _run_check(session: Session, *, writes: bool) -> None:
    check = _unit_of_work_check.get()
    if check is not None:
        check(session, writes)


def raw_sqlstate(error: BaseException) -> str | None:
    """The PostgreSQL SQLSTATE code carried by a pg8000 exception, if any."""
    details = error.args[0] if error.args else None
    if isinstance(details, dict):
        code = details.get("C")
        return code if isinstance(code, str) else None
    return None


def sqlstate(error: DBAPIError) -> str | None:
    """The PostgreSQL SQLSTATE code carried by a (wrapped) pg8000 error, if any."""
    return raw_sqlstate(error.orig) if error.orig is not None else None


def is_unavailable(error: DBAPIError) -> bool:
    """True when the error says the database is down, unreachable or too slow, not that we erred."""
    if error.connection_invalidated:
        return True
    code = sqlstate(error)
    if code is None:
        # pg8000 raises InterfaceError without a SQLSTATE for socket failures and timeouts.
        return error.orig is not None and type(error.orig).__name__ == "InterfaceError"
    return code == _QUERY_CANCELED or code.startswith(_UNAVAILABLE_SQLSTATE_PREFIXES)


def _names_a_deleted_account(error: DBAPIError) -> bool:
    """A foreign-key violation on a reference to users.id: the one place it becomes a 401."""
    if sqlstate(error) != FOREIGN_KEY_VIOLATION:
        return False
    details = error.orig.args[0] if error.orig is not None and error.orig.args else None
    constraint = details.get("n") if isinstance(details, dict) else None
    return isinstance(constraint, str) and constraint.endswith(_FOREIGN_KEY_TO_USERS_SUFFIX)


@contextmanager
def _unavailable_as_503() -> Iterator[None]:
    try:
        yield
    except DBAPIError as error:
        if is_unavailable(error):
            raise DatabaseUnavailable from error
        if _names_a_deleted_account(error):
            raise AccountGone from error
        raise
    except TimeoutError as error:  # waiting for a pooled connection or the socket timed out
        raise DatabaseUnavailable from error
    except ssl.SSLError as error:
        # The TLS handshake failed: the server's certificate did not verify (wrong CA, wrong
        # host name) or no protocol was acceptable. Unreachable for us, and worth a log line.
        logger.error("TLS to the database failed", extra={"error": str(error)})
        raise DatabaseUnavailable from error


@contextmanager
def transaction() -> Iterator[Session]:
    """A session inside one transaction: committed when the block ends, rolled back on error.

    Repositories only flush; this is the one place that commits. The transaction is opened
    before the block runs (`_begin`), on a connection that answered.
    """
    with _unavailable_as_503(), Session(get_engine(), expire_on_commit=False) as session:
        _begin(session)
        _run_check(session, writes=True)
        yield session  # an exception here leaves the block: closing the session rolls back
        session.commit()


def _begin(session: Session) -> None:
    """Send BEGIN now, the round trip pg8000 would otherwise send before the first statement.

    It is also the liveness check writes get for free: if the pooled connection turns out to be
    dead (the server restarted or dropped it since the last request, within
    DB_PING_AFTER_IDLE_SECONDS), nothing of this unit of work has been sent yet, so the session
    lets go of it and begins once more on a fresh connection.
    """
    for attempt in (1, 2):
        connection = session.connection()
        dbapi_connection: Any = connection.connection.dbapi_connection
        dbapi_connection.autocommit = True  # or pg8000 would send its own BEGIN first
        try:
            connection.exec_driver_sql("BEGIN")
            return
        except DBAPIError as error:
            if attempt == 2 or not error.connection_invalidated:
                raise
            session.rollback()  # releases the dead connection; the pool opens a new one
        finally:
            dbapi_connection.autocommit = False


@contextmanager
def read_only() -> Iterator[Session]:
    """A session for use cases that only read, outside any transaction (autocommit).

    A single SELECT sees one consistent snapshot on its own, so BEGIN and COMMIT around it are
    two round trips for nothing: a read by key here is one round trip. Use `transaction()` for
    anything that writes, or that needs several statements to see the same snapshot.
    """
    with _unavailable_as_503(), Session(get_engine()) as session:
        dbapi_connection: Any = session.connection().connection.dbapi_connection
        dbapi_connection.autocommit = True  # pg8000: no implicit BEGIN before the statement
        try:
            _run_check(session, writes=False)
            yield session
        finally:
            dbapi_connection.autocommit = False  # back to the pool as the pool expects it


def retry_if_disconnected[**P, R](use_case: Callable[P, R]) -> Callable[P, R]:
    """Run a read-only use case once more if its pooled connection turned out to be dead.

    Only for use cases that change nothing (running them twice is harmless); the second run
    gets a fresh connection, as the pool has discarded the dead one.
    """

    @wraps(use_case)
    def run(*args: P.args, **kwargs: P.kwargs) -> R:
        try:
            return use_case(*args, **kwargs)
        except DatabaseUnavailable as error:
            cause = error.__cause__
            if isinstance(cause, DBAPIError) and cause.connection_invalidated:
                return use_case(*args, **kwargs)
            raise

    return run
