"""What the OpenAPI document says, in pieces the routes declare: the security schemes, the
document's front matter, and the responses every route lists for itself.

`make openapi` (localdev/openapi.py) only renders what the resolvers declare from these; it
adds nothing of its own.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from aws_lambda_powertools.event_handler.openapi.types import OpenAPIResponse, OpenAPIResponseHeader
from pydantic import BaseModel

from taskline.schemas import OAuthError, Problem

if TYPE_CHECKING:
    from aws_lambda_powertools.event_handler.openapi.models import SecurityScheme, Server

PROBLEM_JSON = "application/problem+json"
JSON = "application/json"
FORM = "application/x-www-form-urlencoded"

TITLE = "Taskline"
VERSION = "1.0.0"
DESCRIPTION = (
    "Task management API. Get a token from POST /token, then send "
    "`Authorization: Bearer <token>`. Errors are RFC 9457 problem+json."
)


# Powertools' OpenAPI object models are about 70 pydantic classes, the costliest module a
# function would import (docs/performance.md); only building the document needs them, never a
# request, so they are imported when the document is built (TasklineResolver.get_openapi_schema).
def servers() -> list[Server]:
    from aws_lambda_powertools.event_handler.openapi.models import Server

    return [Server(url="/")]


def security_schemes() -> dict[str, SecurityScheme]:
    from aws_lambda_powertools.event_handler.openapi.models import (
        HTTPBearer,
        OAuth2,
        OAuthFlowPassword,
        OAuthFlows,
    )

    return {
        "bearerAuth": HTTPBearer(bearerFormat="JWT"),
        "oauth2": OAuth2(
            flows=OAuthFlows(password=OAuthFlowPassword(tokenUrl="/token", scopes={}))
        ),
    }


RETRY_AFTER: dict[str, OpenAPIResponseHeader] = {
    "Retry-After": {
        "description": "Seconds until attempts are accepted again.",
        "schema": {"type": "integer", "minimum": 1},
    }
}
NO_STORE: dict[str, OpenAPIResponseHeader] = {
    "Cache-Control": {"schema": {"type": "string", "enum": ["no-store"]}},
}
WWW_AUTHENTICATE: dict[str, OpenAPIResponseHeader] = {
    "WWW-Authenticate": {
        "description": 'The RFC 6750 challenge: `Bearer realm="taskline"`, with `error` and '
        "`error_description` when a token was presented.",
        "schema": {"type": "string"},
    }
}


def problem(description: str, headers: dict[str, OpenAPIResponseHeader] | None = None) -> Any:
    """A problem+json response (RFC 9457)."""
    response: OpenAPIResponse = {
        "description": description,
        "content": {PROBLEM_JSON: {"model": Problem}},
    }
    if headers:
        response["headers"] = headers
    return response


def oauth_error(
    description: str,
    *,
    or_problem: bool = False,
    headers: dict[str, OpenAPIResponseHeader] | None = None,
) -> Any:
    """An RFC 6749 section 5.2 error; `or_problem`: a body that cannot be read at all is
    problem+json there too, as on every route."""
    content: dict[str, Any] = {JSON: {"model": OAuthError}}
    if or_problem:
        content[PROBLEM_JSON] = {"model": Problem}
    response: OpenAPIResponse = {"description": description, "content": content}
    if headers:
        response["headers"] = headers
    return response


def no_content(description: str = "Done; no content.") -> Any:
    """A 204: no body at all (Powertools would otherwise document `Response[None]` as null)."""
    return {"description": description, "content": {}}


UNAUTHORIZED = problem("Missing, malformed, expired or untrusted token.", WWW_AUTHENTICATE)
INVALID = problem("The input is invalid; `errors` says where.")
NO_SUCH_TASK = problem("No such task (or not yours).")
STALE = problem("If-Match names none of the task's current ETags.")
WRONG_PASSWORD = problem("The password is incorrect.")
THROTTLED = problem("Too many failed password attempts; wait Retry-After seconds.", RETRY_AFTER)

# Every route can answer these.
ALWAYS: dict[int, Any] = {
    500: problem("Unexpected failure (with a correlation id)."),
    503: problem("The database is unavailable.", {"Retry-After": {"schema": {"type": "integer"}}}),
}
# Every route that reads a body can answer these, before its input is validated.
BODY_ERRORS: dict[int, Any] = {
    400: problem("The body is not valid JSON (or not valid UTF-8 or base64)."),
    413: problem("The body is larger than 64 KiB."),
    415: problem("Unsupported Content-Type."),
}


def openapi_examples(model: type[BaseModel]) -> dict[str, Any]:
    """A request body's examples (the model's own), named for Swagger UI's example picker: the
    first one is what "Try it out" starts from."""
    examples = model.model_json_schema().get("examples", [])
    return {
        f"example{index + 1}" if index else "default": {"value": example}
        for index, example in enumerate(examples)
    }
