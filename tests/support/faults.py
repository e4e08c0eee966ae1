"""A loopback TCP proxy in front of the test PostgreSQL that a test can cut, blackhole and restore.

It stands in for the database going away without touching the shared test server:
- "down": the listener is closed and every session severed, as when PostgreSQL stops (new
  connections are refused, open ones see the socket close);
- "hang": connections are accepted but nothing is forwarded either way, as when the database
  host is unreachable or frozen (clients wait until their own timeouts fire);
- "stall": open sessions stay open but their traffic is held, not dropped: when the proxy is
  "up" again it is delivered late, as over a congested network;
- "up": traffic flows again, on the same port, so the app recovers without a restart.

One thread owns every socket; `set_mode` hands it the change and waits until it is applied.
"""

from __future__ import annotations

import queue
import select
import socket
import threading
from collections.abc import Callable
from typing import Literal

from localdev.rdsproxy import proxied_url, upstream_for

__all__ = ["Mode", "TcpProxy", "proxied_url", "upstream_for"]

Mode = Literal["up", "down", "hang", "stall"]
_TICK_SECONDS = 0.02


class TcpProxy:
    def __init__(self, connect_upstream: Callable[[], socket.socket]) -> None:
        self._connect_upstream = connect_upstream
        self._mode: Mode = "up"
        self._changes: queue.Queue[tuple[Mode, threading.Event]] = queue.Queue()
        self._stop = threading.Event()
        self._listener: socket.socket | None = None
        self._peers: dict[socket.socket, socket.socket] = {}  # each end -> the other end
        self._held: list[socket.socket] = []  # accepted while hanging, never answered
        self._thread = threading.Thread(target=self._run, name="db-proxy", daemon=True)
        self.port = 0
        self.connections_accepted = 0

    def __enter__(self) -> TcpProxy:
        self._listen()
        self._thread.start()
        return self

    def __exit__(self, *exc_info: object) -> None:
        self._stop.set()
        self._thread.join(timeout=5)
        self._close_all()

    def set_mode(self, mode: Mode) -> None:
        applied = threading.Event()
        self._changes.put((mode, applied))
        if not applied.wait(timeout=5):
            raise TimeoutError(f"the proxy did not switch to {mode!r}")

    def _listen(self) -> None:
        listener = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        listener.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        listener.bind(("127.0.0.1", self.port))  # port 0 first: the OS picks a free one
        listener.listen(16)
        self.port = listener.getsockname()[1]
        self._listener = listener

    def _close_all(self) -> None:
        if self._listener is not None:
            self._listener.close()
            self._listener = None
        self._sever()

    def _sever(self) -> None:
        for end in [*self._peers, *self._held]:
            end.close()
        self._peers.clear()
        self._held.clear()

    def _apply(self, mode: Mode) -> None:
        if mode == "down":
            self._close_all()
        elif self._listener is None:
            self._listen()
        if mode == "up" and self._mode == "hang":
            self._sever()  # whatever was frozen has timed out on the client side by now
        self._mode = mode

    def _run(self) -> None:
        while not self._stop.is_set():
            while not self._changes.empty():
                mode, applied = self._changes.get()
                self._apply(mode)
                applied.set()
            watched = [self._listener] if self._listener is not None else []
            if self._mode == "up":
                watched += list(self._peers)
            if not watched:
                self._stop.wait(_TICK_SECONDS)
                continue
            readable, _, _ = select.select(watched, [], [], _TICK_SECONDS)
            for end in readable:
                if end is self._listener:
                    self._accept(end)
                elif end in self._peers:
                    self._forward(end)

    def _accept(self, listener: socket.socket) -> None:
        client, _ = listener.accept()
        self.connections_accepted += 1
        if self._mode == "hang":
            self._held.append(client)
            return
        try:
            upstream = self._connect_upstream()
        except OSError:
            client.close()
            return
        for end in (client, upstream):
            end.settimeout(5)
        self._peers[client] = upstream
        self._peers[upstream] = client

    def _forward(self, end: socket.socket) -> None:
        other = self._peers[end]
        try:
            data = end.recv(65536)
            if data:
                other.sendall(data)
                return
        except OSError:
            pass
        for side in (end, other):
            self._peers.pop(side, None)
            side.close()
