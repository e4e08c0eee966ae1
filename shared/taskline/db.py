"""The database engine (one per container, created lazily) and the unit of work."""

from __future__ import annotations

import ssl
from collections.abc import Iterator
from contextlib import contextmanager
from functools import lru_cache
from pathlib import Path
from typing import Any

from aws_lambda_powertools import Logger
from sqlalchemy import URL, Engine, create_engine, event, make_url
from sqlalchemy.exc import DBAPIError
from sqlalchemy.orm import Session

from taskline.errors import DatabaseUnavailable
from taskline.settings import Settings, get_settings

# SQLSTATE classes and codes that mean "the database is not there for us right now".
_UNAVAILABLE_SQLSTATE_PREFIXES = ("08", "53", "57P")
_QUERY_CANCELED = "57014"  # statement_timeout fired
# The server (or RDS Proxy) refused the user name or password: the secret may have rotated.
_AUTHENTICATION_FAILED = frozenset({"28P01", "28000"})

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


def _as_user(cparams: dict[str, Any], credentials: Any) -> dict[str, Any]:
    return {
        **cparams,
        "user": credentials.username,
        "password": credentials.password.get_secret_value(),
    }


def database_url(settings: Settings) -> URL:
    """DATABASE_URL as a pg8000 URL, or DB_HOST/DB_PORT/DB_NAME without credentials."""
    if settings.database_url is not None:
        return sqlalchemy_url(settings.database_url.get_secret_value())
    return URL.create(
        "postgresql+pg8000", host=settings.db_host, port=settings.db_port, database=settings.db_name
    )


def build_engine(settings: Settings) -> Engine:
    """An engine holding one pooled connection: a Lambda container serves one request at a time.

    With DB_HOST (AWS), the credentials are not part of the URL: they are fetched from
    Secrets Manager when a connection is opened, so a rotated password is picked up.
    """
    connect_args: dict[str, Any] = {
        # The socket timeout bounds connecting and every read, so it must outlast a statement.
        "timeout": settings.db_connect_timeout_seconds + settings.db_statement_timeout_ms / 1000,
        "application_name": "taskline",
        # Sent in the startup packet, so they cost no extra round trip.
        "startup_params": {
            "TimeZone": "UTC",
            "statement_timeout": str(settings.db_statement_timeout_ms),
        },
    }
    context = ssl_context(settings.db_ssl_mode, root_cert(settings))
    if context is not None:
        connect_args["ssl_context"] = context
    engine = create_engine(
        database_url(settings),
        connect_args=connect_args,
        pool_size=settings.db_pool_size,
        max_overflow=0,
        pool_timeout=settings.db_connect_timeout_seconds,
        pool_pre_ping=True,
        # Errors are logged; their SQL parameters can hold emails and password hashes.
        hide_parameters=True,
    )
    if settings.database_url is None:
        event.listen(engine, "do_connect", _connect_with_stored_credentials)
    return engine


@lru_cache(maxsize=1)
def get_engine() -> Engine:
    """The container's engine, built on first use."""
    return build_engine(get_settings())


def close_connections() -> None:
    """Drop the pooled connections (if an engine exists) without discarding the engine: used
    after a SnapStart restore, when connections opened before the snapshot are dead."""
    if get_engine.cache_info().currsize:
        get_engine().dispose(close=False)


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


@contextmanager
def transaction() -> Iterator[Session]:
    """A session inside one transaction: committed when the block ends, rolled back on error.

    Repositories only flush; this is the one place that commits.
    """
    try:
        with Session(get_engine(), expire_on_commit=False) as session, session.begin():
            yield session
    except DBAPIError as error:
        if is_unavailable(error):
            raise DatabaseUnavailable from error
        raise
    except TimeoutError as error:  # waiting for a pooled connection or the socket timed out
        raise DatabaseUnavailable from error
    except ssl.SSLError as error:
        # The TLS handshake failed: the server's certificate did not verify (wrong CA, wrong
        # host name) or no protocol was acceptable. Unreachable for us, and worth a log line.
        logger.error("TLS to the database failed", extra={"error": str(error)})
        raise DatabaseUnavailable from error
