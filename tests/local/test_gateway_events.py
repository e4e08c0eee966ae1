"""The local API Gateway: route choice from template.yaml and the HTTP API 2.0 events it builds."""

from __future__ import annotations

import base64
from typing import Any

import pytest

from localdev.events import decode_response, http_api_event
from localdev.gateway import LocalGateway
from localdev.template import ROOT, Route, load


def build(**kwargs: Any) -> dict[str, Any]:
    defaults: dict[str, Any] = {"method": "GET", "path": "/tasks", "route": Route("GET", "/tasks")}
    return http_api_event(**{**defaults, **kwargs})


def test_event_has_the_payload_2_0_shape() -> None:
    event = build(
        method="PATCH",
        path="/tasks/42",
        route=Route("PATCH", "/tasks/{task_id}"),
        path_parameters={"task_id": "42"},
        raw_query="a=1",
        source_ip="203.0.113.9",
        domain_name="127.0.0.1:3101",
        headers=[("User-Agent", "curl/8")],
    )
    assert event["version"] == "2.0"
    assert event["routeKey"] == event["requestContext"]["routeKey"] == "PATCH /tasks/{task_id}"
    assert event["rawPath"] == "/tasks/42"
    assert event["rawQueryString"] == "a=1"
    assert event["pathParameters"] == {"task_id": "42"}
    http = event["requestContext"]["http"]
    assert http == {
        "method": "PATCH",
        "path": "/tasks/42",
        "protocol": "HTTP/1.1",
        "sourceIp": "203.0.113.9",
        "userAgent": "curl/8",
    }
    context = event["requestContext"]
    assert context["domainName"] == "127.0.0.1:3101"
    assert context["stage"] == "$default"
    assert context["requestId"]
    assert isinstance(context["timeEpoch"], int)
    assert event["isBase64Encoded"] is False
    assert "body" not in event
    assert "cookies" not in event


def test_headers_are_lower_cased_and_repeats_joined() -> None:
    event = build(
        headers=[
            ("Content-Type", "application/json"),
            ("X-Custom", "one"),
            ("x-custom", "two"),
            ("AUTHORIZATION", "Bearer t"),
        ]
    )
    assert event["headers"] == {
        "content-type": "application/json",
        "x-custom": "one,two",
        "authorization": "Bearer t",
    }


def test_cookies_are_split_out_of_the_headers() -> None:
    event = build(headers=[("Cookie", "a=1; b=2;"), ("cookie", "c=3")])
    assert event["cookies"] == ["a=1", "b=2", "c=3"]
    assert "cookie" not in event["headers"]


def test_query_values_are_decoded_and_repeats_joined() -> None:
    event = build(raw_query="status=To+Do&tag=a&tag=b&empty=&due=2030-01-01T00%3A00%3A00Z")
    assert event["rawQueryString"] == "status=To+Do&tag=a&tag=b&empty=&due=2030-01-01T00%3A00%3A00Z"
    assert event["queryStringParameters"] == {
        "status": "To Do",
        "tag": "a,b",
        "empty": "",
        "due": "2030-01-01T00:00:00Z",
    }


@pytest.mark.parametrize(
    ("content_type", "body"),
    [
        ("application/json", b'{"a": "\xc3\xa9"}'),
        ("application/json; charset=utf-8", b"{}"),
        ("application/problem+json", b"{}"),
        ("application/x-www-form-urlencoded", b"a=b"),
        ("text/plain", b"hello"),
    ],
)
def test_text_bodies_are_passed_as_text(content_type: str, body: bytes) -> None:
    event = build(method="POST", headers=[("Content-Type", content_type)], body=body)
    assert event["isBase64Encoded"] is False
    assert event["body"] == body.decode()


@pytest.mark.parametrize(
    ("content_type", "body"),
    [
        ("application/octet-stream", b"\x00\x01\x02"),
        ("image/png", b"\x89PNG\r\n"),
        ("", b"no content type"),
        ("application/json", b"\xff\xfe not utf-8"),
    ],
)
def test_binary_bodies_are_base64_encoded(content_type: str, body: bytes) -> None:
    headers = [("Content-Type", content_type)] if content_type else []
    event = build(method="POST", headers=headers, body=body)
    assert event["isBase64Encoded"] is True
    assert base64.b64decode(event["body"]) == body


def test_decode_response_handles_every_result_field() -> None:
    status, headers, body = decode_response(
        {
            "statusCode": 201,
            "headers": {"Content-Type": "application/json", "X-Count": 3},
            "multiValueHeaders": {"Vary": ["a", "b"]},
            "cookies": ["session=1; HttpOnly"],
            "body": base64.b64encode(b"\x00bin").decode(),
            "isBase64Encoded": True,
        }
    )
    assert status == 201
    assert headers == [
        ("Content-Type", "application/json"),
        ("X-Count", "3"),
        ("Vary", "a"),
        ("Vary", "b"),
        ("Set-Cookie", "session=1; HttpOnly"),
    ]
    assert body == b"\x00bin"


def test_decode_response_defaults() -> None:
    assert decode_response({}) == (200, [], b"")


# Route choice, as API Gateway makes it


@pytest.mark.parametrize(
    ("method", "path", "function", "route_key", "parameters"),
    [
        ("POST", "/users", "AuthFunction", "POST /users", {}),
        ("POST", "/token", "AuthFunction", "POST /token", {}),
        ("GET", "/users/me", "AuthFunction", "GET /users/me", {}),
        ("GET", "/tasks", "TasksFunction", "GET /tasks", {}),
        ("POST", "/tasks", "TasksFunction", "POST /tasks", {}),
        ("GET", "/tasks/7", "TasksFunction", "GET /tasks/{task_id}", {"task_id": "7"}),
        ("DELETE", "/tasks/abc", "TasksFunction", "DELETE /tasks/{task_id}", {"task_id": "abc"}),
        ("GET", "/openapi.json", "MetaFunction", "GET /openapi.json", {}),
        ("GET", "/docs", "MetaFunction", "GET /docs", {}),
        ("GET", "/", "MetaFunction", "ANY /", {}),
        ("DELETE", "/tasks", "MetaFunction", "ANY /{proxy+}", {"proxy": "tasks"}),
        ("GET", "/tasks/1/x", "MetaFunction", "ANY /{proxy+}", {"proxy": "tasks/1/x"}),
    ],
)
def test_routes_resolve_like_api_gateway(
    method: str, path: str, function: str, route_key: str, parameters: dict[str, str]
) -> None:
    resolved = load().resolve(method, path)
    assert resolved is not None
    route, fn, found = resolved
    assert (fn.logical_id, route.route_key, found) == (function, route_key, parameters)


def test_template_is_the_source_of_truth() -> None:
    template = load()
    assert set(template.functions) == {
        "AuthFunction",
        "TasksFunction",
        "MetaFunction",
        "DeadlineCheckFunction",
        "MigrationFunction",
        "NotificationsFunction",  # issue 15
        "EmailFeedbackFunction",
        "DatabaseProtectionFunction",  # the migration's code, another handler (issue 19)
    }
    assert template.layer_paths == (ROOT / "shared",)
    tasks = template.functions["TasksFunction"]
    assert tasks.code_uri == ROOT / "functions" / "tasks"
    assert tasks.handler == "app.lambda_handler"
    assert tasks.environment["JWT_ISSUER"] == "taskline"
    assert tasks.environment["BCRYPT_ROUNDS"] == "12"  # a !Ref resolves to its default
    assert tasks.timeout == 15


def test_functions_load_without_clashing(gateway: LocalGateway) -> None:
    """Every function is an `app.py`; each loads as its own module."""
    from localdev import loader

    modules = {name: loader.load_module(fn) for name, fn in gateway.template.functions.items()}
    assert len({id(module) for module in modules.values()}) == len(modules) == 8
    assert all(hasattr(module, "lambda_handler") for module in modules.values())
    assert (
        loader.load_module(gateway.template.functions["TasksFunction"]) is modules["TasksFunction"]
    )


def test_gateway_refuses_bodies_over_api_gateways_limit(gateway: LocalGateway) -> None:
    response = gateway.request("POST", "/tasks", body=b"x" * (10 * 1024 * 1024 + 1))
    assert response.status == 413


def test_gateway_passes_the_event_it_built(
    gateway: LocalGateway, monkeypatch: pytest.MonkeyPatch
) -> None:
    seen: list[dict[str, Any]] = []

    def record(function: Any, event: dict[str, Any]) -> dict[str, Any]:
        seen.append(event)
        return {"statusCode": 204}

    monkeypatch.setattr(gateway, "invoke", record)
    response = gateway.request(
        "GET",
        "/tasks/5",
        "x=1",
        [("Authorization", "Bearer t"), ("Cookie", "k=v")],
        source_ip="198.51.100.4",
        domain_name="api.example",
    )
    assert response.status == 204
    (event,) = seen
    assert event["routeKey"] == "GET /tasks/{task_id}"
    assert event["pathParameters"] == {"task_id": "5"}
    assert event["headers"] == {"authorization": "Bearer t"}
    assert event["cookies"] == ["k=v"]
    assert event["requestContext"]["http"]["sourceIp"] == "198.51.100.4"
    assert event["requestContext"]["domainName"] == "api.example"
