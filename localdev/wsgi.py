"""The local API Gateway as a WSGI application, so WSGI tooling can drive the real handlers.

Schemathesis (the fuzzer in tests/test_fuzz.py) sends its generated requests through this in
process: each one becomes the HTTP API 2.0 event API Gateway would build, delivered to the
function that owns the route, exactly as `make run` does for requests over a socket.
"""

from __future__ import annotations

from collections.abc import Iterable
from http import HTTPStatus
from urllib.parse import quote
from wsgiref.types import StartResponse, WSGIApplication, WSGIEnvironment

from localdev.gateway import GATEWAY_MAX_BODY_BYTES, LocalGateway

# CGI names WSGI gives two headers without the HTTP_ prefix.
_UNPREFIXED = {"CONTENT_TYPE": "Content-Type", "CONTENT_LENGTH": "Content-Length"}
_HOP_BY_HOP = frozenset({"connection", "transfer-encoding", "content-length"})


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


def wsgi_app(gateway: LocalGateway) -> WSGIApplication:
    """A WSGI application answering every request through `gateway`."""

    def application(environ: WSGIEnvironment, start_response: StartResponse) -> Iterable[bytes]:
        length = int(environ.get("CONTENT_LENGTH") or 0)
        if length > GATEWAY_MAX_BODY_BYTES:
            start_response(_status_line(413), [("Content-Type", "application/json")])
            return [b'{"message":"Request Entity Too Large"}']
        body = environ["wsgi.input"].read(length) if length > 0 else b""
        path, query = _request_target(environ)
        method = str(environ["REQUEST_METHOD"]).upper()
        response = gateway.request(
            method,
            path,
            query,
            _request_headers(environ),
            body,
            source_ip=environ.get("REMOTE_ADDR") or "127.0.0.1",
            domain_name=environ.get("HTTP_HOST") or "localhost",
        )
        headers = [(k, v) for k, v in response.headers if k.lower() not in _HOP_BY_HOP]
        headers.append(("Content-Length", str(len(response.body))))
        start_response(_status_line(response.status), headers)
        return [] if method == "HEAD" else [response.body]

    return application
