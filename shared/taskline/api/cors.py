"""The cross-origin contract: what a browser page on an allowed origin may send and read.

This is the one declaration. template.yaml's `CorsConfiguration` (AllowHeaders, ExposeHeaders,
AllowMethods, MaxAge) must say the same, and every header a route reads from a request or adds
to a response must be listed here (or be one browsers let through anyway): tests/http/test_cors.py
checks both, discovering the headers from the routes' OpenAPI declarations, from the code that
reads request headers, and from every response the test suite sees. `make run` emulates API
Gateway's CORS from template.yaml (localdev/cors.py).

API Gateway HTTP APIs answer preflight requests themselves and add these headers to responses
for allowed origins: https://docs.aws.amazon.com/apigateway/latest/developerguide/http-api-cors.html
"""

from __future__ import annotations

# Request headers a page sends that are not CORS-safelisted (Fetch standard, section 2.2.2):
# each one needs the preflight's Access-Control-Allow-Headers. Content-Type is listed because
# application/json is not one of the three safelisted media types.
REQUEST_HEADERS: tuple[str, ...] = (
    "Authorization",  # Bearer tokens (RFC 6750)
    "Content-Type",
    "If-Match",  # conditional PATCH, PUT and DELETE (taskline.api.etags)
    "Idempotency-Key",  # retry-safe POST /tasks
    "If-None-Match",  # polling the calendar feed: 304 while nothing changed
)

# Response headers a page must read. Without Access-Control-Expose-Headers a script sees only
# the safelisted ones below, whatever the server sends.
RESPONSE_HEADERS: tuple[str, ...] = (
    "ETag",  # the version to send back in If-Match
    "Location",  # the created task's URL
    "Link",  # the next page (RFC 8288)
    "Retry-After",  # 429 and 503: when to try again
    "WWW-Authenticate",  # 401: why the token was refused (RFC 6750)
    "Idempotent-Replayed",  # the stored result of an earlier POST with this Idempotency-Key
    "Allow",  # 405: the methods the route takes
    "Accept-Post",  # 415: the media types a POST takes
    # The unsubscribe pages' and the feed's browser policies: the browser applies them itself,
    # and exposing them lets a page check what it was given.
    "Content-Security-Policy",
    "Referrer-Policy",
    "X-Content-Type-Options",
)

# Every method a route of the API serves (OPTIONS: the preflight itself).
METHODS: tuple[str, ...] = ("GET", "POST", "PUT", "PATCH", "DELETE", "OPTIONS")

# How long a browser may cache a preflight answer (Chromium caps it at 7200 s).
MAX_AGE_SECONDS = 600

# Bearer tokens travel in Authorization, not cookies: no credentialed CORS.
ALLOW_CREDENTIALS = False

# Fetch standard, section 2.2.6: response headers any script may read without being exposed.
SAFELISTED_RESPONSE_HEADERS = frozenset(
    {
        "cache-control",
        "content-language",
        "content-length",
        "content-type",
        "expires",
        "last-modified",
        "pragma",
    }
)

# Request headers API Gateway itself sets (a browser cannot forge them through the gateway):
# reading them needs no CORS entry.
GATEWAY_REQUEST_HEADERS = frozenset(
    {"host", "x-forwarded-for", "x-forwarded-port", "x-forwarded-proto"}
)


def allowed_request_headers() -> frozenset[str]:
    return frozenset(name.lower() for name in REQUEST_HEADERS)


def exposed_response_headers() -> frozenset[str]:
    return frozenset(name.lower() for name in RESPONSE_HEADERS)


def unreadable_response_headers(names: set[str] | frozenset[str]) -> set[str]:
    """Those of `names` a script on another origin could not read (lower-cased)."""
    return {
        name.lower()
        for name in names
        if name.lower() not in SAFELISTED_RESPONSE_HEADERS
        and name.lower() not in exposed_response_headers()
        and not name.lower().startswith("access-control-")
    }


def unsendable_request_headers(names: set[str] | frozenset[str]) -> set[str]:
    """Those of `names` a page on another origin could not send (lower-cased)."""
    return {
        name.lower()
        for name in names
        if name.lower() not in allowed_request_headers()
        and name.lower() not in GATEWAY_REQUEST_HEADERS
    }
