"""The committed OpenAPI document is current and covers every route of template.yaml."""

from __future__ import annotations

import json
from typing import Any

import pytest

from localdev.openapi import OUTPUT, render
from localdev.template import load
from tests.support.api import TASK_FIELDS

METHODS = {"get", "put", "post", "delete", "patch"}
# The meta function's own routes: the document itself, Swagger UI and the fallbacks.
NOT_DOCUMENTED = {"/openapi.json", "/docs", "/", "/{proxy+}"}
# Operations without parameters or a body, and the OAuth2 endpoints (their 400s are RFC 6749).
NO_INPUT = {("get", "/users/me"), ("post", "/users/me/logout-all")}
TOKEN_ENDPOINTS = {"/token", "/token/revoke"}


@pytest.fixture(scope="module")
def document() -> dict[str, Any]:
    loaded: dict[str, Any] = json.loads(OUTPUT.read_text())
    return loaded


def test_committed_document_is_up_to_date() -> None:
    assert OUTPUT.read_text() == render(), "run `make openapi`"


def test_every_template_route_is_documented(document: dict[str, Any]) -> None:
    routes = {
        (route.method.lower(), route.path)
        for route, _ in load().routes()
        if route.path not in NOT_DOCUMENTED
    }
    documented = {
        (method, path)
        for path, operations in document["paths"].items()
        for method in operations
        if method in METHODS
    }
    assert routes == documented


def test_security_schemes(document: dict[str, Any]) -> None:
    schemes = document["components"]["securitySchemes"]
    # Swagger UI's Authorize dialog lists them in this order: the password flow first (what a
    # person trying the API uses), then a pasted token, each saying what it is for.
    assert list(schemes) == ["oauth2", "bearerAuth"]
    assert schemes["oauth2"]["flows"]["password"]["tokenUrl"] == "/token"
    assert schemes["bearerAuth"]["scheme"] == "bearer"
    assert all(scheme.get("description") for scheme in schemes.values())


def test_swagger_ui_lists_accounts_first_and_says_how_to_start(document: dict[str, Any]) -> None:
    declared = [tag["name"] for tag in document["tags"]]
    assert declared[:3] == ["Accounts", "Sessions", "Tasks"]
    assert all(tag.get("description") for tag in document["tags"])
    used = {
        tag
        for operations in document["paths"].values()
        for operation in operations.values()
        for tag in operation.get("tags", [])
    }
    assert used <= set(declared), f"declare {used - set(declared)} in documentation.TAGS"
    assert "sign up, then Authorize" in document["info"]["description"]


@pytest.mark.parametrize(
    ("method", "path", "protected"),
    [
        ("post", "/users", False),
        ("post", "/token", False),
        ("get", "/users/me", True),
        ("get", "/tasks", True),
        ("post", "/tasks", True),
        ("get", "/tasks/{task_id}", True),
        ("patch", "/tasks/{task_id}", True),
        ("put", "/tasks/{task_id}", True),
        ("delete", "/tasks/{task_id}", True),
        ("post", "/token/revoke", False),
        ("post", "/users/me/logout-all", True),
        ("put", "/users/me/password", True),
        ("delete", "/users/me", True),
    ],
)
def test_operations_declare_security_and_errors(
    document: dict[str, Any], method: str, path: str, protected: bool
) -> None:
    operation = document["paths"][path][method]
    assert bool(operation.get("security")) is protected
    responses = operation["responses"]
    assert ("401" in responses) is protected
    assert {"500", "503"} <= responses.keys()
    if (method, path) in NO_INPUT or path in TOKEN_ENDPOINTS:
        # Nothing to validate, or RFC 6749/7009 400s instead: a 422 never comes.
        assert "422" not in responses
    else:
        problem = responses["422"]["content"]["application/problem+json"]["schema"]
        assert problem == {"$ref": "#/components/schemas/Problem"}


def test_token_endpoint_documents_its_body_and_oauth_errors(document: dict[str, Any]) -> None:
    token = document["paths"]["/token"]["post"]
    # The form (RFC 6749) in the schema; the JSON body, also accepted, in the description (two
    # media types would break openapi-python-client's generated module; see functions/auth).
    assert set(token["requestBody"]["content"]) == {"application/x-www-form-urlencoded"}
    assert token["requestBody"]["required"] is True
    assert '{"email", "password"}' in token["requestBody"]["description"]
    grants = token["requestBody"]["content"]["application/x-www-form-urlencoded"]["schema"]
    assert [grant["title"] for grant in grants["oneOf"]] == [
        "PasswordGrantForm",
        "RefreshTokenGrant",
    ]
    error = token["responses"]["400"]["content"]["application/json"]["schema"]
    assert error == {"$ref": "#/components/schemas/OAuthError"}


def test_task_schemas_match_the_contract(document: dict[str, Any]) -> None:
    schemas = document["components"]["schemas"]
    assert set(schemas["TaskOut"]["properties"]) == TASK_FIELDS
    assert schemas["TaskCreate"]["additionalProperties"] is False
    assert set(schemas["TaskReplace"]["required"]) == {
        "description",
        "category",
        "deadline",
        "status",
    }
    assert schemas["TaskStatus"]["enum"] == ["To Do", "In Progress", "Done"]
    limit = next(
        p for p in document["paths"]["/tasks"]["get"]["parameters"] if p["name"] == "limit"
    )
    assert (limit["schema"]["minimum"], limit["schema"]["maximum"]) == (1, 100)
    assert limit["schema"]["default"] == 50


OPERATION_IDS = {
    ("post", "/users"): "createUser",
    ("get", "/users/me"): "getMe",
    ("put", "/users/me/password"): "changePassword",
    ("delete", "/users/me"): "deleteMe",
    ("post", "/users/me/logout-all"): "logoutAll",
    ("post", "/users/me/email-verification"): "requestEmailVerification",
    ("get", "/verify-email/{token}"): "getEmailVerificationPage",
    ("post", "/verify-email/{token}"): "verifyEmail",
    ("post", "/token"): "issueToken",
    ("post", "/token/revoke"): "revokeToken",
    ("post", "/tasks"): "createTask",
    ("get", "/tasks"): "listTasks",
    ("get", "/tasks/{task_id}"): "getTask",
    ("patch", "/tasks/{task_id}"): "patchTask",
    ("put", "/tasks/{task_id}"): "replaceTask",
    ("delete", "/tasks/{task_id}"): "deleteTask",
    ("get", "/users/me/notifications"): "getNotificationPreferences",
    ("put", "/users/me/notifications"): "replaceNotificationPreferences",
    ("patch", "/users/me/notifications"): "patchNotificationPreferences",
    ("post", "/users/me/calendar"): "issueCalendarFeed",
    ("delete", "/users/me/calendar"): "revokeCalendarFeed",
    ("get", "/calendar/{feed_secret}"): "getCalendarFeed",
    ("get", "/unsubscribe/{token}"): "getUnsubscribePage",
    ("post", "/unsubscribe/{token}"): "unsubscribe",
    # issue 20: shared lists
    ("post", "/lists"): "createList",
    ("get", "/lists"): "listLists",
    ("get", "/lists/{list_id}"): "getList",
    ("patch", "/lists/{list_id}"): "renameList",
    ("delete", "/lists/{list_id}"): "deleteList",
    ("get", "/lists/{list_id}/members"): "listMembers",
    ("patch", "/lists/{list_id}/members/{user_id}"): "changeMemberRole",
    ("delete", "/lists/{list_id}/members/{user_id}"): "removeMember",
    ("post", "/lists/{list_id}/invitations"): "inviteToList",
    ("get", "/lists/{list_id}/invitations"): "listListInvitations",
    ("delete", "/lists/{list_id}/invitations/{invitation_id}"): "revokeInvitation",
    ("get", "/invitations"): "listMyInvitations",
    ("post", "/invitations/{invitation_id}/accept"): "acceptInvitation",
    ("delete", "/invitations/{invitation_id}"): "declineInvitation",
}


def test_operations_have_stable_human_ids(document: dict[str, Any]) -> None:
    """Generated clients name their functions after these: they are part of the contract."""
    found = {
        (method, path): operation["operationId"]
        for path, operations in document["paths"].items()
        for method, operation in operations.items()
    }
    assert found == OPERATION_IDS


def test_the_document_is_what_the_routes_declare(document: dict[str, Any]) -> None:
    """localdev/openapi.py only renders: each operation is exactly what its function's resolver
    renders from the route declarations, less Powertools' own validation-error responses
    (which Taskline never sends)."""
    from localdev import loader

    template = load()
    loader.add_layers(template)
    seen = set()
    for function in template.functions.values():
        if not function.routes:
            continue
        rendered = (
            loader.load_module(function)
            .app.get_openapi_schema()
            .model_dump(mode="json", by_alias=True, exclude_none=True)
        )
        for path, operations in rendered.get("paths", {}).items():
            for method, operation in operations.items():
                declared = {
                    status: response
                    for status, response in operation["responses"].items()
                    if "ValidationError" not in json.dumps(response)
                }
                assert document["paths"][path][method] == {**operation, "responses": declared}
                seen.add((method, path))
    assert seen == set(OPERATION_IDS)


def test_every_response_is_described_and_errors_are_problems(document: dict[str, Any]) -> None:
    for path, operations in document["paths"].items():
        for method, operation in operations.items():
            for status, response in operation["responses"].items():
                assert response["description"], (method, path, status)
                assert "Successful Response" not in response["description"], (method, path)
                if status.startswith(("4", "5")):
                    assert set(response["content"]) & {
                        "application/problem+json",
                        "application/json",
                    }, (method, path, status)
