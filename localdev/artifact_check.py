"""Check what `sam build` produced (`make artifact-check`, run by CI after `make sam-build`).

For every artifact in .aws-sam/build (each function and the layer):
- every `.py` has CPython 3.13 bytecode beside it (`__pycache__/<name>.cpython-313.pyc`) that
  the runtime will use as it is: the 3.13 magic number, hash-based and unchecked (PEP 552
  flags 0b01, so the zip's timestamps do not matter and the source is never re-read), and the
  hash of the very source shipped (so it was compiled from this file, not a stale copy);
- no bytecode the runtime would never read (other versions, optimisation levels, orphans);
- every native extension (`.so`) is a 64-bit ELF for aarch64 (the functions run on arm64);
- nothing the runtime never imports: console scripts (`bin/`), type stubs, C sources, pip's
  RECORD files, packages' test suites;
- the unzipped size of each function with its layers stays within Lambda's 250 MB quota.
It prints each artifact's size, unzipped and zipped, and exits non-zero on any finding.

    python -m localdev.artifact_check [BUILD_DIR]
"""

from __future__ import annotations

import importlib.util
import sys
import tempfile
import zipfile
from dataclasses import dataclass, field
from pathlib import Path

from localdev.template import ROOT

# CPython 3.13's bytecode magic number (importlib.util.MAGIC_NUMBER under 3.13): 3571.
MAGIC_313 = (3571).to_bytes(2, "little") + b"\r\n"
CACHE_TAG = "cpython-313"
FLAG_HASH_BASED, FLAG_CHECK_SOURCE = 0b01, 0b10
ELF_MAGIC, ELFCLASS64, EM_AARCH64 = b"\x7fELF", 2, 183
# "Deployment package (.zip file archive) size: 250 MB (unzipped)", the function and all its
# layers together: https://docs.aws.amazon.com/lambda/latest/dg/gettingstarted-limits.html
UNZIPPED_QUOTA_BYTES = 250 * 1024 * 1024
NEVER_IMPORTED_SUFFIXES = (".pyi", ".pyx", ".pxd", ".c", ".h", ".cpp")
NEVER_IMPORTED_DIRS = ("tests", "testing")


@dataclass
class Artifact:
    name: str
    files: int = 0
    unzipped: int = 0
    zipped: int = 0
    modules: int = 0
    native: int = 0
    findings: list[str] = field(default_factory=list)


def pyc_finding(source: Path) -> str | None:
    """Why `source` has no bytecode the 3.13 runtime will load as shipped, or None."""
    pyc = source.parent / "__pycache__" / f"{source.stem}.{CACHE_TAG}.pyc"
    if not pyc.is_file():
        return "no 3.13 bytecode"
    header = pyc.read_bytes()[:16]
    if len(header) < 16 or header[:4] != MAGIC_313:
        return "bytecode is not CPython 3.13's"
    flags = int.from_bytes(header[4:8], "little")
    if flags != FLAG_HASH_BASED:
        kind = "timestamp-based" if not flags & FLAG_HASH_BASED else "checked-hash"
        return f"bytecode is {kind}, not unchecked-hash"
    if header[8:16] != importlib.util.source_hash(source.read_bytes()):
        return "bytecode was compiled from another version of the source"
    return None


def elf_finding(path: Path) -> str | None:
    header = path.read_bytes()[:20]
    if header[:4] != ELF_MAGIC:
        return "native extension is not an ELF file"
    machine = int.from_bytes(header[18:20], "little" if header[5] == 1 else "big")
    if header[4] != ELFCLASS64 or machine != EM_AARCH64:
        return (
            f"native extension is not 64-bit aarch64 (ELF class {header[4]}, e_machine {machine})"
        )
    return None


def stray_pyc_finding(pyc: Path) -> str | None:
    """Bytecode the runtime never reads: another interpreter's, an -O level's, an orphan's."""
    parts = pyc.name.split(".")
    if pyc.parent.name != "__pycache__" or len(parts) != 3 or parts[1] != CACHE_TAG:
        return "bytecode the 3.13 runtime never reads"
    if not (pyc.parent.parent / f"{parts[0]}.py").is_file():
        return "bytecode without its source"
    return None


def never_imported_finding(path: Path, root: Path) -> str | None:
    relative = path.relative_to(root).parts
    if path.suffix in NEVER_IMPORTED_SUFFIXES:
        return "never imported (stub or C source)"
    if "bin" in relative[:2]:
        return "never imported (console script)"
    if path.name == "RECORD" and path.parent.name.endswith(".dist-info"):
        return "never read at run time (pip's install record)"
    packages = relative[1:-1] if relative[0] == "python" else relative[:-1]
    if len(packages) >= 2 and packages[1] in NEVER_IMPORTED_DIRS:
        return "never imported (a package's test suite)"
    return None


def zipped_size(root: Path, files: list[Path]) -> int:
    with tempfile.TemporaryFile() as handle:
        with zipfile.ZipFile(handle, "w", zipfile.ZIP_DEFLATED) as archive:
            for path in files:
                archive.write(path, path.relative_to(root))
        return handle.tell()


def check_artifact(root: Path) -> Artifact:
    artifact = Artifact(root.name)
    files = sorted(p for p in root.rglob("*") if p.is_file())
    artifact.files, artifact.unzipped = len(files), sum(p.stat().st_size for p in files)
    for path in files:
        finding = None
        if path.suffix == ".py":
            artifact.modules += 1
            finding = pyc_finding(path)
        elif path.suffix == ".pyc":
            finding = stray_pyc_finding(path)
        elif path.suffix == ".so" or ".so." in path.name:
            artifact.native += 1
            finding = elf_finding(path)
        finding = finding or never_imported_finding(path, root)
        if finding:
            artifact.findings.append(f"{path.relative_to(root)}: {finding}")
    artifact.zipped = zipped_size(root, files)
    return artifact


def check_build(build: Path) -> tuple[list[Artifact], list[str]]:
    artifacts = [check_artifact(p) for p in sorted(build.iterdir()) if p.is_dir()]
    layers = [a for a in artifacts if a.name.endswith("Layer")]
    findings = []
    for artifact in artifacts:
        if artifact in layers:
            continue
        total = artifact.unzipped + sum(layer.unzipped for layer in layers)
        if total > UNZIPPED_QUOTA_BYTES:
            findings.append(f"{artifact.name}: {total / 1e6:.1f} MB unzipped with its layers")
    return artifacts, findings


def size(n: int) -> str:
    return f"{n / 1e6:.1f} MB" if n >= 1e6 else f"{n / 1e3:.1f} kB"


def main(argv: list[str]) -> int:
    build = Path(argv[0]) if argv else ROOT / ".aws-sam" / "build"
    if not build.is_dir():
        print(f"{build} does not exist: run `make sam-build` first", file=sys.stderr)
        return 2
    artifacts, quota_findings = check_build(build)
    if not artifacts:
        print(f"{build} holds no artifacts", file=sys.stderr)
        return 2
    print(f"{'artifact':<24} {'unzipped':>10} {'zipped':>10} {'files':>6} {'.py':>6} {'.so':>4}")
    for a in artifacts:
        print(
            f"{a.name:<24} {size(a.unzipped):>10} {size(a.zipped):>10} "
            f"{a.files:>6} {a.modules:>6} {a.native:>4}"
        )
    findings = [f"{a.name}/{f}" for a in artifacts for f in a.findings] + quota_findings
    for finding in findings[:50]:
        print(f"FAIL {finding}", file=sys.stderr)
    if findings:
        print(f"{len(findings)} finding(s) in {build}", file=sys.stderr)
        return 1
    modules = sum(a.modules for a in artifacts)
    native = sum(a.native for a in artifacts)
    print(
        f"ok: {modules} modules with unchecked-hash CPython 3.13 bytecode, "
        f"{native} native extensions for aarch64"
    )
    return 0


if __name__ == "__main__":
    raise SystemExit(main(sys.argv[1:]))
