"""Inputs the fuzzer found answered wrongly (a 500, or a status the document did not promise),
pinned down as plain tests."""

from __future__ import annotations

import re
from urllib.parse import urlencode

import pytest
from pydantic import TypeAdapter, ValidationError

from taskline.schemas import TEXT_PATTERN, Category
from tests.support.api import ApiClient, assert_problem, task_body


@pytest.mark.parametrize(
    "deadline",
    [
        "9999-12-31T23:00:00-05:00",  # the year 10000 in UTC
        "0001-01-01T00:00:00+05:00",  # the year 0 in UTC
        "1700000000",  # a Unix time, not RFC 3339
        "0.5",
        "2030-01-15",  # a date without a time
        "2030-01-15T09:00",  # no seconds
    ],
)
def test_timestamps_outside_rfc3339_or_the_utc_range_are_422(
    user: ApiClient, deadline: str
) -> None:
    created = user.post("/tasks", json_body=task_body(deadline=deadline))
    assert created.status == 422, created.body
    assert created.json()["errors"][0]["loc"] == ["body", "deadline"]
    listed = user.get("/tasks", query={"due_before": deadline})
    assert listed.status == 422, listed.body
    assert user.get("/tasks").json() == []


@pytest.mark.parametrize(
    "deadline", ["2030-01-15T09:00:00", "2030-01-15 09:00:00z", "2030-01-15t09:00:00.5+02:00"]
)
def test_rfc3339_variants_are_accepted(user: ApiClient, deadline: str) -> None:
    assert user.post("/tasks", json_body=task_body(deadline=deadline)).status == 201


def test_undeclared_method_on_a_body_route_is_405_whatever_the_body(client: ApiClient) -> None:
    response = client.put(
        "/token",
        body="grant_type=password&username=a&password=b",
        headers={"Content-Type": "application/x-www-form-urlencoded"},
    )
    assert response.status == 405
    assert response.header("Allow") == "POST"
    response = client.request("PATCH", "/users", body=b"\xff", headers={"Content-Type": "text/x"})
    assert response.status == 405
    assert response.header("Allow") == "POST"


def test_token_with_malformed_json_is_a_problem_400(client: ApiClient) -> None:
    # As for every route, a body that is not JSON at all is refused before the grant is read.
    response = client.post("/token", body="{", headers={"Content-Type": "application/json"})
    problem = assert_problem(response, 400)
    assert problem["type"].endswith("malformed-body")


def test_task_ids_beyond_the_json_safe_range_are_422(user: ApiClient) -> None:
    assert user.get(f"/tasks/{2**53 - 1}").status == 404
    assert user.get(f"/tasks/{2**53}").status == 422


def test_patch_fields_may_be_left_out_but_not_null(user: ApiClient) -> None:
    task = user.post("/tasks", json_body=task_body()).json()
    response = user.patch(f"/tasks/{task['id']}", json_body={"status": None})
    assert response.status == 422


@pytest.mark.parametrize("text", ["  padded  ", "tab\tinside", "line\nbreak", "\u00a0x\u3000"])
def test_text_is_stored_without_surrounding_whitespace(user: ApiClient, text: str) -> None:
    created = user.post("/tasks", json_body=task_body(description=text))
    assert created.status == 201
    assert created.json()["description"] == text.strip()


def _samples() -> list[str]:
    chars = [chr(code) for code in range(0x3100)] + ["\U0001f600", "\ufeff", "\uffff"]
    return [s for c in chars for s in (c, f" {c} ", f"x{c}", f"{c}{c}")]


def test_the_published_text_pattern_is_exactly_what_the_validator_accepts() -> None:
    """The OpenAPI document carries TEXT_PATTERN; the code enforces the rule itself."""
    adapter: TypeAdapter[str] = TypeAdapter(Category)
    pattern = re.compile(TEXT_PATTERN)
    for sample in _samples():
        try:
            adapter.validate_python(sample)
            accepted = True
        except ValidationError:
            accepted = False
        assert accepted == (pattern.fullmatch(sample) is not None), repr(sample)


@pytest.mark.parametrize("username", ["a\x00b@example.com", "tab\t@example.com"])
def test_token_with_control_characters_in_the_username_is_an_unknown_email(
    client: ApiClient, checkpw_calls: list[bytes], username: str
) -> None:
    # No account can have such an email: invalid_grant after one bcrypt check, as for any
    # unknown email, whether the grant comes as JSON or as a form.
    json_grant = client.post("/token", json_body={"email": username, "password": "whatever1"})
    form_grant = client.post(
        "/token",
        body=urlencode({"username": username, "password": "whatever1"}),
        headers={"Content-Type": "application/x-www-form-urlencoded"},
    )
    for response in (json_grant, form_grant):
        assert response.status == 400
        assert response.json()["error"] == "invalid_grant"
    assert len(checkpw_calls) == 2


def test_validation_messages_are_written_for_people_without_pydantics_prefix(
    user: ApiClient,
) -> None:
    created = user.post("/tasks", json_body=task_body(deadline="1700000000"))
    problem = assert_problem(created, 422)
    message = "must be an RFC 3339 timestamp string, e.g. 2030-01-15T09:00:00Z"
    assert problem["errors"] == [
        {"loc": ["body", "deadline"], "msg": message, "type": "value_error"}
    ]
    assert problem["detail"] == f"The request is invalid: body.deadline: {message}."
    # Another rule of ours: the same, in detail and errors alike.
    blank = user.post("/tasks", json_body=task_body(description="   "))
    assert "Value error" not in blank.body.decode()
    assert assert_problem(blank, 422)["errors"][0]["msg"] == "must not be blank"
