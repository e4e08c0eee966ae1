"""The OpenAPI document (made by `make openapi`, shipped in the layer) and Swagger UI assets."""

from __future__ import annotations

import json
import re
from functools import lru_cache
from importlib import resources
from pathlib import Path

import aws_lambda_powertools.event_handler as event_handler

_METHODS = ("get", "put", "post", "delete", "options", "head", "patch", "trace")


@lru_cache(maxsize=1)
def openapi_document_text() -> str:
    return resources.files("taskline.api").joinpath("openapi.json").read_text(encoding="utf-8")


@lru_cache(maxsize=1)
def _route_table() -> tuple[tuple[re.Pattern[str], tuple[str, ...]], ...]:
    paths = json.loads(openapi_document_text())["paths"]
    table = []
    for template, operations in paths.items():
        pattern = re.sub(r"\\\{[^/]+?\\\}", "[^/]+", re.escape(template))
        methods = tuple(sorted(m.upper() for m in operations if m in _METHODS))
        table.append((re.compile(f"^{pattern}$"), methods))
    return tuple(table)


def allowed_methods(path: str) -> list[str]:
    """The methods the whole API serves at `path` (empty when no route has it)."""
    return sorted(
        {m for pattern, methods in _route_table() if pattern.match(path) for m in methods}
    )


@lru_cache(maxsize=1)
def swagger_assets() -> tuple[str, str]:
    """Swagger UI's script and stylesheet as shipped with Powertools, so /docs works offline."""
    folder = Path(event_handler.__file__).parent / "openapi" / "swagger_ui"
    script = (folder / "swagger-ui-bundle.min.js").read_text(encoding="utf-8")
    stylesheet = (folder / "swagger-ui.min.css").read_text(encoding="utf-8")
    return script, stylesheet
