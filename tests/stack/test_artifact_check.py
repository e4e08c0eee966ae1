"""The artifact check (CI, after `sam build`) accepts what packaging/Makefile ships and refuses
bytecode the runtime would not use as shipped, foreign native code and what is never imported."""

from __future__ import annotations

import py_compile
import struct
from pathlib import Path

import pytest

from localdev import artifact_check

UNCHECKED = py_compile.PycInvalidationMode.UNCHECKED_HASH


def module(
    root: Path,
    name: str,
    source: str = "VALUE = 1\n",
    invalidation_mode: py_compile.PycInvalidationMode = UNCHECKED,
    optimize: int = -1,
) -> Path:
    path = root / name
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(source)
    py_compile.compile(
        str(path), doraise=True, invalidation_mode=invalidation_mode, optimize=optimize
    )
    return path


def elf(path: Path, machine: int, elf_class: int = 2) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    header = b"\x7fELF" + bytes([elf_class, 1, 1]) + bytes(9) + struct.pack("<HH", 3, machine)
    path.write_bytes(header + bytes(64))


def findings(root: Path) -> list[str]:
    return artifact_check.check_artifact(root).findings


def test_unchecked_hash_313_bytecode_and_aarch64_extensions_pass(tmp_path: Path) -> None:
    module(tmp_path, "python/pkg/__init__.py")
    module(tmp_path, "python/pkg/core.py")
    elf(tmp_path / "python/pkg/_speedups.cpython-313-aarch64-linux-gnu.so", machine=183)
    (tmp_path / "python/pkg-1.0.dist-info").mkdir()
    (tmp_path / "python/pkg-1.0.dist-info/METADATA").write_text("Name: pkg\n")
    artifact = artifact_check.check_artifact(tmp_path)
    assert artifact.findings == []
    assert (artifact.modules, artifact.native) == (2, 1)


def test_a_module_without_bytecode_is_refused(tmp_path: Path) -> None:
    (tmp_path / "app.py").write_text("x = 1\n")
    assert findings(tmp_path) == ["app.py: no 3.13 bytecode"]


@pytest.mark.parametrize(
    ("mode", "expected"),
    [
        (py_compile.PycInvalidationMode.TIMESTAMP, "timestamp-based"),
        (py_compile.PycInvalidationMode.CHECKED_HASH, "checked-hash"),
    ],
)
def test_bytecode_the_runtime_would_revalidate_is_refused(
    tmp_path: Path, mode: py_compile.PycInvalidationMode, expected: str
) -> None:
    module(tmp_path, "app.py", invalidation_mode=mode)
    assert findings(tmp_path) == [f"app.py: bytecode is {expected}, not unchecked-hash"]


def test_bytecode_of_another_source_is_refused(tmp_path: Path) -> None:
    source = module(tmp_path, "app.py")
    source.write_text("VALUE = 2\n")  # edited after compiling: the shipped bytecode is stale
    stale = "app.py: bytecode was compiled from another version of the source"
    assert findings(tmp_path) == [stale]


def test_bytecode_of_another_python_is_refused(tmp_path: Path) -> None:
    source = module(tmp_path, "app.py")
    pyc = tmp_path / "__pycache__" / "app.cpython-313.pyc"
    data = bytearray(pyc.read_bytes())
    data[0:2] = (3495).to_bytes(2, "little")  # CPython 3.12's magic number
    pyc.write_bytes(bytes(data))
    (tmp_path / "__pycache__" / "app.cpython-312.pyc").write_bytes(bytes(data))
    assert findings(tmp_path) == [
        "__pycache__/app.cpython-312.pyc: bytecode the 3.13 runtime never reads",
        "app.py: bytecode is not CPython 3.13's",
    ]
    assert source.exists()


def test_orphan_and_optimised_bytecode_are_refused(tmp_path: Path) -> None:
    module(tmp_path, "gone.py").unlink()
    module(tmp_path, "app.py", optimize=1)  # app.cpython-313.opt-1.pyc only
    assert findings(tmp_path) == [
        "__pycache__/app.cpython-313.opt-1.pyc: bytecode the 3.13 runtime never reads",
        "__pycache__/gone.cpython-313.pyc: bytecode without its source",
        "app.py: no 3.13 bytecode",
    ]


@pytest.mark.parametrize(("machine", "elf_class"), [(62, 2), (183, 1)])  # x86_64; 32-bit
def test_native_code_for_another_machine_is_refused(
    tmp_path: Path, machine: int, elf_class: int
) -> None:
    elf(tmp_path / "python/pkg/_ext.so", machine=machine, elf_class=elf_class)
    assert findings(tmp_path) == [
        "python/pkg/_ext.so: native extension is not 64-bit aarch64 "
        f"(ELF class {elf_class}, e_machine {machine})"
    ]


def test_what_the_runtime_never_imports_is_refused(tmp_path: Path) -> None:
    (tmp_path / "python/bin").mkdir(parents=True)
    (tmp_path / "python/bin/alembic").write_text("#!/bin/sh\n")
    (tmp_path / "python/pkg").mkdir()
    (tmp_path / "python/pkg/core.pyi").write_text("VALUE: int\n")
    (tmp_path / "python/pkg-1.0.dist-info").mkdir()
    (tmp_path / "python/pkg-1.0.dist-info/RECORD").write_text("pkg/core.py,,\n")
    module(tmp_path, "python/pkg/tests/test_core.py")
    assert sorted(findings(tmp_path)) == [
        "python/bin/alembic: never imported (console script)",
        "python/pkg-1.0.dist-info/RECORD: never read at run time (pip's install record)",
        "python/pkg/core.pyi: never imported (stub or C source)",
        "python/pkg/tests/__pycache__/test_core.cpython-313.pyc: "
        "never imported (a package's test suite)",
        "python/pkg/tests/test_core.py: never imported (a package's test suite)",
    ]


def test_a_function_over_the_unzipped_quota_with_its_layer_is_refused(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    module(tmp_path / "TasksFunction", "app.py", source="X = 1\n" * 200)
    module(tmp_path / "TasklineLayer", "python/pkg.py", source="Y = 2\n" * 200)
    artifacts, quota = artifact_check.check_build(tmp_path)
    assert [a.name for a in artifacts] == ["TasklineLayer", "TasksFunction"]
    assert quota == []
    monkeypatch.setattr(artifact_check, "UNZIPPED_QUOTA_BYTES", 2000)
    _, quota = artifact_check.check_build(tmp_path)
    assert len(quota) == 1
    assert quota[0].startswith("TasksFunction: ")
