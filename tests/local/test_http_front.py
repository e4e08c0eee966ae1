"""`make run`'s HTTP front over raw sockets: request framing (RFC 9112 section 6.3), the Host
header, API Gateway's limits, keep-alive and containers, as API Gateway would answer them.

Every refusal is the contract's problem+json and closes the connection, so nothing sent after
an ambiguous message is ever read as a request.
"""

from __future__ import annotations

import http.client
import json
import re
import socket
import time
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any
from urllib.parse import urlencode

import pytest

from tests.support.live_server import LiveServer, live_server

PROBLEM = "application/problem+json"


@dataclass
class Raw:
    status: int
    headers: dict[str, str]
    body: bytes

    def json(self) -> Any:
        return json.loads(self.body)


def _parse(data: bytes) -> list[Raw]:
    """Every complete response in `data`, in order (Content-Length framed, as the front sends)."""
    replies: list[Raw] = []
    while data:
        head, separator, rest = data.partition(b"\r\n\r\n")
        if not separator:
            break
        lines = head.decode("latin-1").split("\r\n")
        status = int(lines[0].split(" ", 2)[1])
        headers = {}
        for line in lines[1:]:
            name, _, value = line.partition(":")
            headers[name.strip().lower()] = value.strip()
        length = int(headers.get("content-length", "0"))
        replies.append(Raw(status, headers, rest[:length]))
        data = rest[length:]
    return replies


def exchange(port: int, data: bytes, *, half_close: bool = True) -> tuple[list[Raw], bool]:
    """Send `data` on one connection; every response read, and whether the server closed it."""
    with socket.create_connection(("127.0.0.1", port), timeout=10) as connection:
        connection.sendall(data)
        if half_close:
            connection.shutdown(socket.SHUT_WR)
        received = b""
        closed = False
        connection.settimeout(3)
        try:
            while True:
                chunk = connection.recv(65536)
                if not chunk:
                    closed = True
                    break
                received += chunk
        except TimeoutError:
            pass
    return _parse(received), closed


def assert_refused(replies: list[Raw], status: int) -> None:
    assert [reply.status for reply in replies] == [status], replies
    reply = replies[0]
    assert reply.headers["content-type"] == PROBLEM
    assert reply.headers["connection"] == "close"
    problem = reply.json()
    assert problem["status"] == status
    assert set(problem) >= {"type", "title", "status", "detail"}


@pytest.fixture(scope="module")
def server(database_url: str) -> Iterator[LiveServer]:
    with live_server(CONTAINERS="2") as running:
        yield running


def signup_body(email: str) -> bytes:
    return json.dumps({"email": email, "password": "long enough password"}).encode()


def request(
    method: str, path: str, headers: list[tuple[str, str]], body: bytes = b"", version: str = "1.1"
) -> bytes:
    head = f"{method} {path} HTTP/{version}\r\n" + "".join(f"{k}: {v}\r\n" for k, v in headers)
    return head.encode("latin-1") + b"\r\n" + body


def chunked(body: bytes, size: int = 7) -> bytes:
    parts = [body[i : i + size] for i in range(0, len(body), size)]
    return b"".join(f"{len(p):x}\r\n".encode() + p + b"\r\n" for p in parts) + b"0\r\n\r\n"


def test_a_chunked_body_is_read(server: LiveServer) -> None:
    data = request(
        "POST",
        "/users",
        [("Host", "x"), ("Content-Type", "application/json"), ("Transfer-Encoding", "chunked")],
        chunked(signup_body("chunked@example.com")),
    )
    replies, _ = exchange(server.port, data)
    assert [r.status for r in replies] == [201], replies
    assert replies[0].json()["email"] == "chunked@example.com"


def test_content_length_with_chunked_is_refused_and_nothing_is_smuggled(
    server: LiveServer,
) -> None:
    body = signup_body("smuggled@example.com")
    smuggled = request(
        "POST",
        "/users",
        [("Host", "x"), ("Content-Type", "application/json"), ("Content-Length", str(len(body)))],
        body,
    )
    data = request(
        "POST",
        "/users",
        [
            ("Host", "x"),
            ("Content-Type", "application/json"),
            ("Content-Length", "0"),
            ("Transfer-Encoding", "chunked"),
        ],
        b"0\r\n\r\n" + smuggled,
    )
    replies, closed = exchange(server.port, data)
    assert_refused(replies, 400)
    assert closed
    # The request hidden in the body never ran: the address is still free.
    again, _ = exchange(server.port, smuggled)
    assert [r.status for r in again] == [201]


@pytest.mark.parametrize("value", ["abc", "-1", "+5", "0x10", "5 5", "5,5", "", "1e3"])
def test_a_malformed_content_length_is_400(server: LiveServer, value: str) -> None:
    data = request("POST", "/users", [("Host", "x"), ("Content-Length", value)], b"12345")
    replies, closed = exchange(server.port, data)
    assert_refused(replies, 400)
    assert closed


def test_conflicting_content_lengths_are_400(server: LiveServer) -> None:
    data = request(
        "POST",
        "/users",
        [("Host", "x"), ("Content-Length", "5"), ("Content-Length", "6")],
        b"123456",
    )
    assert_refused(exchange(server.port, data)[0], 400)


@pytest.mark.parametrize(
    "transfer_encoding", ["gzip", "chunked, gzip", "chunked, chunked", "identity, chunked"]
)
def test_a_transfer_encoding_without_a_final_chunked_is_400(
    server: LiveServer, transfer_encoding: str
) -> None:
    data = request(
        "POST", "/users", [("Host", "x"), ("Transfer-Encoding", transfer_encoding)], b"0\r\n\r\n"
    )
    assert_refused(exchange(server.port, data)[0], 400)


@pytest.mark.parametrize(
    "body", [b"zz\r\nhello\r\n0\r\n\r\n", b"5\r\nhelloXX0\r\n\r\n", b"-1\r\n\r\n"]
)
def test_a_malformed_chunk_is_400(server: LiveServer, body: bytes) -> None:
    headers = [
        ("Host", "x"),
        ("Content-Type", "application/json"),
        ("Transfer-Encoding", "chunked"),
    ]
    assert_refused(exchange(server.port, request("POST", "/users", headers, body))[0], 400)


def test_chunked_over_http_1_0_is_400(server: LiveServer) -> None:
    data = request("POST", "/users", [("Transfer-Encoding", "chunked")], b"0\r\n\r\n", "1.0")
    assert_refused(exchange(server.port, data)[0], 400)


def test_http_1_1_without_host_or_with_two_is_400(server: LiveServer) -> None:
    assert_refused(exchange(server.port, request("GET", "/openapi.json", []))[0], 400)
    two = request("GET", "/openapi.json", [("Host", "a"), ("Host", "b")])
    assert_refused(exchange(server.port, two)[0], 400)


def test_obsolete_line_folding_is_400(server: LiveServer) -> None:
    data = b"GET /openapi.json HTTP/1.1\r\nHost: x\r\nX-A: 1\r\n  folded\r\n\r\n"
    assert_refused(exchange(server.port, data)[0], 400)


def test_one_header_over_the_limit_is_431(server: LiveServer) -> None:
    data = request("GET", "/openapi.json", [("Host", "x"), ("X-Big", "a" * 11000)])
    assert_refused(exchange(server.port, data)[0], 431)


def test_request_line_and_headers_over_10240_bytes_together_are_431(server: LiveServer) -> None:
    headers = [("Host", "x"), ("X-One", "a" * 5000), ("X-Two", "b" * 5000), ("X-Three", "c" * 300)]
    assert_refused(exchange(server.port, request("GET", "/openapi.json", headers))[0], 431)
    # Just under the limit is served.
    fits = [("Host", "x"), ("X-One", "a" * 5000), ("X-Two", "b" * 5000)]
    replies, _ = exchange(server.port, request("GET", "/openapi.json", fits))
    assert [r.status for r in replies] == [200]


def test_a_request_line_over_10240_bytes_is_414_and_one_under_is_served(server: LiveServer) -> None:
    long_line = request("GET", "/openapi.json?pad=" + "a" * 10300, [("Host", "x")])
    assert_refused(exchange(server.port, long_line)[0], 414)
    # Longer than gunicorn's own default cap (8190), within API Gateway's.
    served = request("GET", "/openapi.json?pad=" + "a" * 9000, [("Host", "x")])
    assert [r.status for r in exchange(server.port, served)[0]] == [200]


def test_a_body_over_10_mb_is_413_before_it_is_read(server: LiveServer) -> None:
    headers = [("Host", "x"), ("Content-Type", "application/json")]
    announced = request("POST", "/users", [*headers, ("Content-Length", str(10 * 1024 * 1024 + 1))])
    assert_refused(exchange(server.port, announced, half_close=False)[0], 413)


def test_a_chunked_body_over_10_mb_is_413(server: LiveServer) -> None:
    headers = [
        ("Host", "x"),
        ("Content-Type", "application/json"),
        ("Transfer-Encoding", "chunked"),
    ]
    chunk = b"a" * (1024 * 1024)
    body = b"".join(f"{len(chunk):x}\r\n".encode() + chunk + b"\r\n" for _ in range(11))
    replies, _ = exchange(server.port, request("POST", "/users", headers, body + b"0\r\n\r\n"))
    assert_refused(replies, 413)


def test_a_body_over_64_kib_reaches_the_function_which_answers_413(server: LiveServer) -> None:
    body = json.dumps({"email": "big@example.com", "password": "x" * 70000}).encode()
    headers = [("Host", "x"), ("Content-Type", "application/json")]
    replies, _ = exchange(
        server.port, request("POST", "/users", [*headers, ("Content-Length", str(len(body)))], body)
    )
    assert [r.status for r in replies] == [413]
    assert replies[0].headers["content-type"] == PROBLEM


def test_keep_alive_serves_several_requests_on_one_connection(server: LiveServer) -> None:
    one = request("GET", "/openapi.json", [("Host", "x")])
    replies, closed = exchange(server.port, one + one + one, half_close=False)
    assert [r.status for r in replies] == [200, 200, 200]
    assert not closed
    assert all(r.headers.get("connection") != "close" for r in replies)


def test_http_1_0_without_keep_alive_is_closed(server: LiveServer) -> None:
    replies, closed = exchange(
        server.port, request("GET", "/openapi.json", [], version="1.0"), half_close=False
    )
    assert [r.status for r in replies] == [200]
    assert closed


def _token(port: int, email: str) -> str:
    connection = http.client.HTTPConnection("127.0.0.1", port, timeout=30)
    connection.request(
        "POST", "/users", body=signup_body(email), headers={"Content-Type": "application/json"}
    )
    assert connection.getresponse().read()
    form = urlencode({"username": email, "password": "long enough password"})
    connection.request(
        "POST", "/token", body=form, headers={"Content-Type": "application/x-www-form-urlencoded"}
    )
    token: str = json.loads(connection.getresponse().read())["access_token"]
    connection.close()
    return token


@pytest.mark.parametrize(
    "host", ["evil.example", 'evil.example/>; rel="next", <https://evil.example', "127.0.0.1:1"]
)
def test_the_link_header_names_the_apis_domain_whatever_host_the_client_sends(
    server: LiveServer, host: str
) -> None:
    token = _token(server.port, "host@example.com")
    connection = http.client.HTTPConnection("127.0.0.1", server.port, timeout=30)
    auth = {"Authorization": f"Bearer {token}", "Content-Type": "application/json"}
    for day in (1, 2):
        task = {"description": "d", "category": "c", "deadline": f"2030-01-0{day}T00:00:00Z"}
        connection.request("POST", "/tasks", body=json.dumps(task), headers=auth)
        assert connection.getresponse().read()
    connection.request("GET", "/tasks?limit=1", headers={**auth, "Host": host})
    reply = connection.getresponse()
    reply.read()
    link = reply.headers["Link"]
    assert re.fullmatch(
        rf'<http://127\.0\.0\.1:{server.port}/tasks\?limit=1&cursor=[^>]+>; rel="next"', link
    ), link
    assert "evil" not in link


def test_a_busy_container_leaves_the_next_request_to_another(server: LiveServer) -> None:
    """One invocation at a time per container, and more than one container: while one is held
    by a request whose body is still arriving, another answers a second request."""
    body = signup_body("slow@example.com")
    head = request(
        "POST",
        "/users",
        [("Host", "x"), ("Content-Type", "application/json"), ("Content-Length", str(len(body)))],
    )
    signups_before = len(re.findall(r'"POST /users HTTP/1.1" 201', server.text()))
    with socket.create_connection(("127.0.0.1", server.port), timeout=30) as slow:
        slow.sendall(head + body[:5])
        time.sleep(1)  # a container has taken it and waits for the rest of the body
        fast = http.client.HTTPConnection("127.0.0.1", server.port, timeout=30)
        fast.request("GET", "/openapi.json?while=busy")
        assert fast.getresponse().status == 200
        fast.close()
        slow.sendall(body[5:])
        slow.settimeout(30)
        assert slow.recv(65536).startswith(b"HTTP/1.1 201 ")
    fast_line = re.compile(r'^<(\d+)> \S+ "GET /openapi.json\?while=busy HTTP/1.1" 200', re.M)
    slow_line = re.compile(r'^<(\d+)> \S+ "POST /users HTTP/1.1" 201', re.M)
    deadline = time.monotonic() + 10  # the access log line follows the response
    while len(slow_line.findall(server.text())) == signups_before and time.monotonic() < deadline:
        time.sleep(0.05)
    log = server.text()
    assert fast_line.findall(log), log
    assert len(slow_line.findall(log)) == signups_before + 1, log
    assert fast_line.findall(log)[-1] != slow_line.findall(log)[-1]


def test_the_request_log_is_one_short_line(server: LiveServer) -> None:
    exchange(server.port, request("GET", "/openapi.json?short=1", [("Host", "x")]))
    lines = [line for line in server.output if "/openapi.json?short=1" in line]
    assert len(lines) == 1, lines
    assert re.fullmatch(
        r'<\d+> 127\.0\.0\.1 "GET /openapi\.json\?short=1 HTTP/1\.1" 200 \d+B \d+ms\n', lines[0]
    )
    assert len(lines[0]) < 100
    assert "setup plugin" not in server.text()  # no Alembic chatter at startup
    assert "Running upgrade" not in server.text()


@pytest.mark.parametrize("method", ["TRACE", "QUERY", "PROPFIND"])
def test_any_method_goes_through_the_gateway(server: LiveServer, method: str) -> None:
    connection = http.client.HTTPConnection("127.0.0.1", server.port, timeout=10)
    connection.request(method, "/tasks")
    response = connection.getresponse()
    response.read()
    assert response.status == 405
    assert response.getheader("Allow") == "GET, POST"
