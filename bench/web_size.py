"""The web app's first load against its budget: every JavaScript and CSS file the page loads
(index.html's stylesheet and module graph), each gzip-compressed as CloudFront compresses it.

    make web-size        prints each file and the total; exits 1 over the budget

Budget (issue 22): at most 100 KB (102,400 bytes) of compressed JavaScript and CSS together.
"""

from __future__ import annotations

import gzip
import re
import sys
from pathlib import Path

from localdev.web_app import WEB_DIR

BUDGET_BYTES = 100 * 1024
_IMPORT = re.compile(
    r"""(?:^|\s)(?:import|export)\s[^'"]*?from\s*["']([^"']+)["']|import\s*["']([^"']+)["']"""
)
_HTML_REFS = re.compile(r"""<(?:link[^>]*rel="stylesheet"[^>]*href|script[^>]*src)="([^"]+)\"""")


def _module_graph(entry: Path, seen: set[Path]) -> None:
    if entry in seen:
        return
    seen.add(entry)
    for match in _IMPORT.finditer(entry.read_text()):
        target = (entry.parent / (match.group(1) or match.group(2))).resolve()
        _module_graph(target, seen)


def first_load() -> list[tuple[str, int, int]]:
    """(file, bytes, gzip bytes) of every JS and CSS file the first load fetches."""
    files: set[Path] = set()
    for ref in _HTML_REFS.findall((WEB_DIR / "index.html").read_text()):
        path = (WEB_DIR / ref).resolve()
        if path.suffix == ".js":
            _module_graph(path, files)
        else:
            files.add(path)
    sizes = []
    for path in sorted(files):
        body = path.read_bytes()
        sizes.append(
            (path.relative_to(WEB_DIR.resolve()).as_posix(), len(body), len(gzip.compress(body, 9)))
        )
    return sizes


def main() -> int:
    sizes = first_load()
    for name, raw, compressed in sizes:
        print(f"  {name:<28} {raw:>7,} B  gzip {compressed:>6,} B")
    total = sum(c for _, _, c in sizes)
    raw_total = sum(r for _, r, _ in sizes)
    print(f"  {'total (' + str(len(sizes)) + ' files)':<28} {raw_total:>7,} B  gzip {total:>6,} B")
    print(
        f"  budget {BUDGET_BYTES:,} B: {'within' if total <= BUDGET_BYTES else 'OVER'} "
        f"({100 * total / BUDGET_BYTES:.0f}% used)"
    )
    return 0 if total <= BUDGET_BYTES else 1


if __name__ == "__main__":
    sys.exit(main())
