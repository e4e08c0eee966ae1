"""Generate the API's single OpenAPI document from every function's resolver.

    python -m localdev.openapi          # write shared/taskline/api/openapi.json
    python -m localdev.openapi --check  # fail if the committed document is stale

Each Lambda function has its own resolver; this merges their schemas and adds what
Powertools cannot express (the token endpoint's form/JSON body, the security schemes).
"""

from __future__ import annotations

import copy
import json
import re
import sys
from typing import Any

from aws_lambda_powertools.event_handler.openapi.models import (
    HTTPBearer,
    OAuth2,
    OAuthFlowPassword,
    OAuthFlows,
    SecurityScheme,
)
from pydantic import BaseModel

from localdev import loader
from localdev.template import ROOT, load

OUTPUT = ROOT / "shared" / "taskline" / "api" / "openapi.json"
PROBLEM_JSON = "application/problem+json"
SECURITY_SCHEMES: dict[str, SecurityScheme] = {
    "bearerAuth": HTTPBearer(bearerFormat="JWT"),
    "oauth2": OAuth2(flows=OAuthFlows(password=OAuthFlowPassword(tokenUrl="/token", scopes={}))),
}

PROBLEM_SCHEMA: dict[str, Any] = {
    "type": "object",
    "required": ["type", "title", "status", "detail"],
    "properties": {
        "type": {"type": "string"},
        "title": {"type": "string"},
        "status": {"type": "integer"},
        "detail": {"type": "string"},
        "correlation_id": {"type": "string"},
        "errors": {
            "type": "array",
            "items": {
                "type": "object",
                "required": ["loc", "msg", "type"],
                "properties": {
                    "loc": {"type": "array", "items": {"type": ["string", "integer"]}},
                    "msg": {"type": "string"},
                    "type": {"type": "string"},
                },
            },
        },
    },
}

OAUTH_ERROR_SCHEMA: dict[str, Any] = {
    "type": "object",
    "required": ["error", "error_description"],
    "properties": {
        "error": {
            "type": "string",
            "enum": ["invalid_grant", "invalid_request", "unsupported_grant_type", "slow_down"],
        },
        "error_description": {"type": "string"},
    },
}

PASSWORD = {"type": "string", "format": "password"}
PASSWORD_GRANT_FORM: dict[str, Any] = {
    "type": "object",
    "title": "Password grant",
    "required": ["username", "password"],
    "properties": {
        "grant_type": {"type": "string", "enum": ["password"], "default": "password"},
        "username": {"type": "string", "description": "The account's email."},
        "password": PASSWORD,
    },
}
PASSWORD_GRANT_JSON: dict[str, Any] = {
    "type": "object",
    "title": "Password grant",
    "required": ["email", "password"],
    "properties": {
        "grant_type": {"type": "string", "enum": ["password"], "default": "password"},
        "email": {"type": "string", "format": "email"},
        "password": PASSWORD,
    },
}
REFRESH_GRANT: dict[str, Any] = {
    "type": "object",
    "title": "Refresh token grant",
    "required": ["grant_type", "refresh_token"],
    "properties": {
        "grant_type": {"type": "string", "enum": ["refresh_token"]},
        "refresh_token": {
            "type": "string",
            "description": "From the last token response; each one works once.",
        },
    },
}
TOKEN_REQUEST_BODY: dict[str, Any] = {
    "required": True,
    "content": {
        "application/x-www-form-urlencoded": {
            "schema": {"oneOf": [PASSWORD_GRANT_FORM, REFRESH_GRANT]}
        },
        "application/json": {"schema": {"oneOf": [PASSWORD_GRANT_JSON, REFRESH_GRANT]}},
    },
}
REVOCATION: dict[str, Any] = {
    "type": "object",
    "required": ["token"],
    "properties": {
        "token": {"type": "string", "description": "A refresh token or an access token."},
        # No type and no enum: the hint is ignored, whatever its value (RFC 7009 section 2.1
        # has the server search every token type anyway), so any JSON value is accepted.
        "token_type_hint": {
            "examples": ["refresh_token", "access_token"],
            "description": "Optional and ignored, whatever its value: the kind of token is "
            "told by its shape.",
        },
    },
}
REVOKE_REQUEST_BODY: dict[str, Any] = {
    "required": True,
    "content": {
        "application/x-www-form-urlencoded": {"schema": REVOCATION},
        "application/json": {"schema": REVOCATION},
    },
}
RETRY_AFTER = {
    "Retry-After": {
        "description": "Seconds until attempts are accepted again.",
        "schema": {"type": "integer", "minimum": 1},
    }
}
NO_STORE = {
    "Cache-Control": {"schema": {"type": "string", "enum": ["no-store"]}},
}


def _with_model_lengths(body: dict[str, Any]) -> dict[str, Any]:
    """The token endpoints' hand-written bodies, with each field's minLength/maxLength taken from
    the pydantic model that parses it, so the document promises exactly what the code accepts."""
    # Imported here: the layer is on sys.path only once loader.add_layers() has run.
    from taskline.schemas import PasswordGrant, RefreshGrant, TokenRevocation

    models: dict[str, tuple[type[BaseModel], str]] = {
        "username": (PasswordGrant, "username"),
        "email": (PasswordGrant, "username"),
        "password": (PasswordGrant, "password"),
        "refresh_token": (RefreshGrant, "refresh_token"),
        "token": (TokenRevocation, "token"),
    }
    body = copy.deepcopy(body)
    for media in body["content"].values():
        schema = media["schema"]
        for variant in schema.get("oneOf", [schema]):
            for name, field_schema in variant["properties"].items():
                if name in models:
                    model, field = models[name]
                    rules = model.model_json_schema()["properties"][field]
                    field_schema.update(
                        {k: rules[k] for k in ("minLength", "maxLength") if k in rules}
                    )
    return body


def _problem(description: str) -> dict[str, Any]:
    return {
        "description": description,
        "content": {PROBLEM_JSON: {"schema": {"$ref": "#/components/schemas/Problem"}}},
    }


def _oauth_error(description: str, *, or_problem: bool = False) -> dict[str, Any]:
    """RFC 6749 section 5.2 errors; `or_problem`: an unreadable body is problem+json there too."""
    content: dict[str, Any] = {
        "application/json": {"schema": {"$ref": "#/components/schemas/OAuthError"}}
    }
    if or_problem:
        content[PROBLEM_JSON] = {"schema": {"$ref": "#/components/schemas/Problem"}}
    return {"description": description, "content": content}


def _token_endpoint(operation: dict[str, Any], body: dict[str, Any], bad_request: str) -> None:
    operation["requestBody"] = body
    responses = operation["responses"]
    responses.pop("422", None)
    responses["400"] = _oauth_error(bad_request, or_problem=True)
    responses["400"]["headers"] = NO_STORE
    responses["413"] = _problem("The body is larger than 64 KiB.")
    responses["415"] = _problem("Unsupported Content-Type.")


def _password_confirmed(operation: dict[str, Any]) -> None:
    """Routes that check the account's password: wrong (403) or throttled (429)."""
    responses = operation["responses"]
    responses["403"] = _problem("The password is incorrect.")
    responses["429"] = _problem("Too many failed password attempts; wait Retry-After seconds.")
    responses["429"]["headers"] = RETRY_AFTER


def _accepts_header(operation: dict[str, Any], name: str) -> bool:
    return any(
        p.get("in") == "header" and p.get("name", "").lower() == name.lower()
        for p in operation.get("parameters", [])
    )


def _add_links(paths: dict[str, Any], schemas: dict[str, Any]) -> None:
    """OpenAPI links, so clients and the fuzzer's stateful phase can chain operations:
    - a create (`POST /things` answering 201 with an `id`) links to every operation on
      `/things/{thing_id}`;
    - a response carrying an `ETag` links to the operations on the same item that take
      `If-Match`, passing the tag along.
    """
    for path, operations in paths.items():
        created = operations.get("post", {}).get("responses", {}).get("201", {})
        body = created.get("content", {}).get("application/json", {}).get("schema", {})
        component = schemas.get(str(body.get("$ref", "")).rpartition("/")[2], {})
        if "id" not in component.get("properties", {}):
            continue
        for item_path, item_operations in paths.items():
            parent, _, last = item_path.rpartition("/")
            if parent != path or not (last.startswith("{") and last.endswith("}")):
                continue
            for operation in item_operations.values():
                parameters = {last[1:-1]: "$response.body#/id"}
                if "ETag" in created.get("headers", {}) and _accepts_header(operation, "If-Match"):
                    parameters["header.If-Match"] = "$response.header.ETag"
                created.setdefault("links", {})[operation["operationId"]] = {
                    "operationId": operation["operationId"],
                    "parameters": parameters,
                }
    for path, operations in paths.items():
        variables = re.findall(r"\{([^}]+)\}", path)
        for operation in operations.values():
            read = operation.get("responses", {}).get("200", {})
            if not variables or "ETag" not in read.get("headers", {}):
                continue
            for target in operations.values():
                if _accepts_header(target, "If-Match"):
                    parameters = {name: f"$request.path.{name}" for name in variables}
                    parameters["header.If-Match"] = "$response.header.ETag"
                    read.setdefault("links", {})[target["operationId"]] = {
                        "operationId": target["operationId"],
                        "parameters": parameters,
                    }


def _tidy_parameters(operation: dict[str, Any]) -> None:
    """Optional parameters are simply left out, never null (`T | None` in Python says only
    that), and header names appear as usually written (Powertools lower-cases them)."""
    for parameter in operation.get("parameters", []):
        schema = parameter.get("schema", {})
        variants = [v for v in schema.get("anyOf", []) if v.get("type") != "null"]
        if len(variants) == 1:
            del schema["anyOf"]
            schema.update(variants[0])
        if parameter.get("in") == "header":
            parameter["name"] = "-".join(part.capitalize() for part in parameter["name"].split("-"))


ONE_CLICK_FORM: dict[str, Any] = {
    "type": "object",
    "required": ["List-Unsubscribe"],
    "properties": {"List-Unsubscribe": {"type": "string", "enum": ["One-Click"]}},
}


def _notification_routes(paths: dict[str, Any]) -> None:
    """The reminder routes' non-JSON parts: problem bodies of their own errors, the calendar's
    304 (no body), and the RFC 8058 form body of the one-click unsubscribe POST."""
    for path in ("/users/me/calendar", "/calendar/{feed_secret}", "/unsubscribe/{token}"):
        for operation in paths.get(path, {}).values():
            for status, response in operation.get("responses", {}).items():
                if status in {"400", "404", "410"}:
                    response.update(_problem(response["description"]))
                elif status == "304":
                    response.pop("content", None)
    post = paths.get("/unsubscribe/{token}", {}).get("post")
    if post is not None:
        post["requestBody"] = {
            "required": True,
            "content": {
                # multipart/form-data, which RFC 8058 also allows, is accepted as well
                # (tests/test_reminders.py) but left out here: see docs/deadlines.md.
                "application/x-www-form-urlencoded": {
                    "schema": ONE_CLICK_FORM,
                    "example": {"List-Unsubscribe": "One-Click"},
                },
            },
        }
        post["responses"]["400"] = _problem("No `List-Unsubscribe=One-Click` in the body.")
        post["responses"]["413"] = _problem("The body is larger than 64 KiB.")
        post["responses"]["415"] = _problem("Unsupported Content-Type.")


def build() -> dict[str, Any]:
    template = load()
    loader.add_layers(template)
    paths: dict[str, Any] = {}
    schemas: dict[str, Any] = {}
    for function in template.functions.values():
        if not function.routes:
            continue  # the deadline check and the migrations have no HTTP resolver
        app = loader.load_module(function).app
        schema = app.get_openapi_schema(
            title="Taskline", version="1.0.0", security_schemes=SECURITY_SCHEMES
        ).model_dump(mode="json", by_alias=True, exclude_none=True)
        for path, operations in schema.get("paths", {}).items():
            paths.setdefault(path, {}).update(operations)
        schemas.update(schema.get("components", {}).get("schemas", {}))
    schemas.pop("HTTPValidationError", None)
    schemas.pop("ValidationError", None)
    schemas.pop("ResponseValidationError", None)  # never sent: response errors are a plain 500
    schemas["Problem"] = PROBLEM_SCHEMA
    schemas["OAuthError"] = OAUTH_ERROR_SCHEMA

    for path, operations in paths.items():
        for operation in operations.values():
            responses = operation.setdefault("responses", {})
            if "204" in responses:  # Powertools documents `-> Response[None]` as a JSON null
                responses["204"] = {"description": "Done; no content."}
            if operation.get("parameters") or "requestBody" in operation:
                responses["422"] = _problem("The input is invalid; `errors` says where.")
            else:  # nothing to validate
                responses.pop("422", None)
            if operation.get("security"):
                responses["401"] = _problem("Missing, malformed, expired or untrusted token.")
            if "{" in path and "404" not in responses:  # routes may say what their 404 means
                responses["404"] = _problem("No such task (or not yours).")
            if "requestBody" in operation or path == "/token":
                responses["400"] = _problem("The body is not valid JSON.")
                responses["413"] = _problem("The body is larger than 64 KiB.")
                responses["415"] = _problem("Unsupported Content-Type.")
            _tidy_parameters(operation)
            if _accepts_header(operation, "If-Match"):
                responses["412"] = _problem("If-Match names none of the task's current ETags.")
            responses["503"] = _problem("The database is unavailable.")
            responses["500"] = _problem("Unexpected failure (with a correlation id).")

    _add_links(paths, schemas)
    _notification_routes(paths)

    token = paths["/token"]["post"]
    token["description"] = (
        "OAuth2 token endpoint. `grant_type=password` (the default) starts a session from "
        "email and password; `grant_type=refresh_token` exchanges the session's latest refresh "
        "token for a new pair (RFC 6749 section 6). Each refresh token works once: presenting "
        "one again ends its session. Failed password checks are throttled per account and per "
        "source IP (429 with Retry-After)."
    )
    _token_endpoint(
        token,
        _with_model_lengths(TOKEN_REQUEST_BODY),
        "Bad credentials, an invalid, used or expired refresh token, or a malformed grant "
        "(RFC 6749 section 5.2; a body that is not JSON at all is problem+json).",
    )
    token["responses"]["200"]["headers"] = NO_STORE
    token["responses"]["429"] = _oauth_error(
        "Too many failed password attempts for this account or from this address "
        "(`slow_down`); the same for unknown emails."
    )
    token["responses"]["429"]["headers"] = {**RETRY_AFTER, **NO_STORE}

    revoke = paths["/token/revoke"]["post"]
    revoke["description"] = (
        "RFC 7009 revocation: ends the session of a refresh token or an access token. Unknown, "
        "invalid or expired tokens get 200 as well. Access tokens are stateless: those already "
        "issued keep working on the task routes until they expire (at most "
        "ACCESS_TOKEN_TTL_SECONDS); the account routes refuse them at once."
    )
    _token_endpoint(
        revoke,
        _with_model_lengths(REVOKE_REQUEST_BODY),
        "No `token`, or one longer than any token we issue (invalid_request).",
    )
    revoke["responses"]["200"] = {
        "description": "Revoked, or nothing to revoke; empty body.",
        "headers": NO_STORE,
    }

    paths["/users"]["post"]["responses"]["409"] = _problem("The email is already registered.")
    paths["/users/me/logout-all"]["post"]["description"] = (
        "Ends every session of the account, this one included: all refresh tokens stop "
        "working. Access tokens already issued run out within ACCESS_TOKEN_TTL_SECONDS on the "
        "task routes; the account routes refuse them at once."
    )
    change = paths["/users/me/password"]["put"]
    change["description"] = (
        "Needs the current password. Ends every other session of the account; this one "
        "goes on. Wrong passwords count towards login throttling."
    )
    _password_confirmed(change)
    delete_me = paths["/users/me"]["delete"]
    delete_me["description"] = (
        "Needs the password in the JSON body. Deletes the account with its tasks, sessions "
        "and refresh tokens, in one transaction."
    )
    _password_confirmed(delete_me)

    return {
        "openapi": "3.1.0",
        "info": {
            "title": "Taskline",
            "version": "1.0.0",
            "description": "Task management API. Get a token from POST /token, then send "
            "`Authorization: Bearer <token>`. Errors are RFC 9457 problem+json.",
        },
        "servers": [{"url": "/"}],
        "paths": dict(sorted(paths.items())),
        "components": {
            "schemas": dict(sorted(schemas.items())),
            "securitySchemes": {
                name: scheme.model_dump(mode="json", by_alias=True, exclude_none=True)
                for name, scheme in SECURITY_SCHEMES.items()
            },
        },
    }


def render() -> str:
    return json.dumps(build(), indent=2, sort_keys=False) + "\n"


def main() -> int:
    text = render()
    if "--check" in sys.argv:
        if not OUTPUT.exists() or OUTPUT.read_text() != text:
            print(f"{OUTPUT.relative_to(ROOT)} is stale: run `make openapi`", file=sys.stderr)
            return 1
        return 0
    OUTPUT.write_text(text)
    print(f"wrote {OUTPUT.relative_to(ROOT)}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
