"""Database round trips per request, counted on the socket, and recovery from dropped connections.

A round trip is a turn of the conversation with PostgreSQL: the function sends, then waits for
the answer. Reads cost one (no BEGIN/COMMIT, no ping), writes three (BEGIN, the statement,
COMMIT). A pooled connection the server dropped is replaced without the caller noticing for
reads, and for writes once it sat idle longer than DB_PING_AFTER_IDLE_SECONDS.
"""

from __future__ import annotations

import socket
import struct
from dataclasses import dataclass, field
from typing import Any

import pytest
from sqlalchemy import Engine, text

from tests.conftest import ApiClient, task_body


@dataclass
class Wire:
    round_trips: int = 0
    statements: list[str] = field(default_factory=list)
    _last: dict[int, str] = field(default_factory=dict)
    _pending: dict[int, bytes] = field(default_factory=dict)

    def clear(self) -> None:
        self.round_trips = 0
        self.statements.clear()

    def sent(self, stream: int, data: bytes) -> None:
        if self._last.get(stream) != "write":
            self.round_trips += 1
        self._last[stream] = "write"
        buffer = self._pending.get(stream, b"") + data
        while len(buffer) >= 5:  # typed messages: 1 byte type, 4 bytes length
            kind, (length,) = buffer[:1], struct.unpack("!i", buffer[1:5])
            if len(buffer) < 1 + length:
                break
            payload, buffer = buffer[5 : 1 + length], buffer[1 + length :]
            if kind == b"Q":
                self.statements.append(payload[:-1].decode())
            elif kind == b"P":
                self.statements.append(payload.split(b"\0")[1].decode())
        self._pending[stream] = buffer

    def received(self, stream: int) -> None:
        self._last[stream] = "read"


@pytest.fixture
def wire(user: ApiClient, monkeypatch: pytest.MonkeyPatch) -> Wire:
    """What the functions send to PostgreSQL from now on (the `user` fixture's are done)."""
    assert user.get("/users/me").status == 200  # the pooled connection exists
    counted = Wire()
    write, readinto = socket.SocketIO.write, socket.SocketIO.readinto

    def counting_write(io: socket.SocketIO, data: Any) -> int | None:
        counted.sent(id(io), bytes(data))
        return write(io, data)

    def counting_readinto(io: socket.SocketIO, buffer: Any) -> int | None:
        counted.received(id(io))
        return readinto(io, buffer)

    monkeypatch.setattr(socket.SocketIO, "write", counting_write)
    monkeypatch.setattr(socket.SocketIO, "readinto", counting_readinto)
    return counted


def _task_id(user: ApiClient) -> int:
    created = user.post("/tasks", json_body=task_body())
    assert created.status == 201
    task_id: int = created.json()["id"]
    return task_id


def test_a_read_by_id_is_one_round_trip_and_one_statement(user: ApiClient, wire: Wire) -> None:
    task_id = _task_id(user)
    wire.clear()
    assert user.get(f"/tasks/{task_id}").status == 200
    assert wire.round_trips == 1
    assert len(wire.statements) == 1
    assert wire.statements[0].startswith("SELECT")


@pytest.mark.parametrize("path", ["/tasks", "/tasks?limit=2&status=Done", "/users/me"])
def test_other_reads_are_one_round_trip(user: ApiClient, wire: Wire, path: str) -> None:
    _task_id(user)
    wire.clear()
    assert user.get(path).status == 200
    assert (wire.round_trips, len(wire.statements)) == (1, 1)


def test_a_write_is_begin_statement_commit(user: ApiClient, wire: Wire) -> None:
    wire.clear()
    assert user.post("/tasks", json_body=task_body()).status == 201
    assert wire.round_trips == 3
    assert [s.split()[0].upper() for s in wire.statements] == ["BEGIN", "INSERT", "COMMIT"]


def test_a_failed_write_is_rolled_back(user: ApiClient, wire: Wire, admin_engine: Engine) -> None:
    task_id = _task_id(user)
    wire.clear()
    assert user.patch(f"/tasks/{task_id + 1000}", json_body={"status": "Done"}).status == 404
    assert user.get(f"/tasks/{task_id}").json()["status"] == "To Do"
    with admin_engine.connect() as connection:
        count = connection.execute(text("SELECT count(*) FROM tasks")).scalar_one()
    assert count == 1


def _drop_the_functions_connections(admin_engine: Engine) -> None:
    """What a database restart or failover does to a warm container's pooled connection."""
    with admin_engine.connect() as connection:
        dropped = connection.execute(
            text(
                "SELECT count(pg_terminate_backend(pid)) FROM pg_stat_activity"
                " WHERE application_name = 'taskline' AND datname = current_database()"
            )
        ).scalar_one()
    assert dropped >= 1


def test_reads_survive_a_dropped_connection(user: ApiClient, admin_engine: Engine) -> None:
    task_id = _task_id(user)
    _drop_the_functions_connections(admin_engine)
    response = user.get(f"/tasks/{task_id}")
    assert response.status == 200, response.body
    assert response.json()["id"] == task_id


def test_login_survives_a_dropped_connection(client: ApiClient, admin_engine: Engine) -> None:
    email = client.sign_up()
    _drop_the_functions_connections(admin_engine)
    assert client.login(email)


def test_a_write_on_a_just_dropped_connection_is_503_then_recovers(
    user: ApiClient, admin_engine: Engine
) -> None:
    """Within DB_PING_AFTER_IDLE_SECONDS of its last use nothing pings the connection, so a
    write finds it dead: 503 with Retry-After, nothing written; the next request reconnects."""
    _task_id(user)
    _drop_the_functions_connections(admin_engine)
    failed = user.post("/tasks", json_body=task_body(description="lost"))
    assert failed.status == 503
    assert failed.header("Retry-After") == "2"
    assert user.post("/tasks", json_body=task_body(description="kept")).status == 201
    descriptions = [task["description"] for task in user.get("/tasks").json()]
    assert "lost" not in descriptions
    assert "kept" in descriptions


@pytest.fixture
def ping_always(monkeypatch: pytest.MonkeyPatch, reload_settings: None) -> None:
    monkeypatch.setenv("DB_PING_AFTER_IDLE_SECONDS", "0")


@pytest.mark.usefixtures("ping_always")
def test_writes_survive_a_connection_dropped_while_idle(
    user: ApiClient, admin_engine: Engine
) -> None:
    _task_id(user)
    _drop_the_functions_connections(admin_engine)
    assert user.post("/tasks", json_body=task_body()).status == 201


@pytest.mark.usefixtures("ping_always")
def test_an_idle_connection_costs_one_ping(user: ApiClient, wire: Wire) -> None:
    task_id = _task_id(user)
    wire.clear()
    assert user.get(f"/tasks/{task_id}").status == 200
    assert wire.round_trips == 2  # the ping (an empty query), then the read
    assert wire.statements[0].strip() in ("", ";")
