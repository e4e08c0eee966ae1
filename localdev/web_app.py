"""`make run` serves the web app (web/) at /app/, on the API's origin, as CloudFront does when
deployed (template.yaml, WebApp=true): the same files, the same security headers.

Everything else goes to the local API Gateway, `/` included (the Meta function redirects it
here: its HOME).
"""

from __future__ import annotations

import hashlib
import mimetypes
from collections.abc import Iterable
from functools import cache
from pathlib import Path
from wsgiref.types import StartResponse, WSGIApplication, WSGIEnvironment

from localdev.template import ROOT

WEB_DIR = ROOT / "web"
APP_PREFIX = "/app/"
# The response headers CloudFront adds to the app's files (template.yaml's WebAppHeadersPolicy
# states the same; tests/local/test_web_app.py compares them). No 'unsafe-inline' anywhere:
# every script and style is a file of web/.
CONTENT_SECURITY_POLICY = (
    "default-src 'none'; script-src 'self'; style-src 'self'; connect-src 'self'; "
    "img-src 'self' data:; form-action 'self'; base-uri 'none'; frame-ancestors 'none'"
)
SECURITY_HEADERS = (
    ("Content-Security-Policy", CONTENT_SECURITY_POLICY),
    ("X-Content-Type-Options", "nosniff"),
    ("X-Frame-Options", "DENY"),
    ("Referrer-Policy", "no-referrer"),
    # Sent over plain HTTP locally it is ignored by browsers (RFC 6797 section 8.1); kept so the
    # headers are the deployed ones.
    ("Strict-Transport-Security", "max-age=63072000; includeSubDomains; preload"),
)
_TYPES = {
    ".html": "text/html; charset=utf-8",
    ".js": "text/javascript; charset=utf-8",
    ".css": "text/css; charset=utf-8",
    ".png": "image/png",
    ".svg": "image/svg+xml",
}


@cache
def _file(relative: str) -> tuple[bytes, str] | None:
    """The file of web/ a path names (and its ETag); None outside web/ or of another type."""
    path = (WEB_DIR / (relative or "index.html")).resolve()
    if not path.is_relative_to(WEB_DIR.resolve()) or not path.is_file():
        return None
    if path.suffix not in _TYPES:
        return None
    body = path.read_bytes()
    return body, '"' + hashlib.sha256(body).hexdigest()[:32] + '"'


def content_type(path: Path | str) -> str:
    suffix = Path(path).suffix
    return _TYPES.get(suffix) or mimetypes.guess_type(str(path))[0] or "application/octet-stream"


def _answer(
    start_response: StartResponse, status: str, headers: list[tuple[str, str]], body: bytes
) -> Iterable[bytes]:
    start_response(status, [*headers, ("Content-Length", str(len(body)))])
    return [body]


def with_web_app(api: WSGIApplication, reload: bool = False) -> WSGIApplication:
    """`api`, with the app's files at /app/. `reload`: read the
    files on every request (make run: edits show on the next reload of the page)."""

    def application(environ: WSGIEnvironment, start_response: StartResponse) -> Iterable[bytes]:
        method = str(environ.get("REQUEST_METHOD", "GET")).upper()
        path = str(environ.get("PATH_INFO") or "/")
        if method not in ("GET", "HEAD") or not path.startswith("/app"):
            return api(environ, start_response)  # `/` too: the Meta function redirects it here
        if path == "/app":
            return _answer(start_response, "302 Found", [("Location", APP_PREFIX)], b"")
        if not path.startswith(APP_PREFIX):
            return api(environ, start_response)
        if reload:
            _file.cache_clear()
        found = _file(path[len(APP_PREFIX) :])
        if found is None:
            body = b"Not found\n"
            headers = [("Content-Type", "text/plain; charset=utf-8"), *SECURITY_HEADERS]
            return _answer(start_response, "404 Not Found", headers, body)
        body, etag = found
        relative = path[len(APP_PREFIX) :] or "index.html"
        headers = [
            ("Content-Type", content_type(relative)),
            ("ETag", etag),
            # Revalidated on each load (a 304 when unchanged), so a deploy shows at once.
            ("Cache-Control", "no-cache"),
            *SECURITY_HEADERS,
        ]
        if environ.get("HTTP_IF_NONE_MATCH") == etag:
            return _answer(start_response, "304 Not Modified", headers, b"")
        return _answer(start_response, "200 OK", headers, b"" if method == "HEAD" else body)

    return application
