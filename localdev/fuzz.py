"""`make fuzz`: the Schemathesis run of tests/http/test_fuzz.py, longer than in `make test`, first
in process and then over loopback against the local server (`make run`'s, localdev.server).

    FUZZ_MAX_EXAMPLES   examples per operation (default 300)
    FUZZ_SEED           Hypothesis seed (default: a new one each run, printed to replay it)
    FUZZ_BASE_URL       fuzz this already running server instead of starting one
    FUZZ_PORT           port of the server started here (default 3105)

The server started here uses its own database (taskline_fuzz, recreated each run) and bcrypt
cost 4, since every generated request signs up a fresh account first.
"""

from __future__ import annotations

import os
import secrets
import subprocess
import sys

from localdev.cluster import local_servers
from localdev.template import ROOT


def _pytest(env: dict[str, str]) -> int:
    command = [sys.executable, "-m", "pytest", "tests/http/test_fuzz.py"]
    completed = subprocess.run(  # noqa: S603 - a fixed command line, our own interpreter
        command, env={**os.environ, **env}, cwd=ROOT, check=False
    )
    return completed.returncode


def main() -> int:
    settings = {
        "FUZZ_MAX_EXAMPLES": os.environ.get("FUZZ_MAX_EXAMPLES", "300"),
        "FUZZ_SEED": os.environ.get("FUZZ_SEED") or str(secrets.randbelow(2**31)),
    }
    print(f"== fuzzing in process: {settings}", flush=True)
    in_process = _pytest({**settings, "FUZZ_BASE_URL": ""})
    if os.environ.get("FUZZ_BASE_URL"):
        print(f"== fuzzing {os.environ['FUZZ_BASE_URL']}", flush=True)
        live = _pytest(settings)
    else:
        port = int(os.environ.get("FUZZ_PORT", "3105"))
        with local_servers(1, port, "taskline_fuzz", {"BCRYPT_ROUNDS": "4"}) as servers:
            url = servers.urls[0]
            print(f"== fuzzing the local server at {url}", flush=True)
            live = _pytest({**settings, "FUZZ_BASE_URL": url})
    print(f"== seed {settings['FUZZ_SEED']}: in process rc={in_process}, live rc={live}")
    return 1 if in_process or live else 0


if __name__ == "__main__":
    raise SystemExit(main())
