"""The local API Gateway as a WSGI application: what `make run`'s HTTP front (localdev.http_front,
gunicorn) serves, and what Schemathesis (tests/http/test_fuzz.py) drives in process.

Each request becomes the HTTP API 2.0 event API Gateway would build, delivered to the function
that owns the route. What API Gateway does before any function runs is done here too: its
request limits (https://docs.aws.amazon.com/apigateway/latest/developerguide/http-api-quotas.html:
10240 bytes of request line and header values, a 10 MB payload), its own X-Forwarded-* headers,
and its own domain name: the API's, from configuration, never the client's Host header.
"""

from __future__ import annotations

from collections.abc import Iterable
from http import HTTPStatus
from urllib.parse import quote
from wsgiref.types import StartResponse, WSGIApplication, WSGIEnvironment

from localdev.gateway import (
    GATEWAY_MAX_BODY_BYTES,
    GATEWAY_MAX_REQUEST_LINE_AND_HEADERS_BYTES,
    GatewayResponse,
    LocalGateway,
    front_problem,
    payload_too_large,
)

# The front's way to close the connection after this answer (localdev.http_front).
CLOSE_CONNECTION = "localdev.close_connection"
# CGI names WSGI gives two headers without the HTTP_ prefix.
_UNPREFIXED = {"CONTENT_TYPE": "Content-Type", "CONTENT_LENGTH": "Content-Length"}
_HOP_BY_HOP = frozenset({"connection", "transfer-encoding", "content-length", "keep-alive"})
# API Gateway sets these itself (clients cannot forge them); the handlers build absolute URLs
# (the Link header) from them. Host becomes the API's domain name, as API Gateway's is.
_GATEWAY_SET = frozenset({"host", "x-forwarded-for", "x-forwarded-port", "x-forwarded-proto"})


def _request_target(environ: WSGIEnvironment) -> tuple[str, str]:
    """The path as sent (still percent-encoded, as API Gateway's rawPath) and the query."""
    query = environ.get("QUERY_STRING") or ""  # the one authoritative source of the query
    raw_uri = environ.get("RAW_URI") or environ.get("REQUEST_URI")
    if isinstance(raw_uri, str) and raw_uri.startswith("/"):
        return raw_uri.partition("?")[0], query
    # PEP 3333: PATH_INFO holds the decoded bytes as latin-1 text.
    decoded = (environ.get("SCRIPT_NAME", "") + environ.get("PATH_INFO", "")).encode("latin-1")
    return quote(decoded, safe="/:@!$&'()*+,;=-._~") or "/", query


def _request_headers(environ: WSGIEnvironment) -> list[tuple[str, str]]:
    headers: list[tuple[str, str]] = []
    for key, value in environ.items():
        if key in _UNPREFIXED and value:
            headers.append((_UNPREFIXED[key], value))
        elif key.startswith("HTTP_"):
            headers.append((key[5:].replace("_", "-").title(), value))
    return headers


def _status_line(status: int) -> str:
    try:
        return f"{status} {HTTPStatus(status).phrase}"
    except ValueError:
        return f"{status} Unknown"


def _request_line_bytes(environ: WSGIEnvironment) -> int:
    target = environ.get("RAW_URI") or environ.get("REQUEST_URI") or environ.get("PATH_INFO", "")
    method, protocol = environ["REQUEST_METHOD"], environ.get("SERVER_PROTOCOL", "HTTP/1.1")
    return len(f"{method} {target} {protocol}".encode("latin-1", "replace"))


def _too_big(environ: WSGIEnvironment, headers: list[tuple[str, str]]) -> GatewayResponse | None:
    """API Gateway's limit on the request line plus header values, as 414 or 431."""
    line = _request_line_bytes(environ)
    limit = GATEWAY_MAX_REQUEST_LINE_AND_HEADERS_BYTES
    if line > limit:
        return front_problem(
            414, "uri-too-long", "URI Too Long", f"The request line is over {limit} bytes."
        )
    values = sum(len(value.encode("latin-1", "replace")) for _, value in headers)
    if line + values > limit:
        return front_problem(
            431,
            "request-header-fields-too-large",
            "Request Header Fields Too Large",
            f"The request line and header values add up to more than {limit} bytes.",
        )
    return None


def _unframed(environ: WSGIEnvironment) -> GatewayResponse | None:
    """A Transfer-Encoding other than plain `chunked` (gunicorn lets `identity, chunked` or
    `gzip, chunked` through): 400, as a front that frames only chunked bodies must."""
    coding = environ.get("HTTP_TRANSFER_ENCODING")
    if coding is None or coding.strip().lower() == "chunked":
        return None
    return front_problem(
        400, "bad-request", "Bad Request", "Transfer-Encoding must be chunked, alone."
    )


def _read_body(environ: WSGIEnvironment) -> bytes | None:
    """The body (Content-Length or chunked, as the server framed it); None when over 10 MB."""
    stream = environ["wsgi.input"]
    length = environ.get("CONTENT_LENGTH")
    if length:
        size = int(length)  # the server refused any Content-Length that is not digits
        if size > GATEWAY_MAX_BODY_BYTES:
            return None
        return bytes(stream.read(size)) if size else b""
    if "chunked" not in environ.get("HTTP_TRANSFER_ENCODING", "").lower():
        return b""  # no framing header: a request has no body (RFC 9112 section 6.3)
    chunks: list[bytes] = []
    received = 0
    while received <= GATEWAY_MAX_BODY_BYTES:
        chunk = stream.read(min(65536, GATEWAY_MAX_BODY_BYTES + 1 - received))
        if not chunk:
            return b"".join(chunks)
        chunks.append(chunk)
        received += len(chunk)
    return None


def wsgi_app(
    gateway: LocalGateway, domain_name: str = "localhost", scheme: str = "http"
) -> WSGIApplication:
    """A WSGI application answering every request through `gateway`, as the API at
    `scheme://domain_name` (API Gateway's own domain name, whatever Host the client sent)."""

    def respond(
        environ: WSGIEnvironment,
        start_response: StartResponse,
        response: GatewayResponse,
        method: str,
        close: bool = False,
    ) -> Iterable[bytes]:
        headers = [(k, v) for k, v in response.headers if k.lower() not in _HOP_BY_HOP]
        headers.append(("Content-Length", str(len(response.body))))
        if close:  # the rest of the request was not read: this connection cannot be reused
            environ.get(CLOSE_CONNECTION, lambda: None)()
        start_response(_status_line(response.status), headers)
        return [] if method == "HEAD" else [response.body]

    def application(environ: WSGIEnvironment, start_response: StartResponse) -> Iterable[bytes]:
        method = str(environ["REQUEST_METHOD"]).upper()
        received = _request_headers(environ)
        if environ.get("SERVER_PROTOCOL") == "HTTP/1.1" and "HTTP_HOST" not in environ:
            missing_host = front_problem(
                400, "bad-request", "Bad Request", "An HTTP/1.1 request needs a Host header."
            )  # RFC 9112 section 3.2
            return respond(environ, start_response, missing_host, method, close=True)
        refused = _too_big(environ, received) or _unframed(environ)
        if refused is not None:
            return respond(environ, start_response, refused, method, close=True)
        try:
            body = _read_body(environ)
        except TimeoutError:  # the front's read timeout (localdev.http_front): a slow client
            timed_out = front_problem(
                408,
                "request-timeout",
                "Request Timeout",
                "The request did not arrive in full within the read timeout.",
            )
            return respond(environ, start_response, timed_out, method, close=True)
        if body is None:
            return respond(environ, start_response, payload_too_large(), method, close=True)
        path, query = _request_target(environ)
        source_ip = environ.get("REMOTE_ADDR") or "127.0.0.1"
        headers = [(k, v) for k, v in received if k.lower() not in _GATEWAY_SET | _HOP_BY_HOP]
        headers += [
            ("Host", domain_name),
            ("X-Forwarded-For", source_ip),
            ("X-Forwarded-Port", domain_name.rpartition(":")[2] if ":" in domain_name else "80"),
            ("X-Forwarded-Proto", scheme),
        ]
        response = gateway.request(
            method,
            path,
            query,
            headers,
            body,
            source_ip=source_ip,
            domain_name=domain_name,
        )
        return respond(environ, start_response, response, method)

    return application
