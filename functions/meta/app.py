"""API metadata: the OpenAPI document, Swagger UI, and problem responses for unknown routes.

API Gateway sends every request that matches no other route here (`ANY /{proxy+}`), so
clients get the contract's 404 or 405 (with `Allow`) instead of API Gateway's own body. `/`, the
first address `make run` prints, redirects to HOME.
"""

from __future__ import annotations

from aws_lambda_powertools import Logger, Metrics
from aws_lambda_powertools.event_handler import Response
from aws_lambda_powertools.event_handler.openapi.swagger_ui import (
    generate_oauth2_redirect_html,
    generate_swagger_html,
)

from taskline import snapstart
from taskline.api.openapi import allowed_methods, openapi_document_text, swagger_assets
from taskline.api.resolver import JSON, TasklineResolver, lambda_entry_point

# Where `GET /` sends a browser: the web app (web/, served at /app/ by make run and, with
# WebApp=true, by CloudFront); Swagger UI stays at /docs. Change it here only.
HOME = "/app/"

logger = Logger()
metrics = Metrics()
# SnapStart: reseed randomness after a restore (this function has no database).
snapstart.register_hooks(database=False)


def _allowed_methods(path: str) -> list[str]:
    """Every route's methods: the API's (from the OpenAPI document) and this function's own
    (/openapi.json and /docs are not in the document)."""
    return sorted({*allowed_methods(path), *app.own_allowed_methods(path)})


app = TasklineResolver(allowed_methods=_allowed_methods)


@app.get("/", include_in_schema=False)
def home() -> Response[str]:
    # 302 (RFC 9110 section 15.4.3), not 301: browsers cache a 301 for good, and `/` will serve
    # something else once the web app exists.
    return Response(status_code=302, headers={"Location": HOME}, body="")


@app.get("/openapi.json", include_in_schema=False)
def openapi_json() -> Response[str]:
    return Response(status_code=200, content_type=JSON, body=openapi_document_text())


@app.get("/docs", include_in_schema=False)
def swagger_ui() -> Response[str]:
    query = app.current_event.query_string_parameters or {}
    if query.get("format") == "json":  # the address Swagger UI shows for the document
        return openapi_json()
    if query.get("format") == "oauth2-redirect":
        html = generate_oauth2_redirect_html()
    else:
        script, stylesheet = swagger_assets()
        spec = openapi_document_text().replace("</", "<\\/")
        html = generate_swagger_html(spec, script, stylesheet, "", None, True)
    return Response(status_code=200, content_type="text/html; charset=utf-8", body=html)


lambda_handler = lambda_entry_point(app, logger, metrics)
