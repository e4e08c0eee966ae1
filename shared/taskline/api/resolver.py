"""The Powertools resolver every Taskline function uses, and its Lambda entry point.

Private internals, and upgrading Powertools. The contract's checks run before Powertools
validates a route's input (401 before anything about a protected route's input, then 413, 415,
400 and a JSON array refused as a body), which Powertools has no public hook for. So this
relies on (tests/layer/test_resolver_upstream.py has a test for each, saying what it needs):
- `_request_validation_middleware`: the resolver keeps its request validation middleware
  there, and each route puts it first in its middleware stack when the stack is built (first
  request); `TasklineResolver` replaces it with a subclass that runs the checks first;
- `_static_routes` and `_dynamic_routes`: the registered routes (`method`, `rule`, `path`), for
  405's `Allow` and to tell a declared route from the stand-in Powertools uses for 404;
- `context["_route"]`: the route being called, set before the middlewares run; its
  `security` and `dependant.body_params` (whether the route reads a body);
- `_add_resolver_response_validation_error_response_to_route`: called for every route when the
  OpenAPI document is built; overridden to keep each route's own 500;
- content-type and the JSON body read lazily from the event (after the checks).
`VERIFIED_VERSIONS` is the version that was checked (the pin). On any other, importing this
module raises `UnverifiedVersionError`: the functions refuse to start. A fallback to stock
validation would keep running with those checks gone: anonymous callers told a protected
route's input rules (422 instead of 401), no 413 or 415, and `[{...}, {...}]` creating a task;
the contract's status codes would be false while everything looked fine. A refusal is loud
and early instead: `make test` fails at once, and in AWS publishing a SnapStart version runs
the init (https://docs.aws.amazon.com/lambda/latest/dg/snapstart-activate.html), so it fails
at deploy time, with this message in the init log, not on users' requests. To re-verify after
an upgrade: install it, run `pytest tests/layer/test_resolver_upstream.py` (a failure names the hook
and what changed), then test_handlers.py, test_http_errors.py, test_input_edges.py and
test_openapi.py (the OpenAPI document must stay byte-identical); then set `VERIFIED_VERSIONS`
to the new pin.
"""

from __future__ import annotations

import base64
import binascii
import json
import warnings
from collections.abc import Callable, Mapping
from http import HTTPStatus
from typing import TYPE_CHECKING, Any, Final, cast

import aws_lambda_powertools
from aws_lambda_powertools import Logger, Metrics
from aws_lambda_powertools.event_handler import APIGatewayHttpResolver, Response
from aws_lambda_powertools.event_handler.middlewares import NextMiddleware
from aws_lambda_powertools.event_handler.middlewares.openapi_validation import (
    OpenAPIRequestValidationMiddleware,
)
from aws_lambda_powertools.event_handler.openapi.exceptions import RequestValidationError
from aws_lambda_powertools.event_handler.types import EventHandlerInstance
from aws_lambda_powertools.logging import correlation_paths
from aws_lambda_powertools.utilities.typing import LambdaContext

from taskline import db, errors, upstream
from taskline.api import documentation, problems
from taskline.api.auth import authenticate

# What the private hooks below were verified against: shared/requirements.txt's pin.
VERIFIED_VERSIONS: Final = {"aws-lambda-powertools": "3.37.0"}
_UNVERIFIED = upstream.unverified(
    VERIFIED_VERSIONS,
    {"aws-lambda-powertools": getattr(aws_lambda_powertools, "__version__", None)},
)
if _UNVERIFIED:
    raise upstream.UnverifiedVersionError(
        f"taskline.api.resolver refuses to start on {', '.join(_UNVERIFIED)}: it hooks into "
        "Powertools' private internals, and without them the API's status codes would be "
        "wrong. Pin the verified version in shared/requirements.txt, or re-verify the hooks "
        "(taskline/api/resolver.py's docstring) and update resolver.VERIFIED_VERSIONS."
    )

if TYPE_CHECKING:
    from aws_lambda_powertools.event_handler.openapi.models import OpenAPI

MAX_BODY_BYTES = 64 * 1024
JSON = "application/json"
FORM = "application/x-www-form-urlencoded"
BODY_METHODS = frozenset({"POST", "PUT", "PATCH", "DELETE"})

# Requests that add no metric (reads, errors) are normal; don't warn on every one of them.
warnings.filterwarnings("ignore", message="No application metrics to publish")

LambdaHandler = Callable[[dict[str, Any], LambdaContext], dict[str, Any]]


def _reject_constant(name: str) -> Any:
    raise ValueError(f"{name} is not valid JSON")


def strict_json_loads(text: str | bytes | bytearray) -> Any:
    """json.loads without NaN/Infinity, and with deep nesting reported as bad JSON, not a crash."""
    try:
        return json.loads(text, parse_constant=_reject_constant)
    except (RecursionError, ValueError) as error:
        document = text if isinstance(text, str) else ""
        raise json.JSONDecodeError(str(error) or "nesting too deep", document, 0) from error


def media_type(content_type: str | None) -> str | None:
    """`application/json; charset=utf-8` -> `application/json`."""
    if not content_type:
        return None
    return content_type.split(";", 1)[0].strip().lower() or None


class _GuardedRequestValidation(OpenAPIRequestValidationMiddleware):
    """Powertools' request validation, with our checks run first."""

    def __init__(self, guard: Callable[[], None]) -> None:
        super().__init__()  # type: ignore[no-untyped-call]  # Powertools leaves it unannotated
        self._guard = guard

    def handler(self, app: EventHandlerInstance, next_middleware: NextMiddleware) -> Response[Any]:
        self._guard()
        return super().handler(app, next_middleware)


class TasklineResolver(APIGatewayHttpResolver):
    """An HTTP API (payload 2.0) resolver with the contract's guards and error format built in.

    Before a route's input is validated it authenticates the caller (routes declared with
    `security`), then checks the body's size, media type and encoding;
    unknown paths give 404 and known paths with the wrong method 405 with `Allow`.
    """

    def __init__(self, allowed_methods: Callable[[str], list[str]] | None = None) -> None:
        super().__init__(
            enable_validation=True,
            response_validation_error_http_code=HTTPStatus.INTERNAL_SERVER_ERROR,
            json_body_deserializer=strict_json_loads,
        )
        self._allowed_methods = allowed_methods or self.own_allowed_methods
        self._media_types: dict[tuple[str, str], tuple[str, ...]] = {}
        # What the OpenAPI document says about the API as a whole; the routes say the rest.
        self.configure_openapi(
            title=documentation.TITLE,
            version=documentation.VERSION,
            description=documentation.DESCRIPTION,
        )
        problems.register(self)
        self.not_found(self._no_route)
        self._request_validation_middleware = _GuardedRequestValidation(self._guard_request)

    def resolve(self, event: Mapping[str, Any], context: LambdaContext) -> dict[str, Any]:
        # An account route's sign-in check (taskline.api.auth) is this request's only: it
        # must not run in a later request's units of work, nor in other code of this thread.
        db.check_every_unit_of_work(None)
        try:
            return super().resolve(event, context)
        finally:
            db.check_every_unit_of_work(None)

    def get_openapi_schema(self, **options: Any) -> OpenAPI:
        # The servers and security schemes are Powertools' OpenAPI models, made here rather
        # than at import: a request never needs them (taskline.api.documentation).
        options["servers"] = options.get("servers") or documentation.servers()
        options["security_schemes"] = (
            options.get("security_schemes") or documentation.security_schemes()
        )
        return super().get_openapi_schema(**options)

    def _add_resolver_response_validation_error_response_to_route(
        self, route_openapi_path: tuple[dict[str, Any], dict[str, Any]]
    ) -> tuple[dict[str, Any], dict[str, Any]]:
        # Powertools would document every operation's 500 as its ResponseValidationError body,
        # over the 500 each route declares; a response that fails validation is answered with
        # the route's declared problem+json 500 (taskline.api.problems), so keep that one.
        return route_openapi_path

    def accepts(self, method: str, path: str, *media_types: str) -> None:
        """Let a route read other media types than JSON (POST /token reads forms too)."""
        self._media_types[(method.upper(), path)] = media_types

    def own_allowed_methods(self, path: str) -> list[str]:
        routes = self._static_routes + self._dynamic_routes
        return sorted({route.method for route in routes if route.rule.match(path)})

    def _no_route(self, _: Exception) -> Response[str]:
        allowed = self._allowed_methods(self.current_event.path)
        if allowed:
            return problems.response_for(errors.MethodNotAllowed(allowed))
        return problems.response_for(errors.RouteNotFound())

    def _guard_request(self) -> None:
        route = self.context["_route"]
        if not self._is_declared(route):
            # Powertools sends unmatched requests through the middleware chain on a stand-in
            # route; those get 404/405 whatever their body, so nothing is checked for them.
            return
        # Anonymous callers learn nothing about a protected route's input rules.
        if route.security:
            authenticate(self, route.func)
        self._guard_body()

    def _is_declared(self, route: object) -> bool:
        return any(route is declared for declared in self._static_routes + self._dynamic_routes)

    def _guard_body(self) -> None:
        event = self.current_event
        method = event.http_method.upper()
        if method not in BODY_METHODS or not event.body:
            return
        raw = event.body.encode()
        if event.is_base64_encoded:
            try:
                raw = base64.b64decode(raw, validate=True)
            except binascii.Error as error:
                raise errors.MalformedBody from error
        if len(raw) > MAX_BODY_BYTES:
            raise errors.PayloadTooLarge(f"The body must be at most {MAX_BODY_BYTES} bytes.")
        route = self.context["_route"]
        accepted = self._media_types.get((method, route.path), (JSON,))
        sent = media_type(event.headers.get("content-type"))
        # A body without Content-Type is read as JSON, as most JSON APIs do.
        if sent is not None and sent not in accepted and not sent.endswith("+json"):
            raise errors.UnsupportedMediaType(accepted)
        headers = event.raw_event.get("headers") or {}
        if "content-type" in headers:
            # Media types are case-insensitive (RFC 9110), but Powertools compares them as sent.
            headers["content-type"] = headers["content-type"].lower()
        try:
            raw.decode()
        except UnicodeDecodeError as error:
            raise errors.MalformedBody from error
        if route.dependant.body_params:
            self._refuse_json_arrays()

    def _refuse_json_arrays(self) -> None:
        """Powertools validates the first item of a JSON array as if it were the whole body
        (`[{...}, {...}]` would create one task); our bodies are JSON objects, never arrays."""
        try:
            document = self.current_event.json_body  # parsed once; validation reuses it
        except ValueError as error:  # json.JSONDecodeError from strict_json_loads
            raise errors.MalformedBody from error
        if isinstance(document, list):
            raise RequestValidationError(
                [{"loc": ("body",), "msg": "Input should be a JSON object", "type": "model_type"}]
            )


def lambda_entry_point(app: TasklineResolver, logger: Logger, metrics: Metrics) -> LambdaHandler:
    """The function's handler: correlation id in every log line, metrics flushed per invocation."""

    def lambda_handler(event: dict[str, Any], context: LambdaContext) -> dict[str, Any]:
        return app.resolve(event, context)

    with_logging = logger.inject_lambda_context(
        lambda_handler, correlation_id_path=correlation_paths.API_GATEWAY_HTTP
    )
    return cast(LambdaHandler, metrics.log_metrics(with_logging, raise_on_empty_metrics=False))
