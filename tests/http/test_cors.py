"""The cross-origin contract (taskline.api.cors) against template.yaml and against what the
routes really read and send, and the local gateway's emulation of HTTP API CORS.

A route that starts reading a request header, or sending a response header, that a page on an
allowed origin could not send or read fails here until the header is added to the declaration
(and so to template.yaml's CorsConfiguration, which must say the same).
"""

from __future__ import annotations

import ast
import json
import re
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from localdev import openapi
from localdev.cors import DEFAULT_LOCAL_ORIGINS, LocalCors
from localdev.gateway import LocalGateway
from localdev.template import ROOT, load
from taskline.api import cors
from tests.support.api import SEEN_RESPONSE_HEADERS, ApiClient, task_body

SOURCES = [*sorted((ROOT / "functions").rglob("*.py")), *sorted((ROOT / "shared").rglob("*.py"))]
ORIGIN = "http://localhost:5173"


def _lower(names: Any) -> set[str]:
    return {str(name).lower() for name in names}


def test_template_cors_configuration_says_what_the_declaration_says() -> None:
    config = load().cors
    assert config is not None
    assert _lower(config.allow_headers) == cors.allowed_request_headers()
    assert _lower(config.expose_headers) == cors.exposed_response_headers()
    assert {m.upper() for m in config.allow_methods} == set(cors.METHODS)
    assert config.max_age == cors.MAX_AGE_SECONDS
    assert config.allow_credentials is cors.ALLOW_CREDENTIALS


def test_the_declaration_covers_the_contracts_headers() -> None:
    """DESIGN.md's list, the floor: the declaration may grow, never lose one of these."""
    assert cors.allowed_request_headers() >= {
        "authorization",
        "content-type",
        "if-match",
        "idempotency-key",
    }
    assert cors.exposed_response_headers() >= {
        "etag",
        "location",
        "link",
        "retry-after",
        "www-authenticate",
        "idempotent-replayed",
    }


def test_every_route_method_is_allowed() -> None:
    methods = {route.method for route, _ in load().routes()} - {"ANY"}
    assert methods <= set(cors.METHODS)


@pytest.fixture(scope="module")
def document() -> dict[str, Any]:
    return openapi.build()


def _operations(document: dict[str, Any]) -> Iterator[dict[str, Any]]:
    for item in document["paths"].values():
        for method, operation in item.items():
            if method in ("get", "post", "put", "patch", "delete"):
                yield operation


def test_every_request_header_the_routes_declare_can_be_sent(document: dict[str, Any]) -> None:
    declared = {
        parameter["name"]
        for operation in _operations(document)
        for parameter in operation.get("parameters", [])
        if parameter.get("in") == "header"
    }
    schemes = document.get("components", {}).get("securitySchemes", {}).values()
    if any(s.get("type") in ("http", "oauth2") for s in schemes):
        declared.add("Authorization")  # bearer tokens travel in it
    media = {
        media_type
        for operation in _operations(document)
        for media_type in operation.get("requestBody", {}).get("content", {})
    }
    safelisted = {"application/x-www-form-urlencoded", "multipart/form-data", "text/plain"}
    if media - safelisted:
        declared.add("Content-Type")  # application/json is not a CORS-safelisted type
    assert declared, "the document declares no request header at all"
    assert cors.unsendable_request_headers(declared) == set()


def test_every_response_header_the_routes_declare_can_be_read(document: dict[str, Any]) -> None:
    declared = {
        name
        for operation in _operations(document)
        for response in operation.get("responses", {}).values()
        for name in response.get("headers", {})
    }
    assert {"ETag", "Location", "Link"} <= declared
    assert cors.unreadable_response_headers(declared) == set()


def _string(node: ast.AST | None) -> str | None:
    return node.value if isinstance(node, ast.Constant) and isinstance(node.value, str) else None


def _is_headers(node: ast.AST) -> bool:
    """`x.headers`, `headers`, `headers_of_something` (what the code reads headers from)."""
    if isinstance(node, ast.Attribute):
        return node.attr == "headers"
    return isinstance(node, ast.Name) and "headers" in node.id.lower()


class _HeaderUses(ast.NodeVisitor):
    """Header names the code reads from requests and writes into responses."""

    def __init__(self) -> None:
        self.read: set[str] = set()
        self.written: set[str] = set()
        self._header_functions: set[str] = set()  # passed as headers=name
        self._returned: dict[str, set[str]] = {}  # function name -> keys of dicts it returns

    def written_headers(self) -> set[str]:
        """HTTP header names as responses spell them (Title-Case: not a JWT header's `kid`)."""
        returned = (self._returned.get(name, set()) for name in self._header_functions)
        return {n for n in self.written.union(*returned) if re.fullmatch(r"[A-Z][\w-]*", n)}

    def visit_FunctionDef(self, node: ast.FunctionDef) -> None:
        keys = self._returned.setdefault(node.name, set())
        for child in ast.walk(node):
            if isinstance(child, ast.Return) and isinstance(child.value, ast.Dict):
                keys.update(k for k in map(_string, child.value.keys) if k)
        self.generic_visit(node)

    def _dict_keys(self, node: ast.AST | None) -> None:
        if isinstance(node, ast.Dict):
            self.written.update(k for k in map(_string, node.keys) if k)
        elif isinstance(node, ast.Lambda):
            self._dict_keys(node.body)
        elif isinstance(node, ast.IfExp):
            self._dict_keys(node.body)
            self._dict_keys(node.orelse)

    def visit_Call(self, node: ast.Call) -> None:
        func = node.func
        if (
            isinstance(func, ast.Attribute)
            and func.attr == "get"
            and _is_headers(func.value)
            and node.args
            and (name := _string(node.args[0]))
        ):
            self.read.add(name)
        for keyword in node.keywords:
            if keyword.arg == "headers":
                self._dict_keys(keyword.value)
                if isinstance(keyword.value, ast.Name):
                    self._header_functions.add(keyword.value.id)
            is_header = isinstance(func, ast.Name) and func.id == "Header"
            if keyword.arg == "alias" and is_header and (name := _string(keyword.value)):
                self.read.add(name)
        self.generic_visit(node)

    def visit_Subscript(self, node: ast.Subscript) -> None:
        if _is_headers(node.value) and (name := _string(node.slice)):
            (self.written if isinstance(node.ctx, ast.Store) else self.read).add(name)
        self.generic_visit(node)

    def visit_Assign(self, node: ast.Assign) -> None:
        if any(isinstance(t, ast.Name) and "header" in t.id.lower() for t in node.targets):
            self._dict_keys(node.value)
        self.generic_visit(node)

    def visit_AnnAssign(self, node: ast.AnnAssign) -> None:
        if isinstance(node.target, ast.Name) and "header" in node.target.id.lower():
            self._dict_keys(node.value)
        self.generic_visit(node)


@pytest.fixture(scope="module")
def header_uses() -> _HeaderUses:
    uses = _HeaderUses()
    for source in SOURCES:
        if source.name != "cors.py":
            uses.visit(ast.parse(source.read_text(), str(source)))
    return uses


def test_every_request_header_the_code_reads_can_be_sent(header_uses: _HeaderUses) -> None:
    assert {"authorization", "content-type"} <= _lower(header_uses.read)
    # Request headers are looked up lower-cased (the event's), their media values aside.
    reads = {name for name in header_uses.read if name.lower() == name or "-" in name}
    assert cors.unsendable_request_headers(reads) == set()


def test_every_response_header_the_code_writes_can_be_read(header_uses: _HeaderUses) -> None:
    written = header_uses.written_headers()
    assert {"etag", "location", "www-authenticate", "retry-after", "allow"} <= _lower(written)
    assert cors.unreadable_response_headers(written) == set()


def test_a_new_response_header_without_its_cors_entry_is_caught() -> None:
    """The checks above fail for a route that adds a header the declaration lacks."""
    source = 'def route():\n    return Response(200, headers={"X-Request-Cost": "3"})\n'
    uses = _HeaderUses()
    uses.visit(ast.parse(source))
    assert cors.unreadable_response_headers(uses.written_headers()) == {"x-request-cost"}


@pytest.mark.after_all
def test_every_response_header_seen_in_this_run_can_be_read() -> None:
    """Every header of every response the whole test session got through the gateway."""
    assert "etag" in SEEN_RESPONSE_HEADERS or len(SEEN_RESPONSE_HEADERS) < 5  # a partial run
    unreadable = cors.unreadable_response_headers(set(SEEN_RESPONSE_HEADERS))
    assert unreadable == set(), {name: SEEN_RESPONSE_HEADERS[name] for name in unreadable}


# --- The local gateway's CORS, as API Gateway's -----------------------------------------------


@pytest.fixture
def cors_gateway(monkeypatch: pytest.MonkeyPatch) -> LocalGateway:
    monkeypatch.delenv("CORS_ALLOWED_ORIGINS", raising=False)
    return LocalGateway(load())


def _preflight(gateway: LocalGateway, origin: str, method: str = "PATCH") -> Any:
    return gateway.request(
        "OPTIONS",
        "/tasks/1",
        headers=[
            ("Origin", origin),
            ("Access-Control-Request-Method", method),
            ("Access-Control-Request-Headers", "authorization,if-match"),
        ],
    )


def test_the_gateway_answers_a_preflight_from_an_allowed_origin(cors_gateway: LocalGateway) -> None:
    answer = _preflight(cors_gateway, ORIGIN)
    assert answer.status == 204
    assert answer.body == b""
    assert answer.header("Access-Control-Allow-Origin") == ORIGIN
    assert _lower(str(answer.header("Access-Control-Allow-Headers")).split(",")) == (
        cors.allowed_request_headers()
    )
    assert set(str(answer.header("Access-Control-Allow-Methods")).split(",")) == set(cors.METHODS)
    assert answer.header("Access-Control-Max-Age") == str(cors.MAX_AGE_SECONDS)
    assert answer.header("Access-Control-Allow-Credentials") is None


def test_an_origin_not_allowed_gets_no_cors_header(cors_gateway: LocalGateway) -> None:
    answer = _preflight(cors_gateway, "https://evil.example")
    assert answer.status == 204
    assert not [k for k, _ in answer.headers if k.lower().startswith("access-control-")]
    reply = cors_gateway.request("GET", "/tasks", headers=[("Origin", "https://evil.example")])
    assert reply.status == 401
    assert not [k for k, _ in reply.headers if k.lower().startswith("access-control-")]


def test_responses_to_an_allowed_origin_expose_the_declared_headers(
    cors_gateway: LocalGateway, user: ApiClient
) -> None:
    token = user.token
    created = cors_gateway.request(
        "POST",
        "/tasks",
        headers=[
            ("Origin", ORIGIN),
            ("Authorization", f"Bearer {token}"),
            ("Content-Type", "application/json"),
        ],
        body=json.dumps(task_body()).encode(),
    )
    assert created.status == 201
    assert created.header("Access-Control-Allow-Origin") == ORIGIN
    exposed = _lower(str(created.header("Access-Control-Expose-Headers")).split(","))
    assert exposed == cors.exposed_response_headers()
    assert {"etag", "location"} <= exposed


def test_a_request_without_origin_gets_no_cors_header(cors_gateway: LocalGateway) -> None:
    reply = cors_gateway.request("GET", "/openapi.json")
    assert reply.status == 200
    assert reply.header("Access-Control-Allow-Origin") is None


def test_options_without_a_preflight_goes_to_the_routes(cors_gateway: LocalGateway) -> None:
    reply = cors_gateway.request("OPTIONS", "/tasks", headers=[("Origin", ORIGIN)])
    assert reply.status == 405
    assert reply.header("Access-Control-Allow-Origin") == ORIGIN


def test_cors_headers_from_a_function_are_ignored(
    cors_gateway: LocalGateway, monkeypatch: pytest.MonkeyPatch
) -> None:
    from localdev import events
    from localdev import gateway as gateway_module

    real = events.decode_response

    def with_own_cors(result: dict[str, Any]) -> tuple[int, list[tuple[str, str]], bytes]:
        status, headers, body = real(result)
        return status, [*headers, ("Access-Control-Allow-Origin", "*")], body

    monkeypatch.setattr(gateway_module, "decode_response", with_own_cors)
    other = cors_gateway.request(
        "GET", "/openapi.json", headers=[("Origin", "https://evil.example")]
    )
    assert other.header("Access-Control-Allow-Origin") is None
    allowed = cors_gateway.request("GET", "/openapi.json", headers=[("Origin", ORIGIN)])
    assert [v for k, v in allowed.headers if k == "Access-Control-Allow-Origin"] == [ORIGIN]


@pytest.mark.parametrize(
    ("configured", "origin", "allowed"),
    [
        ("https://app.example.com", "https://app.example.com", True),
        ("https://app.example.com", "https://app.example.com.evil.example", False),
        ("https://app.example.com", "http://app.example.com", False),
        ("https://*", "https://anything.example", True),
        ("https://*", "http://anything.example", False),
        ("*", "http://x.example:8080", True),
        ("", ORIGIN, False),
    ],
)
def test_allowed_origins_come_from_the_environment(
    monkeypatch: pytest.MonkeyPatch, configured: str, origin: str, allowed: bool
) -> None:
    monkeypatch.setenv("CORS_ALLOWED_ORIGINS", configured)
    gateway = LocalGateway(load())
    answer = _preflight(gateway, origin)
    assert (answer.header("Access-Control-Allow-Origin") is not None) is allowed


def test_the_default_local_origins_are_the_usual_dev_servers() -> None:
    local = LocalCors.from_environment(load().cors)
    assert local is not None
    assert "http://localhost:5173" in DEFAULT_LOCAL_ORIGINS
    assert all(o.startswith("http://") for o in local.origins)


def test_the_declaration_has_no_second_copy_in_the_template_module() -> None:
    # template.yaml is the one place the lists are written besides the declaration itself.
    text = Path(ROOT / "template.yaml").read_text()
    assert text.count("AllowHeaders:") == 1
    assert text.count("ExposeHeaders:") == 1
