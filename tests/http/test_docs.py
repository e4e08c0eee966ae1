"""The docs say what the code does: lists people read in README.md and docs/api.md are held
against the declarations they restate (the OpenAPI document, the cross-origin contract)."""

from __future__ import annotations

import json
import re
from pathlib import Path

import pytest

from localdev.openapi import OUTPUT
from localdev.template import ROOT
from taskline.api import cors

README = ROOT / "README.md"
API = ROOT / "docs" / "api.md"
DEPLOY = ROOT / "docs" / "deploy.md"
_NAMES = re.compile(r"`([^`]+)`")


def _flat(text: str) -> str:
    return re.sub(r"\s+", " ", text)


@pytest.mark.parametrize("doc", [README, API], ids=lambda path: path.name)
def test_the_cors_header_lists_are_cors_py(doc: Path) -> None:
    text = _flat(doc.read_text())
    found = re.search(r"(?:can|may) send (.*?), and read (.*?)(?::| \()", text)
    assert found, f"{doc}: no 'send ..., and read ...' sentence"
    sent, read = (_NAMES.findall(part) for part in found.groups())
    assert sent == list(cors.REQUEST_HEADERS)
    assert read == list(cors.RESPONSE_HEADERS)


def test_api_md_lists_every_operation_id() -> None:
    document = json.loads(OUTPUT.read_text())
    served = {
        (operation["operationId"], f"{method.upper()} {path}")
        for path, operations in document["paths"].items()
        for method, operation in operations.items()
    }
    rows = re.findall(r"^\| `(\w+)` \| `([A-Z]+ [^`]+)` \|", API.read_text(), re.MULTILINE)
    assert len(rows) == len(set(rows))
    assert set(rows) == served, "update the operation id table in docs/api.md"


def test_the_readme_quotes_no_cost_but_the_generated_profile_table() -> None:
    """README.md's monthly figures are the profile table `make cost-docs` writes (held to
    `make cost` by tests/stack/test_cost.py); no other figure in it can drift."""
    text = README.read_text()
    begin = text.index("<!-- profiles and their monthly cost: generated")
    end = text.index("<!-- end of profiles -->")
    outside = text[:begin] + text[end:]
    assert not re.findall(r"\$\d[\d,.]*\s+(?:a|per)\s+month", outside)
    assert "$" in text[begin:end]


def test_the_docs_name_no_internal_issue_or_file_a_clone_lacks() -> None:
    for doc in [README, ROOT / "CONTRIBUTING.md", *sorted((ROOT / "docs").glob("*.md"))]:
        text = doc.read_text()
        assert not re.search(r"\bissues? \d", text), doc
        assert "DESIGN.md" not in text, doc
