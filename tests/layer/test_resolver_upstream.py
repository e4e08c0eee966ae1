"""What taskline.api.resolver takes from Powertools' internals, one test per hook.

The resolver runs the contract's checks (authentication, body size, media type, encoding, no
JSON arrays) before Powertools validates a route's input, through internals Powertools does not
document (see its docstring). Each test here names one thing it relies on and fails, with what
to do, when an upgrade changed it; the last ones show that on a Powertools version it was not
verified against, the functions refuse to start with a clear message. After an upgrade, run
this file first.
"""

from __future__ import annotations

import inspect
import json
import subprocess
from typing import Annotated, Any

import pytest
from aws_lambda_powertools.event_handler import APIGatewayHttpResolver
from aws_lambda_powertools.event_handler.api_gateway import Route
from aws_lambda_powertools.event_handler.middlewares.openapi_validation import (
    OpenAPIRequestValidationMiddleware,
)
from aws_lambda_powertools.event_handler.openapi.params import Body
from pydantic import BaseModel

from localdev.events import http_api_event
from localdev.gateway import LambdaContext
from taskline.api.auth import BEARER_SECURITY
from taskline.api.resolver import MAX_BODY_BYTES, TasklineResolver
from tests.support.api import forge_token, valid_claims
from tests.support.processes import run_python

HOW_TO = "re-verify as taskline/api/resolver.py's docstring says"


class Thing(BaseModel):
    name: str


def _app() -> tuple[TasklineResolver, dict[str, Any]]:
    """A resolver with a public read, a protected write with a body, and a declared 500; what
    each handler saw is kept in the returned dict."""
    app = TasklineResolver()
    seen: dict[str, Any] = {}

    @app.get("/things", responses={500: {"description": "Declared by the route"}})
    def list_things() -> dict[str, Any]:
        seen["route"] = app.context["_route"]
        return {"things": []}

    @app.post("/things/<thing_id>", security=BEARER_SECURITY)
    def rename_thing(thing_id: str, thing: Annotated[Thing, Body()]) -> dict[str, Any]:
        seen["route"] = app.context["_route"]
        return {"id": thing_id, "name": thing.name}

    return app, seen


def _call(
    app: APIGatewayHttpResolver,
    method: str,
    path: str,
    body: bytes = b"",
    headers: dict[str, str] | None = None,
) -> tuple[int, dict[str, Any]]:
    event = http_api_event(
        method=method, path=path, headers=list((headers or {}).items()), body=body, route=None
    )
    result = app.resolve(event, LambdaContext("ThingsFunction", 10))  # type: ignore[arg-type]
    return int(result["statusCode"]), {
        "headers": {k.lower(): v for k, v in (result.get("headers") or {}).items()},
        "body": json.loads(result["body"]) if result.get("body") else None,
    }


def _bearer() -> dict[str, str]:
    return {"Authorization": f"Bearer {forge_token(valid_claims(1))}"}


JSON_HEADERS = {"Content-Type": "application/json"}


# --- _request_validation_middleware


def test_powertools_keeps_its_request_validation_middleware_where_the_resolver_replaces_it() -> (
    None
):
    """Powertools' resolver keeps its request validation middleware in
    `_request_validation_middleware` and puts that object first in each route's middleware
    stack when the stack is built; TasklineResolver swaps in a subclass that checks first."""
    stock = APIGatewayHttpResolver(enable_validation=True)
    middleware = getattr(stock, "_request_validation_middleware", None)
    assert isinstance(middleware, OpenAPIRequestValidationMiddleware), (
        f"Powertools no longer keeps its request validation in _request_validation_middleware "
        f"(found {middleware!r}): the contract's checks would not run: {HOW_TO}"
    )
    parameters = list(inspect.signature(OpenAPIRequestValidationMiddleware.__init__).parameters)
    assert parameters == ["self"], f"its __init__ now takes {parameters}: {HOW_TO}"
    parameters = list(inspect.signature(OpenAPIRequestValidationMiddleware.handler).parameters)
    assert parameters == ["self", "app", "next_middleware"], f"handler takes {parameters}: {HOW_TO}"
    source = inspect.getsource(Route._build_middleware_stack)
    assert "all_middlewares.append(app._request_validation_middleware)" in source, (
        f"Route._build_middleware_stack no longer reads app._request_validation_middleware "
        f"when it builds the stack: {HOW_TO}"
    )


def test_the_contracts_checks_run_before_powertools_validates() -> None:
    """Through the swapped middleware: each check answers before validation would have said 422
    (the order the contract's status codes depend on)."""
    app, _ = _app()
    bad = b'{"name": 5}'
    assert _call(app, "POST", "/things/1", bad, JSON_HEADERS)[0] == 401  # anonymous: nothing more
    signed_in = {**JSON_HEADERS, **_bearer()}
    assert _call(app, "POST", "/things/1", b"x" * (MAX_BODY_BYTES + 1), signed_in)[0] == 413
    assert _call(app, "POST", "/things/1", bad, {**_bearer(), "Content-Type": "text/plain"})[0] == (
        415
    )
    array = b'[{"name": "a"}, {"name": "b"}]'
    status, response = _call(app, "POST", "/things/1", array, signed_in)
    assert status == 422
    assert response["body"]["errors"][0]["msg"] == "Input should be a JSON object"
    assert _call(app, "POST", "/things/1", bad, signed_in)[0] == 422  # Powertools' validation
    status, response = _call(app, "POST", "/things/1", b'{"name": "a"}', signed_in)
    assert (status, response["body"]) == (200, {"id": "1", "name": "a"})


# --- _static_routes, _dynamic_routes


def test_the_registered_routes_are_in_static_and_dynamic_routes() -> None:
    """`own_allowed_methods` (405's Allow) and `_is_declared` read `_static_routes` and
    `_dynamic_routes`: lists of Route with `method`, `rule` (a compiled pattern) and `path`."""
    app, _ = _app()
    static = getattr(app, "_static_routes", None)
    dynamic = getattr(app, "_dynamic_routes", None)
    message = f"Powertools no longer keeps routes in _static_routes/_dynamic_routes: {HOW_TO}"
    assert isinstance(static, list), message
    assert isinstance(dynamic, list), message
    found = {(route.method, route.path) for route in static + dynamic}
    assert found == {("GET", "/things"), ("POST", "/things/<thing_id>")}, found
    assert all(isinstance(route, Route) for route in static + dynamic)
    assert [route.path for route in dynamic if route.rule.match("/things/7")] == [
        "/things/<thing_id>"
    ], f"Route.rule no longer matches request paths: {HOW_TO}"
    assert app.own_allowed_methods("/things/7") == ["POST"]
    status, response = _call(app, "GET", "/things/7")
    assert (status, response["headers"].get("allow")) == (405, "POST")
    assert _call(app, "GET", "/nothing")[0] == 404


# --- context["_route"], route.security, route.dependant.body_params


def test_the_route_being_called_is_in_the_context_with_its_security_and_body() -> None:
    """The checks read `app.context["_route"]` (set before the middlewares run): the declared
    Route object itself for a matched request (a stand-in for 404/405, never a declared one),
    with the `security` it was declared with and `dependant.body_params` (it reads a body)."""
    app, seen = _app()
    assert _call(app, "GET", "/things")[0] == 200
    route = seen["route"]
    assert any(route is declared for declared in app._static_routes), (
        f"context['_route'] is no longer the declared Route: {HOW_TO}"
    )
    assert route.security is None
    assert route.dependant.body_params == []
    assert (
        _call(app, "POST", "/things/1", b'{"name": "a"}', {**JSON_HEADERS, **_bearer()})[0] == 200
    )
    route = seen["route"]
    assert any(route is declared for declared in app._dynamic_routes)
    assert route.security == BEARER_SECURITY, f"Route.security is {route.security!r}: {HOW_TO}"
    assert [field.name for field in route.dependant.body_params] == ["thing"], HOW_TO
    # An unmatched request's stand-in route is not declared: no check applies to its body.
    assert _call(app, "PUT", "/nothing", b"\xff" * 10, {"Content-Type": "text/plain"})[0] == 404


# --- _add_resolver_response_validation_error_response_to_route


def test_powertools_still_documents_its_500_through_the_method_the_resolver_overrides() -> None:
    """Powertools documents every operation's 500 as its ResponseValidationError body through
    `_add_resolver_response_validation_error_response_to_route`; the resolver overrides it to
    keep each route's declared 500 (openapi.json). The stock resolver shows the method is still
    called: if it were not, the override would be dead code."""

    def documented_500(app: APIGatewayHttpResolver) -> Any:
        @app.get("/things", responses={500: {"description": "Declared by the route"}})
        def list_things() -> dict[str, Any]:
            return {}

        document = app.get_openapi_schema().model_dump(by_alias=True, exclude_none=True)
        return document["paths"]["/things"]["get"]["responses"][500]

    stock = APIGatewayHttpResolver(enable_validation=True, response_validation_error_http_code=500)
    assert documented_500(stock)["description"] == "Response Validation Error", (
        "Powertools no longer documents its 500 through "
        f"_add_resolver_response_validation_error_response_to_route: {HOW_TO}"
    )
    parameters = list(
        inspect.signature(
            APIGatewayHttpResolver._add_resolver_response_validation_error_response_to_route
        ).parameters
    )
    assert parameters == ["self", "route_openapi_path"], f"it now takes {parameters}: {HOW_TO}"
    assert documented_500(TasklineResolver())["description"] == "Declared by the route"


# --- Content-Type read from the event's headers when validation runs


def test_validation_reads_the_content_type_the_checks_lowered() -> None:
    """Powertools compares the media type as sent (case-sensitively), reading it from the
    event's headers each time; the checks lower it in the raw event first (RFC 9110: media types
    are case-insensitive), so `Application/JSON` is JSON."""
    app, _ = _app()
    headers = {"Content-Type": "Application/JSON", **_bearer()}
    status, response = _call(app, "POST", "/things/1", b'{"name": "a"}', headers)
    assert (status, response["body"]) == (200, {"id": "1", "name": "a"}), HOW_TO


# --- On a Powertools version the resolver was not verified against: it refuses to start.

_IMPORT_A_FUNCTION = """
import aws_lambda_powertools
{simulate}
from localdev import loader
from localdev.template import load
template = load()
loader.add_layers(template)
loader.load_module(template.functions["TasksFunction"])
print("started")
"""


def _start_tasks_function(simulate: str) -> subprocess.CompletedProcess[str]:
    return run_python("-c", _IMPORT_A_FUNCTION.format(simulate=simulate))


def test_an_unverified_powertools_version_stops_the_functions_from_starting() -> None:
    started = _start_tasks_function("aws_lambda_powertools.__version__ = '3.38.0'")
    assert started.returncode != 0
    assert "started" not in started.stdout
    last_line = started.stderr.strip().splitlines()[-1]
    assert last_line.startswith(
        "taskline.upstream.UnverifiedVersionError: taskline.api.resolver refuses to start on "
        "aws-lambda-powertools 3.38.0 (verified against 3.37.0): "
    ), started.stderr
    assert "shared/requirements.txt" in last_line


def test_the_verified_powertools_version_starts_them() -> None:
    """The same start with nothing simulated: what the refusal test compares against."""
    started = _start_tasks_function("")
    assert (started.returncode, started.stdout.strip()) == (0, "started"), started.stderr


@pytest.mark.parametrize("version", [None, "3.37.0rc1", "3.37"])
def test_a_version_that_is_not_exactly_the_verified_one_is_unverified(version: str | None) -> None:
    from taskline import upstream
    from taskline.api import resolver

    installed = {"aws-lambda-powertools": version}
    assert len(upstream.unverified(resolver.VERIFIED_VERSIONS, installed)) == 1
