"""Each lambda_handler called directly with HTTP API 2.0 events (the samples in events/)."""

from __future__ import annotations

import copy
import json
from pathlib import Path
from typing import Any

import pytest

from localdev import loader
from localdev.gateway import LambdaContext
from localdev.template import ROOT, Template, load
from tests.support.environment import TEST_DATABASE
from tests.support.processes import child_environment, run_python

EVENTS = ROOT / "events"


@pytest.fixture(scope="module")
def template() -> Template:
    loaded = load()
    loader.add_layers(loaded)
    return loaded


def call(template: Template, function: str, event: dict[str, Any]) -> dict[str, Any]:
    handler = loader.load_handler(template.functions[function])
    result: dict[str, Any] = handler(copy.deepcopy(event), LambdaContext(function, 10))
    return result


def sample(name: str, token: str | None = None) -> dict[str, Any]:
    event: dict[str, Any] = json.loads((EVENTS / f"{name}.json").read_text())
    if token is not None:
        event["headers"]["authorization"] = f"Bearer {token}"
    return event


def body_of(result: dict[str, Any]) -> Any:
    assert isinstance(result["body"], str)
    return json.loads(result["body"])


def assert_http_api_result(result: dict[str, Any]) -> None:
    """What API Gateway expects back from a payload 2.0 integration."""
    assert isinstance(result["statusCode"], int)
    assert all(isinstance(k, str) and isinstance(v, str) for k, v in result["headers"].items())
    assert result.get("isBase64Encoded", False) is False


def test_sample_events_walk_the_whole_api(template: Template) -> None:
    created = call(template, "AuthFunction", sample("users-create"))
    assert_http_api_result(created)
    assert created["statusCode"] == 201
    assert body_of(created)["email"] == "ada@example.com"

    issued = call(template, "AuthFunction", sample("token-form"))
    assert issued["statusCode"] == 200
    assert issued["headers"]["Cache-Control"] == "no-store"
    token = body_of(issued)["access_token"]

    me = call(template, "AuthFunction", sample("users-me", token))
    assert me["statusCode"] == 200
    assert body_of(me)["id"] == body_of(created)["id"]

    task = call(template, "TasksFunction", sample("tasks-create", token))
    assert_http_api_result(task)
    assert task["statusCode"] == 201
    assert task["headers"]["Location"] == "/tasks/1"
    assert task["headers"]["Content-Type"] == "application/json"
    assert body_of(task)["deadline"] == "2026-12-15T09:00:00Z"

    fetched = call(template, "TasksFunction", sample("tasks-get", token))
    assert fetched["statusCode"] == 200
    assert body_of(fetched) == body_of(task)

    listed = call(template, "TasksFunction", sample("tasks-list", token))
    assert listed["statusCode"] == 200
    assert [t["id"] for t in body_of(listed)] == [1]
    assert "Link" not in listed["headers"]

    patched = call(template, "TasksFunction", sample("tasks-patch", token))
    assert patched["statusCode"] == 200
    assert body_of(patched)["status"] == "Done"
    assert body_of(call(template, "TasksFunction", sample("tasks-list", token))) == []

    deleted = call(template, "TasksFunction", sample("tasks-delete", token))
    assert deleted["statusCode"] == 204
    assert deleted.get("body") in (None, "")
    gone = call(template, "TasksFunction", sample("tasks-get", token))
    assert gone["statusCode"] == 404
    assert gone["headers"]["Content-Type"] == "application/problem+json"


def test_list_link_uses_the_api_domain_and_keeps_the_query(template: Template) -> None:
    call(template, "AuthFunction", sample("users-create"))
    token = body_of(call(template, "AuthFunction", sample("token-form")))["access_token"]
    for _ in range(3):
        assert call(template, "TasksFunction", sample("tasks-create", token))["statusCode"] == 201
    event = sample("tasks-list", token)
    event["rawQueryString"] = "limit=2&status=To+Do"
    event["queryStringParameters"] = {"limit": "2", "status": "To Do"}
    result = call(template, "TasksFunction", event)
    link = result["headers"]["Link"]
    prefix = (
        "<https://abc123.execute-api.us-east-1.amazonaws.com/tasks?limit=2&status=To+Do&cursor="
    )
    assert link.startswith(prefix)
    assert link.endswith('>; rel="next"')


def test_a_host_header_cannot_steer_the_link(template: Template) -> None:
    call(template, "AuthFunction", sample("users-create"))
    token = body_of(call(template, "AuthFunction", sample("token-form")))["access_token"]
    for _ in range(2):
        call(template, "TasksFunction", sample("tasks-create", token))
    event = sample("tasks-list", token)
    event["rawQueryString"] = "limit=1"
    event["queryStringParameters"] = {"limit": "1"}
    event["headers"].update({"host": "evil.example", "x-forwarded-proto": "javascript"})
    link = call(template, "TasksFunction", event)["headers"]["Link"]
    assert link.startswith("<https://abc123.execute-api.us-east-1.amazonaws.com/tasks?")


def test_missing_token_on_a_sample_event(template: Template) -> None:
    event = sample("tasks-list")
    del event["headers"]["authorization"]
    result = call(template, "TasksFunction", event)
    assert result["statusCode"] == 401
    assert result["headers"]["WWW-Authenticate"] == 'Bearer realm="taskline"'


def test_a_function_answers_only_its_own_routes(template: Template) -> None:
    event = sample("tasks-list")
    result = call(template, "AuthFunction", event)
    assert result["statusCode"] == 404
    event = sample("users-me")
    event["requestContext"]["http"]["method"] = "PATCH"  # DELETE /users/me is a route now
    event["routeKey"] = "PATCH /users/me"
    result = call(template, "AuthFunction", event)
    assert result["statusCode"] == 405
    assert result["headers"]["Allow"] == "DELETE, GET"


def _meta_event(method: str, path: str, query: str = "") -> dict[str, Any]:
    event = sample("users-me")
    del event["headers"]["authorization"]
    event["rawPath"] = path
    event["rawQueryString"] = query
    event["requestContext"]["http"].update({"method": method, "path": path})
    event["routeKey"] = event["requestContext"]["routeKey"] = "ANY /{proxy+}"
    if query:
        event["queryStringParameters"] = dict(p.split("=", 1) for p in query.split("&"))
    return event


def test_meta_function_serves_the_openapi_document(template: Template) -> None:
    result = call(template, "MetaFunction", _meta_event("GET", "/openapi.json"))
    assert result["statusCode"] == 200
    assert result["headers"]["Content-Type"] == "application/json"
    assert body_of(result)["openapi"].startswith("3.")


def test_meta_function_serves_swagger_ui(template: Template) -> None:
    result = call(template, "MetaFunction", _meta_event("GET", "/docs"))
    assert result["statusCode"] == 200
    assert result["headers"]["Content-Type"].startswith("text/html")
    assert "SwaggerUIBundle" in result["body"]
    redirect = call(template, "MetaFunction", _meta_event("GET", "/docs", "format=oauth2-redirect"))
    assert redirect["statusCode"] == 200
    assert "oauth2" in redirect["body"].lower()


def test_meta_function_is_the_fallback(template: Template) -> None:
    missing = call(template, "MetaFunction", _meta_event("GET", "/nothing/here"))
    assert missing["statusCode"] == 404
    assert missing["headers"]["Content-Type"] == "application/problem+json"
    wrong = call(template, "MetaFunction", _meta_event("DELETE", "/tasks"))
    assert wrong["statusCode"] == 405
    assert wrong["headers"]["Allow"] == "GET, POST"


def test_plain_make_invoke_says_how_to_give_the_account(app_database_url: str) -> None:
    # `make invoke` alone invokes TasksFunction with events/tasks-list.json, which needs a token:
    # the message is the command to type, with the Makefile's ARGS.
    environment = child_environment(DATABASE_URL=app_database_url, TASKLINE_DB_NAME=TEST_DATABASE)
    event = str(Path("events") / "tasks-list.json")
    completed = run_python(
        "-m", "localdev.invoke", "TasksFunction", "--event", event, env=environment
    )
    assert completed.returncode == 1
    assert "Traceback" not in completed.stderr
    expected = f'make invoke FUNCTION=TasksFunction EVENT={event} ARGS="--user EMAIL"'
    assert expected in completed.stderr


def test_docker_free_local_invoke(template: Template, app_database_url: str) -> None:
    """`make invoke FUNCTION=TasksFunction EVENT=events/tasks-list.json` in a fresh process,
    as the functions' login, through the strict RDS Proxy stand-in."""
    call(template, "AuthFunction", sample("users-create"))
    environment = child_environment(
        DATABASE_URL=app_database_url,
        TASKLINE_DB_NAME=TEST_DATABASE,
        POWERTOOLS_LOG_LEVEL="WARNING",
    )
    completed = run_python(
        "-m",
        "localdev.invoke",
        "TasksFunction",
        "--event",
        str(Path("events") / "tasks-list.json"),
        "--user",
        "ADA@example.com",
        env=environment,
    )
    assert completed.returncode == 0, completed.stderr
    output = completed.stdout
    result = json.loads(output[output.index('{\n  "statusCode"') :])
    assert result["statusCode"] == 200
    assert json.loads(result["body"]) == []
