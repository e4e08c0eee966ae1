"""Child Python processes that import this checkout, as the tests start them (a fresh
interpreter, `make run`'s server, `make invoke`, the RDS Proxy stand-in's command line)."""

from __future__ import annotations

import os
import subprocess
import sys
from collections.abc import Mapping

from localdev.template import ROOT

# The layer's package and the repository root, as the Makefile's PYTHONPATH has them.
PYTHONPATH = f"{ROOT / 'shared'}{os.pathsep}{ROOT}"


def child_environment(base: Mapping[str, str] | None = None, /, **overrides: str) -> dict[str, str]:
    """`base` (this process's environment by default) with the checkout on PYTHONPATH, then
    `overrides`."""
    return {**(os.environ if base is None else base), "PYTHONPATH": PYTHONPATH, **overrides}


def run_python(
    *arguments: str, env: Mapping[str, str] | None = None, timeout: float = 60
) -> subprocess.CompletedProcess[str]:
    """`python ARGUMENTS` in the repository root, its output captured as text. The caller
    checks the return code (and says what went wrong with the output it has)."""
    return subprocess.run(
        [sys.executable, *arguments],
        cwd=ROOT,
        env=dict(env) if env is not None else child_environment(),
        capture_output=True,
        text=True,
        timeout=timeout,
        check=False,
    )
