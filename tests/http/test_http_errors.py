"""Every status code the contract names, and the RFC 9457 shape of every error."""

from __future__ import annotations

import base64
import json
import logging
from collections.abc import Iterator
from typing import Any

import pytest

from localdev import loader
from localdev.events import http_api_event
from localdev.gateway import LambdaContext, LocalGateway
from localdev.template import Route
from taskline.api.resolver import MAX_BODY_BYTES
from tests.support.api import ApiClient, assert_problem, task_body
from tests.support.caches import clear_caches

JSON = {"Content-Type": "application/json"}


def invoke(
    gateway: LocalGateway,
    function: str,
    route_key: str,
    path: str,
    *,
    token: str | None = None,
    body: str | None = None,
    base64_encoded: bool = False,
    headers: dict[str, str] | None = None,
    request_id: str = "req-0001",
) -> dict[str, Any]:
    """Call a function's lambda_handler with a hand-made HTTP API 2.0 event."""
    method, route_path = route_key.split(" ", 1)
    sent = {"content-type": "application/json", **(headers or {})}
    if token:
        sent["authorization"] = f"Bearer {token}"
    event = http_api_event(
        method=method,
        path=path,
        headers=sent.items(),
        route=Route(method, route_path),
    )
    event["requestContext"]["requestId"] = request_id
    if body is not None:
        event["body"] = body
        event["isBase64Encoded"] = base64_encoded
    fn = gateway.template.functions[function]
    result: dict[str, Any] = loader.load_handler(fn)(event, LambdaContext(function, 10))
    return result


def problem_of(result: dict[str, Any], status: int) -> dict[str, Any]:
    assert result["statusCode"] == status, result
    assert result["headers"]["Content-Type"] == "application/problem+json"
    body: dict[str, Any] = json.loads(result["body"])
    assert {"type", "title", "status", "detail"} <= body.keys()
    assert body["status"] == status
    return body


# Success codes


def test_200_201_204(user: ApiClient) -> None:
    created = user.post("/tasks", json_body=task_body())
    assert created.status == 201
    assert user.get("/tasks").status == 200
    assert user.delete(f"/tasks/{created.json()['id']}").status == 204


# 400: the body cannot be read


@pytest.mark.parametrize(
    "body",
    [
        "{not json",
        '{"description": "a",}',
        "{}}",
        '{"description": NaN}',
        '{"description": Infinity}',
        '{"description": -Infinity}',
        "[" * 60_000,  # deep nesting, still under 64 KiB
        '{"a":' * 10_000 + "1" + "}" * 10_000,
        "\ufeff{}",
        "'single quotes'",
    ],
    ids=lambda body: body[:16],
)
def test_400_malformed_json(user: ApiClient, body: str) -> None:
    response = user.post("/tasks", body=body, headers=JSON)
    problem = assert_problem(response, 400)
    assert problem["detail"] == "The request body is not valid JSON."


def test_400_body_that_is_not_utf8(user: ApiClient) -> None:
    # The gateway base64-encodes a body that is not valid UTF-8, as API Gateway does.
    response = user.post("/tasks", body=b'{"description": "\xff\xfe"}', headers=JSON)
    assert_problem(response, 400)


def test_400_invalid_base64_body(gateway: LocalGateway, user: ApiClient) -> None:
    result = invoke(
        gateway, "TasksFunction", "POST /tasks", "/tasks",
        token=user.token, body="!!not base64!!", base64_encoded=True,
    )  # fmt: skip
    problem_of(result, 400)


def test_valid_base64_body_is_read(gateway: LocalGateway, user: ApiClient) -> None:
    encoded = base64.b64encode(json.dumps(task_body()).encode()).decode()
    result = invoke(
        gateway, "TasksFunction", "POST /tasks", "/tasks",
        token=user.token, body=encoded, base64_encoded=True,
    )  # fmt: skip
    assert result["statusCode"] == 201, result


# 401


def test_401(client: ApiClient) -> None:
    response = client.get("/tasks")
    assert_problem(response, 401)
    assert response.header("WWW-Authenticate") == 'Bearer realm="taskline"'


# 404 through the meta function's fallback route


@pytest.mark.parametrize(
    "path", ["/nope", "/tasks/1/extra", "/users/me/more", "/tasks/", "/TASKS", "/docs/x"]
)
def test_404_unknown_route(client: ApiClient, path: str) -> None:
    for method in ("GET", "POST", "DELETE"):
        body = assert_problem(client.request(method, path), 404)
        assert body["type"].endswith("route-not-found")


def test_the_root_redirects_to_the_web_app(client: ApiClient) -> None:
    # The first address `make run` prints: a browser opening it lands on the web app (served
    # beside the API, not by a function: tests/local/test_web_app.py follows the redirect).
    response = client.get("/")
    assert response.status == 302
    assert response.header("Location") == "/app/"
    assert_problem(client.request("POST", "/"), 405)


# 405 with Allow


@pytest.mark.parametrize(
    ("method", "path", "allow"),
    [
        ("DELETE", "/tasks", "GET, POST"),
        ("PUT", "/tasks", "GET, POST"),
        ("PATCH", "/tasks", "GET, POST"),
        ("POST", "/tasks/5", "DELETE, GET, PATCH, PUT"),
        ("OPTIONS", "/tasks/5", "DELETE, GET, PATCH, PUT"),
        ("GET", "/users", "POST"),
        ("GET", "/token", "POST"),
        ("PATCH", "/users/me", "DELETE, GET"),
        ("GET", "/token/revoke", "POST"),
        ("GET", "/users/me/logout-all", "POST"),
        ("DELETE", "/users/me/password", "PUT"),
        ("POST", "/openapi.json", "GET"),
    ],
)
def test_405_with_allow(user: ApiClient, method: str, path: str, allow: str) -> None:
    response = user.request(method, path)
    body = assert_problem(response, 405)
    assert response.header("Allow") == allow
    assert allow in body["detail"]


# 409


def test_409(client: ApiClient) -> None:
    client.sign_up("twice@example.com")
    response = client.post(
        "/users", json_body={"email": "TWICE@example.com", "password": "another password"}
    )
    assert_problem(response, 409)


# 413


def _padded_task(size: int) -> str:
    document = json.dumps(task_body())
    return document + " " * (size - len(document))


def test_64_kib_body_is_accepted(user: ApiClient) -> None:
    response = user.post("/tasks", body=_padded_task(MAX_BODY_BYTES), headers=JSON)
    assert response.status == 201, response.body


@pytest.mark.parametrize("path", ["/tasks", "/users", "/token", "/tasks/1"])
def test_413_body_over_64_kib(user: ApiClient, path: str) -> None:
    method = "PUT" if path == "/tasks/1" else "POST"
    response = user.request(method, path, body=_padded_task(MAX_BODY_BYTES + 1), headers=JSON)
    assert_problem(response, 413)


def test_413_counts_decoded_bytes(gateway: LocalGateway, user: ApiClient) -> None:
    encoded = base64.b64encode(_padded_task(MAX_BODY_BYTES + 1).encode()).decode()
    result = invoke(
        gateway, "TasksFunction", "POST /tasks", "/tasks",
        token=user.token, body=encoded, base64_encoded=True,
    )  # fmt: skip
    problem_of(result, 413)


# 415


@pytest.mark.parametrize(
    ("method", "path", "content_type"),
    [
        ("POST", "/tasks", "application/x-www-form-urlencoded"),
        ("POST", "/tasks", "text/plain"),
        ("POST", "/tasks", "multipart/form-data; boundary=x"),
        ("PATCH", "/tasks/1", "application/xml"),
        ("POST", "/users", "application/x-www-form-urlencoded"),
        ("POST", "/token", "text/plain"),
    ],
)
def test_415_unsupported_content_type(
    user: ApiClient, method: str, path: str, content_type: str
) -> None:
    response = user.request(method, path, body="a=b", headers={"Content-Type": content_type})
    assert_problem(response, 415)


@pytest.mark.parametrize(
    "content_type",
    [
        "application/json; charset=utf-8",
        "application/json;charset=UTF-8",
        "Application/JSON",
        "APPLICATION/JSON; CHARSET=UTF-8",
        None,
    ],
)
def test_json_with_parameters_or_no_content_type_is_read(
    user: ApiClient, content_type: str | None
) -> None:
    headers = {"Content-Type": content_type} if content_type else {}
    response = user.post("/tasks", body=json.dumps(task_body()), headers=headers)
    assert response.status == 201, response.body


# 422


def test_422_lists_every_error(user: ApiClient) -> None:
    response = user.post("/tasks", json_body={"description": "", "status": "Nope", "x": 1})
    body = assert_problem(response, 422)
    locations = [error["loc"] for error in body["errors"]]
    for expected in (["body", "description"], ["body", "status"], ["body", "x"]):
        assert expected in locations
    assert ["body", "category"] in locations
    assert ["body", "deadline"] in locations


# 500


@pytest.fixture
def log_lines() -> Iterator[list[dict[str, Any]]]:
    """The structured log lines the functions write (Powertools' JSON formatter)."""
    captured: list[dict[str, Any]] = []
    service_logger = logging.getLogger("taskline-test")
    formatter = service_logger.handlers[0].formatter

    class Collect(logging.Handler):
        def emit(self, record: logging.LogRecord) -> None:
            assert formatter is not None
            captured.append(json.loads(formatter.format(record)))

    handler = Collect()
    service_logger.addHandler(handler)
    yield captured
    service_logger.removeHandler(handler)


def test_500_is_generic_with_a_correlation_id(
    gateway: LocalGateway,
    user: ApiClient,
    monkeypatch: pytest.MonkeyPatch,
    log_lines: list[dict[str, Any]],
) -> None:
    def broken(*args: object, **kwargs: object) -> None:
        raise RuntimeError("secret internals: SELECT * FROM users")

    monkeypatch.setattr("taskline.services.task_service.list_page", broken)
    result = invoke(gateway, "TasksFunction", "GET /tasks", "/tasks", token=user.token)
    body = problem_of(result, 500)
    assert body["correlation_id"] == "req-0001"
    assert "req-0001" in body["detail"]
    assert "RuntimeError" not in result["body"]
    assert "SELECT" not in result["body"]
    assert "Traceback" not in result["body"]
    # The details go to the log instead, under the same correlation id.
    errors = [line for line in log_lines if line["level"] == "ERROR"]
    assert errors
    assert errors[0]["correlation_id"] == "req-0001"
    assert "RuntimeError" in errors[0]["exception"]


def test_500_through_the_gateway(user: ApiClient, monkeypatch: pytest.MonkeyPatch) -> None:
    def broken(*args: object, **kwargs: object) -> None:
        raise RuntimeError("boom")

    monkeypatch.setattr("taskline.services.account_service.profile", broken)
    body = assert_problem(user.get("/users/me"), 500)
    assert body["correlation_id"]
    assert body["correlation_id"] in body["detail"]
    assert "boom" not in json.dumps(body)


# 503


@pytest.fixture
def database_down(monkeypatch: pytest.MonkeyPatch, reload_settings: None) -> None:
    monkeypatch.setenv("DATABASE_URL", "postgresql://taskline:pw@127.0.0.1:9/taskline")
    monkeypatch.setenv("DB_CONNECT_TIMEOUT_SECONDS", "1")
    clear_caches()


@pytest.mark.parametrize(
    ("method", "path", "body", "needs_token"),
    [
        ("GET", "/tasks", None, True),
        ("POST", "/tasks", task_body(), True),
        ("GET", "/users/me", None, True),
        ("POST", "/users", {"email": "new@example.com", "password": "long enough"}, False),
        ("POST", "/token", {"email": "new@example.com", "password": "long enough"}, False),
    ],
)
def test_503_when_the_database_is_unreachable(
    user: ApiClient,
    database_down: None,
    method: str,
    path: str,
    body: dict[str, Any] | None,
    needs_token: bool,
) -> None:
    response = user.request(method, path, json_body=body, token=None if needs_token else "")
    problem = assert_problem(response, 503)
    assert response.header("Retry-After") is not None
    assert "127.0.0.1" not in json.dumps(problem)
    assert "pw" not in problem["detail"]


def test_no_database_needed_to_refuse_bad_requests(user: ApiClient, database_down: None) -> None:
    """Authentication and input checks need no database, so they still answer while it is down."""
    assert_problem(user.post("/tasks", json_body={"id": 1}), 422)
    assert_problem(user.get("/tasks", token="garbage"), 401)
    assert_problem(user.get("/nope"), 404)


def test_500_still_follows_the_contract_without_a_service_logger(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """If no function logger was set up, the error handler itself must not fail."""
    from aws_lambda_powertools import Logger

    from taskline.api import problems

    monkeypatch.setattr(problems, "logger", Logger(service="no-such-service", child=True))
    response = problems.internal_error_response()
    assert response.status_code == 500
    assert json.loads(str(response.body))["correlation_id"] == "unknown"
