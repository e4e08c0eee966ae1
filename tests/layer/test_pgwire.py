"""taskline.pgwire: pg8000 with one round trip per statement gives pg8000's own answers."""

from __future__ import annotations

import datetime as dt
from decimal import Decimal

import pg8000.dbapi
import pytest
from sqlalchemy import text
from sqlalchemy.exc import DBAPIError, IntegrityError

from taskline.db import get_engine, sqlstate, transaction
from taskline.pgwire import Connection


def test_the_engine_uses_pgwire_connections() -> None:
    with get_engine().connect() as connection:
        assert isinstance(connection.connection.dbapi_connection, Connection)


def test_values_come_back_as_pg8000_returns_them() -> None:
    with transaction() as session:
        row = session.execute(
            text(
                "SELECT CAST(:i AS bigint), CAST(:t AS text), CAST(:n AS numeric),"
                " CAST(:b AS boolean),"
                " CAST(:ts AS timestamptz), CAST(:plain AS timestamp), CAST(:none AS text),"
                " CAST(:d AS date), ARRAY[1, 2]"
            ),
            {
                "i": 2**40,
                "t": "héllo ' \" %s",
                "n": Decimal("12.50"),
                "b": True,
                "ts": dt.datetime(2030, 1, 15, 9, 0, 0, 123456, tzinfo=dt.UTC),
                "plain": dt.datetime(2030, 1, 15, 9, 0),
                "none": None,
                "d": dt.date(2030, 1, 15),
            },
        ).one()
    assert tuple(row) == (
        2**40,
        "héllo ' \" %s",
        Decimal("12.50"),
        True,
        dt.datetime(2030, 1, 15, 9, 0, 0, 123456, tzinfo=dt.UTC),
        dt.datetime(2030, 1, 15, 9, 0),
        None,
        dt.date(2030, 1, 15),
        [1, 2],
    )


def test_timestamps_python_cannot_hold_fall_back_to_pg8000() -> None:
    with transaction() as session:
        row = session.execute(
            text(
                "SELECT CAST('infinity' AS timestamptz), CAST('-infinity' AS timestamp),"
                " CAST(:ts AS timestamptz)"
            ),
            {"ts": "2030-01-15 09:00:00+05:30"},
        ).one()
    assert tuple(row) == (
        "infinity",
        "-infinity",
        dt.datetime(2030, 1, 15, 3, 30, tzinfo=dt.UTC),
    )


def test_percent_signs_and_placeholders_are_converted_per_statement() -> None:
    statement = text("SELECT '100%' || CAST(:a AS text) || '%%s' || CAST(:b AS text)")
    with transaction() as session:
        for a, b in (("x", "y"), ("1", "2")):
            assert session.execute(statement, {"a": a, "b": b}).scalar() == f"100%{a}%%s{b}"


def test_statements_without_parameters_and_many_rows() -> None:
    with transaction() as session:
        assert session.execute(text("SELECT 1")).scalar() == 1
        rows = session.execute(
            text("SELECT n FROM generate_series(1, CAST(:n AS int)) n"), {"n": 5000}
        ).scalars()
        assert list(rows) == list(range(1, 5001))


def _insert_twice() -> None:
    with transaction() as session:
        for _ in range(2):
            session.execute(
                text("INSERT INTO users (email, password_hash) VALUES (:e, 'x')"),
                {"e": "same@example.com"},
            )


def test_server_errors_keep_their_sqlstate_and_leave_the_connection_usable() -> None:
    with pytest.raises(IntegrityError) as raised:
        _insert_twice()
    assert sqlstate(raised.value) == "23505"
    with pytest.raises(DBAPIError) as raised_again, transaction() as session:
        session.execute(text("SELECT CAST(:x AS int) / 0"), {"x": 1})
    assert sqlstate(raised_again.value) == "22012"
    with pytest.raises(DBAPIError) as syntax, transaction() as session:
        session.execute(text("SELEC CAST(:x AS int)"), {"x": 1})
    assert sqlstate(syntax.value) == "42601"
    with transaction() as session:
        assert session.execute(text("SELECT CAST(:x AS int) + 1"), {"x": 41}).scalar() == 42


def test_without_a_tls_context_no_tls_is_attempted(monkeypatch: pytest.MonkeyPatch) -> None:
    """DB_SSL_MODE=disable means plain: no default TLS context (the system CA store) is built
    and no SSLRequest costs a round trip, where pg8000 would try TLS first."""
    import socket
    import ssl
    import struct

    from taskline.db import get_engine

    def refuse(*args: object, **kwargs: object) -> ssl.SSLContext:
        raise AssertionError("a TLS context was built")

    sent: list[bytes] = []
    sendall = socket.socket.sendall

    def recording_sendall(sock: socket.socket, data: bytes, *args: int) -> None:
        sent.append(bytes(data))
        sendall(sock, data, *args)

    monkeypatch.setattr(ssl, "create_default_context", refuse)
    monkeypatch.setattr(socket.socket, "sendall", recording_sendall)
    engine = get_engine()
    engine.dispose()
    with engine.connect() as connection:
        assert connection.execute(text("SELECT 1")).scalar_one() == 1
    assert struct.pack("!ii", 8, 80877103) not in b"".join(sent)  # no SSLRequest
    # pg8000 itself, given no context, would have tried TLS:
    args, kwargs = engine.dialect.create_connect_args(engine.url)
    with pytest.raises(AssertionError, match="a TLS context was built"):
        pg8000.dbapi.connect(*args, **kwargs)
