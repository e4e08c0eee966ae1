"""`make run` and slow or stalled clients, and what its access log shows (issue 19, item 7).

Raw sockets, as an attacker would hold them: a client that sends its headers and half a body
must not hold a container for longer than the read timeout, and the terminal must never show
a calendar secret or a link's token.
"""

from __future__ import annotations

import http.client
import json
import re
import socket
import time
from collections.abc import Iterator

import pytest

from localdev.access_log import PathRedactor, secret_routes
from localdev.template import load
from tests.support.live_server import LiveServer, live_server

READ_TIMEOUT = 2.0
CONTAINERS = 3


@pytest.fixture(scope="module")
def server(database_url: str) -> Iterator[LiveServer]:
    with live_server(
        CONTAINERS=str(CONTAINERS), REQUEST_READ_TIMEOUT_SECONDS=str(READ_TIMEOUT)
    ) as running:
        yield running


def _half_a_body(port: int) -> socket.socket:
    """A connection that sent a sign-up's headers and half its body, then nothing."""
    body = json.dumps({"email": "slow@example.com", "password": "long enough password"})
    head = (
        "POST /users HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n"
        f"Content-Length: {len(body)}\r\n\r\n"
    )
    connection = socket.create_connection(("127.0.0.1", port), timeout=30)
    connection.sendall(head.encode() + body[: len(body) // 2].encode())
    return connection


def _answer(connection: socket.socket, timeout: float) -> tuple[bytes, bool]:
    """What the server sent until it closed the connection (True) or `timeout` passed."""
    connection.settimeout(timeout)
    received = b""
    try:
        while chunk := connection.recv(65536):
            received += chunk
    except TimeoutError:
        return received, False
    return received, True


def _assert_408(received: bytes, closed: bool) -> None:
    head, _, body = received.partition(b"\r\n\r\n")
    assert head.startswith(b"HTTP/1.1 408 "), received
    assert b"Content-Type: application/problem+json" in head
    assert b"Connection: close" in head
    assert json.loads(body)["status"] == 408
    assert closed


def test_stalled_bodies_on_every_container_do_not_freeze_the_server(server: LiveServer) -> None:
    """The issue's reproduction: as many stalled requests as there are containers."""
    stalled = [_half_a_body(server.port) for _ in range(CONTAINERS)]
    try:
        time.sleep(0.5)  # each has a container, waiting for the rest of its body
        started = time.monotonic()
        other = http.client.HTTPConnection("127.0.0.1", server.port, timeout=READ_TIMEOUT + 8)
        other.request("GET", "/openapi.json?meanwhile=1")
        assert other.getresponse().status == 200
        other.close()
        assert time.monotonic() - started < READ_TIMEOUT + 3
        for connection in stalled:
            _assert_408(*_answer(connection, timeout=READ_TIMEOUT + 5))
    finally:
        for connection in stalled:
            connection.close()


def test_headers_that_never_end_are_cut_off(server: LiveServer) -> None:
    with socket.create_connection(("127.0.0.1", server.port), timeout=30) as connection:
        connection.sendall(b"GET /openapi.json HTTP/1.1\r\nHost: x\r\nX-Slow: ")
        started = time.monotonic()
        received, closed = _answer(connection, timeout=READ_TIMEOUT + 5)
        _assert_408(received, closed)
        assert time.monotonic() - started < READ_TIMEOUT + 2
    assert "Traceback" not in server.text()


def test_a_body_trickled_a_byte_at_a_time_is_cut_off_at_the_deadline(server: LiveServer) -> None:
    """The deadline is for the whole request, not for each read: trickling does not extend it."""
    with socket.create_connection(("127.0.0.1", server.port), timeout=30) as connection:
        connection.sendall(
            b"POST /users HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n"
            b"Content-Length: 1000\r\n\r\n"
        )
        started = time.monotonic()
        try:
            while time.monotonic() - started < READ_TIMEOUT + 3:
                connection.sendall(b" ")
                time.sleep(0.3)
        except OSError:
            pass  # the server closed the connection: the answer is already there
        received, closed = _answer(connection, timeout=5)
    _assert_408(received, closed)


def test_a_request_on_time_is_served_as_before(server: LiveServer) -> None:
    connection = http.client.HTTPConnection("127.0.0.1", server.port, timeout=10)
    for _ in range(3):  # keep-alive: each request has its own deadline
        connection.request("GET", "/openapi.json")
        response = connection.getresponse()
        response.read()
        assert response.status == 200
        time.sleep(READ_TIMEOUT / 2)
    connection.close()


SECRET = "s3cr3tS3cr3tS3cr3tS3cr3tS3cr3tS3cr3tS3cr3t1"  # 43 characters, as a feed's


def test_the_access_log_redacts_secrets_in_paths(server: LiveServer) -> None:
    paths = [
        f"/calendar/{SECRET}",
        f"/calendar/{SECRET}/",
        f"/unsubscribe/{SECRET}.signature",
        f"/%75nsubscribe/{SECRET}?x=1",
    ]
    for path in paths:
        connection = http.client.HTTPConnection("127.0.0.1", server.port, timeout=10)
        connection.request("GET", path)
        connection.getresponse().read()
        connection.close()
    connection = http.client.HTTPConnection("127.0.0.1", server.port, timeout=10)
    connection.request("GET", "/tasks/12345")
    connection.getresponse().read()
    connection.close()
    deadline = time.monotonic() + 10  # the access log line follows the response
    while "/tasks/12345" not in server.text() and time.monotonic() < deadline:
        time.sleep(0.05)
    log = server.text()
    assert SECRET not in log
    assert re.search(r'"GET /calendar/<redacted> HTTP/1\.1" 404', log), log
    assert re.search(r'"GET /calendar/<redacted>/ HTTP/1\.1" 404', log), log
    assert re.search(r'"GET /unsubscribe/<redacted> HTTP/1\.1" 404', log), log
    assert re.search(r'"GET /%75nsubscribe/<redacted>\?x=1 HTTP/1\.1" 404', log), log
    assert '"GET /tasks/12345 HTTP/1.1" 401' in log  # an id is not a secret


def test_the_secret_routes_come_from_the_template() -> None:
    routes = secret_routes(load())
    assert "/calendar/{feed_secret}" in routes
    assert "/unsubscribe/{token}" in routes
    assert "/tasks/{task_id}" not in routes
    assert all(re.search(r"\{(\w+_)?(secret|token)\}", route) for route in routes)


def test_a_new_secret_route_is_redacted_and_ids_are_not() -> None:
    redactor = PathRedactor(["/verify-email/{token}", "/invitations/{invitation_id}"])
    assert redactor.request_line("GET /verify-email/abc.def HTTP/1.1") == (
        "GET /verify-email/<redacted> HTTP/1.1"
    )
    assert redactor.path("/invitations/42") == "/invitations/42"
    assert redactor.path("/verify-email") == "/verify-email"
