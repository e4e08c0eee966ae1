"""What the functions send to PostgreSQL, read off the socket whatever the driver code above it.

A round trip is a turn of the conversation: the client writes after having read (or for the
first time). Statements are taken from the Query (`Q`) and Parse (`P`) messages sent, so BEGIN,
COMMIT and pings count like any other statement.
"""

from __future__ import annotations

import socket
import struct
from dataclasses import dataclass, field
from typing import Any

import pytest

_PROTOCOL_3_0 = struct.pack("!i", 196608)


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
        if stream not in self._pending and buffer[4:8] == _PROTOCOL_3_0:
            # A new connection's start-up packet, alone, has no type byte: length, protocol.
            (length,) = struct.unpack("!i", buffer[:4])
            buffer = buffer[length:]
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


def listen(monkeypatch: pytest.MonkeyPatch) -> Wire:
    """Count from now on, until the test ends. Only use it while the functions alone talk to
    the database: the tests' own connections (admin_engine) would be counted too."""
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
