"""Every request body and response in the OpenAPI document has a realistic example that
passes its schema, and each request example, sent as it is to a live local server, gets the
status the document promises (issue 13). Swagger UI's "Try it out" starts from the first one."""

from __future__ import annotations

import http.client
import json
from collections.abc import Iterator
from typing import Any
from urllib.parse import urlencode, urlsplit

import pytest
from jsonschema_rs import Draft202012Validator
from sqlalchemy import Engine, text

from localdev.gateway import LocalGateway
from localdev.openapi import OUTPUT
from tests.support.live_server import serving

DOCUMENT: dict[str, Any] = json.loads(OUTPUT.read_text())
FORM = "application/x-www-form-urlencoded"


def _validator(schema: dict[str, Any]) -> Draft202012Validator:
    root = {**schema, "components": DOCUMENT["components"]}
    return Draft202012Validator(root, validate_formats=True)


def _request_examples() -> list[tuple[str, str, str, str, Any]]:
    found = []
    for path, operations in DOCUMENT["paths"].items():
        for method, operation in operations.items():
            body = operation.get("requestBody")
            if body is None:
                continue
            for media, content in body["content"].items():
                for name, example in content.get("examples", {}).items():
                    found.append((method.upper(), path, media, name, example["value"]))
    return found


REQUEST_EXAMPLES = _request_examples()
OPERATIONS_WITH_BODIES = [
    (method.upper(), path, operation)
    for path, operations in DOCUMENT["paths"].items()
    for method, operation in operations.items()
    if "requestBody" in operation
]


@pytest.mark.parametrize(
    ("method", "path", "operation"),
    OPERATIONS_WITH_BODIES,
    ids=[f"{m} {p}" for m, p, _ in OPERATIONS_WITH_BODIES],
)
def test_every_request_body_has_examples_that_pass_its_schema(
    method: str, path: str, operation: dict[str, Any]
) -> None:
    for media, content in operation["requestBody"]["content"].items():
        examples = content.get("examples", {})
        assert "default" in examples, f"{method} {path} {media} has no default example"
        validator = _validator(content["schema"])
        for example in examples.values():
            validator.validate(example["value"])


def test_every_schema_has_examples_that_pass_it() -> None:
    schemas = DOCUMENT["components"]["schemas"]
    for name, schema in schemas.items():
        if "enum" in schema or name == "ProblemError":
            continue  # an enum is its own example; ProblemError is shown inside Problem's
        assert schema.get("examples"), f"{name} has no example"
        validator = _validator({"$ref": f"#/components/schemas/{name}"})
        for example in schema["examples"]:
            validator.validate(example)


def test_no_example_is_a_generated_string() -> None:
    """What Swagger UI used to pre-fill from the text pattern: it must not be what people see."""
    for *_, example in REQUEST_EXAMPLES:
        for value in example.values():
            assert not (isinstance(value, str) and "[" in value and "@" not in value), value


class Live:
    def __init__(self, base_url: str) -> None:
        self.address = urlsplit(base_url)

    def send(
        self,
        method: str,
        path: str,
        *,
        body: Any = None,
        media: str = "application/json",
        token: str | None = None,
    ) -> tuple[int, Any]:
        headers = {}
        raw = None
        if body is not None:
            raw = urlencode(body) if media == FORM else json.dumps(body)
            headers["Content-Type"] = media
        if token:
            headers["Authorization"] = f"Bearer {token}"
        connection = http.client.HTTPConnection(
            str(self.address.hostname), self.address.port, timeout=30
        )
        try:
            connection.request(method, path, body=raw, headers=headers)
            response = connection.getresponse()
            payload = response.read()
        finally:
            connection.close()
        if not payload:
            return response.status, None
        if "json" in (response.getheader("Content-Type") or ""):
            return response.status, json.loads(payload)
        return response.status, payload.decode()  # the unsubscribe pages are HTML

    def account(self, email: str, password: str = "correct horse battery") -> dict[str, Any]:
        status, _ = self.send("POST", "/users", body={"email": email, "password": password})
        assert status == 201
        status, pair = self.send(
            "POST", "/token", body={"username": email, "password": password}, media=FORM
        )
        assert status == 200
        return dict(pair)


@pytest.fixture(scope="module")
def live(gateway: LocalGateway) -> Iterator[Live]:
    with serving(gateway) as base_url:
        yield Live(base_url)


def _success(method: str, path: str) -> int:
    responses = DOCUMENT["paths"][path][method.lower()]["responses"]
    (status,) = [int(code) for code in responses if code.startswith("2")]
    return status


@pytest.mark.parametrize(
    ("method", "path", "media", "name", "example"),
    REQUEST_EXAMPLES,
    ids=[f"{m} {p} {media} {n}" for m, p, media, n, _ in REQUEST_EXAMPLES],
)
def test_each_request_example_gets_the_documented_status(
    live: Live,
    admin_engine: Engine,
    method: str,
    path: str,
    media: str,
    name: str,
    example: dict[str, Any],
) -> None:
    """Sent as it is, after the setup a user would have done (an account with the example's
    email and password, a task to change); only credentials, which no document can hold, are
    the live ones."""
    body = dict(example)
    token = None
    if path != "/users":  # POST /users signs up the example's own account
        # An invitation's example addresses someone else than the list's owner.
        own = None if "{list_id}" in path else example.get("email") or example.get("username")
        pair = live.account(own or "ada@example.com")
        token = pair["access_token"]
        if body.get("grant_type") == "refresh_token":
            body["refresh_token"] = pair["refresh_token"]
    target = path
    if "{task_id}" in path:
        status, task = live.send(
            "POST",
            "/tasks",
            token=token,
            body={"description": "Draft", "category": "work", "deadline": "2030-01-10T09:00:00Z"},
        )
        assert status == 201
        target = path.replace("{task_id}", str(task["id"]))
    if "{list_id}" in path:  # a list of the caller's, and (for {user_id}) another member
        status, created = live.send("POST", "/lists", token=token, body={"name": "Household"})
        assert status == 201
        target = target.replace("{list_id}", str(created["id"]))
        if "{user_id}" in path:
            other = live.account("grace.member@example.com")["access_token"]
            status, member = live.send("GET", "/users/me", token=other)
            assert status == 200
            with admin_engine.begin() as connection:
                connection.execute(
                    text(
                        "INSERT INTO list_members (list_id, user_id, role) "
                        "VALUES (:l, :u, 'editor')"
                    ),
                    {"l": created["id"], "u": member["id"]},
                )
            target = target.replace("{user_id}", str(member["id"]))
    if "{token}" in path:  # an email's unsubscribe link, as the deadline check signs it
        from taskline.security.unsubscribe import issue_unsubscribe_token

        status, me = live.send("GET", "/users/me", token=token)
        assert status == 200
        target = path.replace("{token}", issue_unsubscribe_token(me["id"]))
        token = None  # the link is the credential
    status, answer = live.send(method, target, body=body, media=media, token=token)
    assert status == _success(method, path), answer
    if method == "POST" and path == "/tasks":
        # What "Try it out" creates is the example itself, a task that makes sense.
        assert {k: answer[k] for k in ("description", "category")} == {
            k: example[k] for k in ("description", "category")
        }
