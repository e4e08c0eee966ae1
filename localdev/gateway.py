"""A local stand-in for API Gateway: picks a route as API Gateway would, calls the real handler."""

from __future__ import annotations

import json
import threading
import time
import uuid
from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any

from localdev import loader
from localdev.cors import LocalCors
from localdev.events import decode_response, http_api_event
from localdev.template import Function, Template

# API Gateway HTTP APIs refuse bodies over 10 MB before any Lambda runs, and requests whose
# request line and header values add up to more than 10240 bytes:
# https://docs.aws.amazon.com/apigateway/latest/developerguide/http-api-quotas.html
GATEWAY_MAX_BODY_BYTES = 10 * 1024 * 1024
GATEWAY_MAX_REQUEST_LINE_AND_HEADERS_BYTES = 10240


@dataclass
class LambdaContext:
    """The attributes of the Lambda context object that handlers and Powertools read."""

    function_name: str
    timeout_seconds: int
    memory_limit_in_mb: int = 1024
    function_version: str = "$LATEST"
    log_group_name: str = "/aws/lambda/local"
    log_stream_name: str = "local"

    def __post_init__(self) -> None:
        self.aws_request_id = str(uuid.uuid4())
        self.invoked_function_arn = (
            f"arn:aws:lambda:us-east-1:123456789012:function:{self.function_name}"
        )
        self._deadline = time.monotonic() + self.timeout_seconds

    def get_remaining_time_in_millis(self) -> int:
        return max(0, int((self._deadline - time.monotonic()) * 1000))


@dataclass(frozen=True)
class GatewayResponse:
    status: int
    headers: list[tuple[str, str]]
    body: bytes

    def header(self, name: str) -> str | None:
        return next((v for k, v in self.headers if k.lower() == name.lower()), None)

    def json(self) -> Any:
        return json.loads(self.body)


# Powertools keeps the event being resolved in a class attribute (BaseRouter.current_event)
# shared by every resolver in the process. In Lambda each function has its own process and
# serves one request at a time, so that is safe; here all functions share one process, and two
# running at once would read each other's request (path, headers, even the bearer token). So a
# process serves one invocation at a time, whatever the function: run several processes for
# parallel requests (bench/load.py does).
_INVOCATION_LOCK = threading.Lock()


class LocalGateway:
    """Routes requests to the functions of template.yaml, one invocation at a time per process
    (as one warm Lambda container serves one request at a time)."""

    def __init__(self, template: Template, cors: LocalCors | bool | None = True) -> None:
        """`cors`: True takes the origins from the environment (localdev.cors), None or False
        is an API deployed without CORS origins."""
        self.template = template
        self.cors = LocalCors.from_environment(template.cors) if cors is True else cors or None
        loader.add_layers(template)

    def invoke(self, function: Function, event: dict[str, Any]) -> dict[str, Any]:
        handler = loader.load_handler(function)
        context = LambdaContext(function.logical_id, function.timeout)
        with _INVOCATION_LOCK:
            result: dict[str, Any] = handler(event, context)
        return result

    def request(
        self,
        method: str,
        path: str,
        raw_query: str = "",
        headers: Iterable[tuple[str, str]] = (),
        body: bytes = b"",
        source_ip: str = "127.0.0.1",
        domain_name: str = "localhost",
    ) -> GatewayResponse:
        if len(body) > GATEWAY_MAX_BODY_BYTES:
            return payload_too_large()
        headers = list(headers)
        received = {name.lower(): value for name, value in headers}
        if self.cors is not None and self.cors.is_preflight(method.upper(), received):
            return GatewayResponse(204, self.cors.preflight_headers(received), b"")
        response = self._route(method, path, raw_query, headers, body, source_ip, domain_name)
        if self.cors is None:
            return response
        cors_headers = self.cors.response_headers(received, response.headers)
        return GatewayResponse(response.status, cors_headers, response.body)

    def _route(
        self,
        method: str,
        path: str,
        raw_query: str,
        headers: list[tuple[str, str]],
        body: bytes,
        source_ip: str,
        domain_name: str,
    ) -> GatewayResponse:
        resolved = self.template.resolve(method.upper(), path)
        if resolved is None:
            return _gateway_error(404, "Not Found")
        route, function, path_parameters = resolved
        event = http_api_event(
            method=method.upper(),
            path=path,
            raw_query=raw_query,
            headers=headers,
            body=body,
            route=route,
            path_parameters=path_parameters,
            source_ip=source_ip,
            domain_name=domain_name,
        )
        try:
            result = self.invoke(function, event)
        except Exception:  # what API Gateway answers when the function itself fails
            return _gateway_error(500, "Internal Server Error")
        status, response_headers, response_body = decode_response(result)
        return GatewayResponse(status, response_headers, response_body)


def front_problem(status: int, slug: str, title: str, detail: str) -> GatewayResponse:
    """A refusal of the local HTTP front itself (framing, limits), in the contract's format.

    Deployed, API Gateway answers these before any function runs; its own body is
    `{"message": ...}`, which an HTTP API cannot customise (docs/api.md says so).
    """
    from taskline.api.problems import PROBLEM_JSON, PROBLEM_TYPE_PREFIX

    body = {"type": PROBLEM_TYPE_PREFIX + slug, "title": title, "status": status, "detail": detail}
    return GatewayResponse(status, [("Content-Type", PROBLEM_JSON)], json.dumps(body).encode())


def payload_too_large() -> GatewayResponse:
    return front_problem(
        413,
        "payload-too-large",
        "Content Too Large",
        f"The request body is over API Gateway's limit of {GATEWAY_MAX_BODY_BYTES} bytes (10 MB).",
    )


def _gateway_error(status: int, message: str) -> GatewayResponse:
    body = json.dumps({"message": message}).encode()
    return GatewayResponse(status, [("Content-Type", "application/json")], body)
