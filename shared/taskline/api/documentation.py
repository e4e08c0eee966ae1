"""What the OpenAPI document says, in pieces the routes declare: the security schemes, the
document's front matter, and the responses every route lists for itself.

Routes are declared through `Routes`, which files each under its tag and builds its
`responses=` with `responses`. `make openapi` (localdev/openapi.py) only renders what the
resolvers declare from these; it adds nothing of its own.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import TYPE_CHECKING, Any, Literal, TypedDict

from aws_lambda_powertools.event_handler import APIGatewayHttpResolver
from aws_lambda_powertools.event_handler.openapi.params import Body
from aws_lambda_powertools.event_handler.openapi.types import OpenAPIResponseHeader
from pydantic import BaseModel

from taskline.api.auth import (
    ACCOUNT_PATH_PREFIX,
    BEARER_SECURITY,
    SignedIn,
    require_live_sign_in,
)
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


def _response(
    description: str,
    content: dict[str, Any],
    headers: dict[str, OpenAPIResponseHeader] | None = None,
    links: dict[str, Any] | None = None,
) -> Any:
    response: dict[str, Any] = {"description": description, "content": content}
    if headers:
        response["headers"] = headers
    if links:
        response["links"] = links
    return response


def problem(description: str, headers: dict[str, OpenAPIResponseHeader] | None = None) -> Any:
    """A problem+json response (RFC 9457)."""
    return _response(description, {PROBLEM_JSON: {"model": Problem}}, headers)


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
    return _response(description, content, headers)


def returns(
    description: str,
    model: Any = None,
    *,
    content: dict[str, Any] | None = None,
    headers: dict[str, OpenAPIResponseHeader] | None = None,
    links: dict[str, Any] | None = None,
) -> Any:
    """A success response: a JSON body of `model` (a model class or `list[...]`), or else the
    `content` given by media type, or else no body at all (a 204, or a 200 with an empty body:
    Powertools would otherwise document `Response[None]` as null), with the headers and links
    it carries."""
    body = {JSON: {"model": model}} if model is not None else content or {}
    return _response(description, body, headers, links)


def text(media_type: str) -> dict[str, Any]:
    """The `content` of a response whose body is text of one media type (a page, a feed)."""
    return {media_type: {"schema": {"type": "string"}}}


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
# A route that reads a body can answer these before it parses it.
UNREADABLE_BODY: dict[int, Any] = {
    413: problem("The body is larger than 64 KiB."),
    415: problem("Unsupported Content-Type."),
}
# Every route that reads a JSON body can answer these, before its input is validated.
BODY_ERRORS: dict[int, Any] = {
    400: problem("The body is not valid JSON (or not valid UTF-8 or base64)."),
    **UNREADABLE_BODY,
}


# What a route that reads a body answers when it cannot: "json", a body it reads as JSON (400,
# 413, 415); "own", a body it parses itself, whose 400 it declares with its own errors.
BODY_ERRORS_BY_KIND: dict[str, dict[int, Any]] = {"json": BODY_ERRORS, "own": UNREADABLE_BODY}


def responses(
    success: dict[int, Any],
    errors: dict[int, Any] | None = None,
    *,
    signed_in: bool = False,
    invalid: Any = False,
    body: Literal["json", "own"] | None = None,
) -> dict[int, Any]:
    """A route's `responses=`, in the order the document lists them: its successes, 401 when
    it takes a bearer token (`signed_in`), its own `errors`, 422 for a route with parameters
    or a body to validate (`invalid`: True, or the route's own 422), the errors of the `body`
    it reads (`BODY_ERRORS_BY_KIND`), then 500 and 503."""
    return {
        **success,
        **({401: UNAUTHORIZED} if signed_in else {}),
        **(errors or {}),
        **({422: INVALID if invalid is True else invalid} if invalid else {}),
        **(BODY_ERRORS_BY_KIND[body] if body else {}),
        **ALWAYS,
    }


def openapi_examples(model: type[BaseModel]) -> dict[str, Any]:
    """A request body's examples (the model's own), named for Swagger UI's example picker: the
    first one is what "Try it out" starts from."""
    examples = model.model_json_schema().get("examples", [])
    return {
        f"example{index + 1}" if index else "default": {"value": example}
        for index, example in enumerate(examples)
    }


def example_body(model: type[BaseModel]) -> Any:
    """A JSON request body documented with the model's own examples."""
    return Body(openapi_examples=openapi_examples(model))


class RouteOptions(TypedDict, total=False):
    """Keywords of `Routes.route`, for a set of them several routes share."""

    errors: dict[int, Any]
    invalid: Any
    body: Literal["json", "own"]


class Routes:
    """A function's routes under one OpenAPI tag, each declared with what is its own: path,
    operation id, summary, successes and errors (as `responses` takes them). `signed_in`
    routes take a bearer token: the resolver then requires one (it authenticates every route
    declared with `security`), and their responses include its 401. `SignedIn.LIVE` also
    refuses a token whose sign-in has ended (taskline.api.auth); routes of account-level state
    (under /users/me) must be declared so, or the function does not start."""

    def __init__(
        self, app: APIGatewayHttpResolver, tag: str, *, signed_in: SignedIn | None = None
    ) -> None:
        self._app = app
        self._tag = tag
        self._signed_in = signed_in

    def route[F: Callable[..., Any]](
        self,
        method: str,
        path: str,
        operation_id: str,
        summary: str,
        success: dict[int, Any],
        *,
        errors: dict[int, Any] | None = None,
        invalid: Any = False,
        body: Literal["json", "own"] | None = None,
        description: str | None = None,
        request_body: dict[str, Any] | None = None,
    ) -> Callable[[F], F]:
        """The route's status code is its success's (the first 2xx in `success`).
        `request_body`: the OpenAPI request body, for a route that reads its body itself (a
        form) rather than through a model Powertools would document."""
        live = self._signed_in is SignedIn.LIVE
        if path.startswith(ACCOUNT_PATH_PREFIX) and not live:
            raise ValueError(f"{method} {path} is account-level: declare it SignedIn.LIVE")
        register = self._app.route(
            path,
            method,
            summary=summary,
            description=description,
            responses=responses(
                success, errors, signed_in=self._signed_in is not None, invalid=invalid, body=body
            ),
            tags=[self._tag],
            operation_id=operation_id,
            security=BEARER_SECURITY if self._signed_in is not None else None,
            openapi_extensions={"requestBody": request_body} if request_body else None,
            status_code=min(code for code in success if 200 <= code < 300),
        )

        def declare(handler: F) -> F:
            if live:
                require_live_sign_in(handler)
            return register(handler)

        return declare
