"""Render the API's single OpenAPI document from every function's resolver.

    python -m localdev.openapi          # write shared/taskline/api/openapi.json
    python -m localdev.openapi --check  # fail if the committed document is stale

Everything in the document is declared where the code is: routes declare their operation
ids, descriptions, request bodies, responses, headers, links and examples, models their
schemas and examples, and the resolver the document's front matter and security schemes
(taskline.api.documentation). Each Lambda function has its own resolver; this only merges
what they render, leaving out what Powertools adds to every operation on its own: a 422 and a
500 with its validation-error bodies (`HTTPValidationError`, `ResponseValidationError`), which
Taskline never sends (its errors are problem+json, and each route declares the ones it
answers with), and then the component schemas nothing refers to any more.
"""

from __future__ import annotations

import json
import re
import sys
from typing import Any

from localdev import loader
from localdev.template import ROOT, load

OUTPUT = ROOT / "shared" / "taskline" / "api" / "openapi.json"
_REFERENCE = re.compile(r'"\$ref": "#/components/schemas/([^"]+)"')
_POWERTOOLS_DEFAULTS = frozenset({"HTTPValidationError", "ResponseValidationError"})


def _declared(responses: dict[str, Any]) -> dict[str, Any]:
    """The responses a route declared: without Powertools' automatic validation responses."""
    return {
        status: response
        for status, response in responses.items()
        if not _POWERTOOLS_DEFAULTS & set(_REFERENCE.findall(json.dumps(response)))
    }


def _referenced(document: Any, schemas: dict[str, Any]) -> set[str]:
    """The component schemas `document` refers to, directly or through other components."""
    found: set[str] = set()
    pending = set(_REFERENCE.findall(json.dumps(document)))
    while pending:
        name = pending.pop()
        if name in found or name not in schemas:
            continue
        found.add(name)
        pending |= set(_REFERENCE.findall(json.dumps(schemas[name])))
    return found


def build() -> dict[str, Any]:
    template = load()
    loader.add_layers(template)
    front: dict[str, Any] = {}
    paths: dict[str, Any] = {}
    schemas: dict[str, Any] = {}
    security_schemes: dict[str, Any] = {}
    for function in template.functions.values():
        if not function.routes:
            continue  # the deadline check and the migrations have no HTTP resolver
        rendered = (
            loader.load_module(function)
            .app.get_openapi_schema()
            .model_dump(mode="json", by_alias=True, exclude_none=True)
        )
        front = {key: rendered[key] for key in ("openapi", "info", "servers", "tags")}
        for path, operations in rendered.get("paths", {}).items():
            for operation in operations.values():
                operation["responses"] = _declared(operation["responses"])
            paths.setdefault(path, {}).update(operations)
        components = rendered.get("components", {})
        schemas.update(components.get("schemas", {}))
        security_schemes.update(components.get("securitySchemes", {}))
    used = _referenced(paths, schemas)
    return {
        **front,
        "paths": dict(sorted(paths.items())),
        "components": {
            "schemas": {name: schemas[name] for name in sorted(used)},
            "securitySchemes": security_schemes,
        },
    }


def render() -> str:
    return json.dumps(build(), indent=2, sort_keys=False) + "\n"


def main() -> int:
    text = render()
    if "--check" in sys.argv:
        if not OUTPUT.exists() or OUTPUT.read_text() != text:
            print(f"{OUTPUT.relative_to(ROOT)} is stale: run `make openapi`", file=sys.stderr)
            return 1
        return 0
    OUTPUT.write_text(text)
    print(f"wrote {OUTPUT.relative_to(ROOT)}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
