"""`make run`'s server over real HTTP: the README walkthrough and the contract's edges.

The server is the real one (python -m localdev.server: gunicorn in front of the local gateway),
in a child process on a free port, against the test session's database.
"""

from __future__ import annotations

import http.client
import json
import re
import threading
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any
from urllib.parse import urlencode, urlsplit

import pytest

from tests.support.live_server import live_server


@dataclass
class Reply:
    status: int
    headers: http.client.HTTPMessage
    body: bytes

    def json(self) -> Any:
        return json.loads(self.body)


class Http:
    def __init__(self, port: int) -> None:
        self.port = port
        self.token: str | None = None

    def __call__(
        self,
        method: str,
        path: str,
        *,
        body: bytes | str | None = None,
        json_body: Any = None,
        headers: dict[str, str] | None = None,
    ) -> Reply:
        sent = dict(headers or {})
        if json_body is not None:
            body = json.dumps(json_body)
            sent.setdefault("Content-Type", "application/json")
        if self.token and "Authorization" not in sent:
            sent["Authorization"] = f"Bearer {self.token}"
        connection = http.client.HTTPConnection("127.0.0.1", self.port, timeout=30)
        try:
            connection.request(method, path, body=body, headers=sent)
            response = connection.getresponse()
            return Reply(response.status, response.headers, response.read())
        finally:
            connection.close()


@pytest.fixture(scope="module")
def http_api(database_url: str) -> Iterator[Http]:
    with live_server() as server:
        yield Http(server.port)


@pytest.fixture
def api(http_api: Http) -> Http:
    http_api.token = None
    return http_api


def test_walkthrough(api: Http) -> None:
    signed_up = api(
        "POST",
        "/users",
        json_body={"email": "ann@example.com", "password": "correct horse battery"},
    )
    assert signed_up.status == 201, signed_up.body
    assert signed_up.headers["Content-Type"] == "application/json"

    form = urlencode({"username": "ann@example.com", "password": "correct horse battery"})
    issued = api(
        "POST",
        "/token",
        body=form,
        headers={"Content-Type": "application/x-www-form-urlencoded"},
    )
    assert issued.status == 200, issued.body
    assert issued.headers["Cache-Control"] == "no-store"
    api.token = issued.json()["access_token"]

    assert api("GET", "/users/me").json()["email"] == "ann@example.com"

    ids = []
    for day in (3, 1, 2, 1):
        created = api(
            "POST",
            "/tasks",
            json_body={
                "description": f"Task due on day {day}",
                "category": "work",
                "deadline": f"2030-01-0{day}T09:00:00Z",
            },
        )
        assert created.status == 201, created.body
        assert created.headers["Location"] == f"/tasks/{created.json()['id']}"
        ids.append(created.json()["id"])

    # Paging by following the Link header.
    seen: list[int] = []
    target: str | None = "/tasks?limit=3"
    pages = 0
    while target and pages < 5:
        page = api("GET", target)
        assert page.status == 200
        seen += [task["id"] for task in page.json()]
        pages += 1
        link = page.headers.get("Link")
        target = None
        if link:
            found = re.fullmatch(r'<([^>]+)>; rel="next"', link)
            assert found, link
            url = urlsplit(found.group(1))
            assert url.scheme == "http"  # followable as given: the local server speaks HTTP
            assert url.netloc == f"127.0.0.1:{api.port}"  # the API's domain name (configured)
            target = f"{url.path}?{url.query}"
    assert pages == 2
    assert seen == [ids[1], ids[3], ids[2], ids[0]]

    updated = api("PATCH", f"/tasks/{ids[0]}", json_body={"status": "Done"})
    assert updated.status == 200
    assert updated.json()["status"] == "Done"
    replaced = api(
        "PUT",
        f"/tasks/{ids[0]}",
        json_body={
            "description": "Replaced",
            "category": "home",
            "deadline": "2030-02-01T00:00:00+01:00",
            "status": "In Progress",
        },
    )
    assert replaced.json()["deadline"] == "2030-01-31T23:00:00Z"
    assert [t["id"] for t in api("GET", "/tasks?status=In%20Progress").json()] == [ids[0]]

    deleted = api("DELETE", f"/tasks/{ids[0]}")
    assert deleted.status == 204
    assert deleted.body == b""
    assert api("GET", f"/tasks/{ids[0]}").status == 404


def test_forwarded_headers_come_from_the_gateway(api: Http) -> None:
    api("POST", "/users", json_body={"email": "fwd@example.com", "password": "long enough"})
    form = urlencode({"username": "fwd@example.com", "password": "long enough"})
    form_type = {"Content-Type": "application/x-www-form-urlencoded"}
    api.token = api("POST", "/token", body=form, headers=form_type).json()["access_token"]
    for day in (1, 2):
        task = {"description": "d", "category": "c", "deadline": f"2030-01-0{day}T00:00:00Z"}
        api("POST", "/tasks", json_body=task)
    reply = api("GET", "/tasks?limit=1", headers={"X-Forwarded-Proto": "javascript"})
    assert reply.headers["Link"].startswith(f"<http://127.0.0.1:{api.port}/tasks?limit=1&cursor=")


def test_errors_over_http(api: Http) -> None:
    missing = api("GET", "/no/such/route")
    assert missing.status == 404
    assert missing.headers["Content-Type"] == "application/problem+json"
    wrong = api("DELETE", "/tasks")
    assert wrong.status == 405
    assert wrong.headers["Allow"] == "GET, POST"
    unauthorized = api("GET", "/tasks")
    assert unauthorized.status == 401
    assert unauthorized.headers["WWW-Authenticate"].startswith("Bearer")
    head = api("HEAD", "/tasks")
    assert head.status == 405
    assert head.body == b""


def test_binary_body_reaches_the_function_base64_encoded(api: Http) -> None:
    reply = api(
        "POST",
        "/users",
        body=b"\xff\xfe\x00 binary",
        headers={"Content-Type": "application/json"},
    )
    assert reply.status == 400
    assert reply.json()["detail"] == "The request body is not valid JSON."


def test_json_without_content_type(api: Http) -> None:
    reply = api(
        "POST", "/users", body=json.dumps({"email": "b@example.com", "password": "long enough"})
    )
    assert reply.status == 201, reply.body


def test_openapi_document(api: Http) -> None:
    reply = api("GET", "/openapi.json")
    assert reply.status == 200
    document = reply.json()
    assert {"/users", "/token", "/users/me", "/tasks", "/tasks/{task_id}"} <= set(document["paths"])


def test_swagger_ui_works_offline(api: Http) -> None:
    reply = api("GET", "/docs")
    assert reply.status == 200
    assert reply.headers["Content-Type"].startswith("text/html")
    html = reply.body.decode()
    assert "SwaggerUIBundle" in html  # the bundle itself is inlined
    assert "<style>" in html
    assert not re.search(r"<script[^>]+src=", html)
    assert not re.search(r"<link[^>]+href=['\"]https?:", html)
    assert "cdn.jsdelivr" not in html
    assert "unpkg.com" not in html
    assert '"/tasks/{task_id}"' in html  # the document is embedded


def test_swagger_ui_spec_url_serves_the_document(api: Http) -> None:
    """Swagger UI shows /docs?format=json as the document's address; it must be the JSON."""
    reply = api("GET", "/docs?format=json")
    assert reply.status == 200
    assert reply.headers["Content-Type"] == "application/json"
    assert reply.json() == api("GET", "/openapi.json").json()


def test_concurrent_requests(api: Http) -> None:
    results: list[int] = []

    def fetch() -> None:
        results.append(api("GET", "/openapi.json").status)

    threads = [threading.Thread(target=fetch) for _ in range(6)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=30)
    assert results == [200] * 6
