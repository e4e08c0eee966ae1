"""What the TasksFunction's cold path imports, group by group, in CPU time.

`python -m bench.import_costs [RUNS]`, after `make bench` (or `make sam-build` and
`bench.run`'s `prepare_packages`) has made `bench/.build/packages`. Unlike the step table of
`make bench` (differences of medians of separate processes, which go negative on a shared
machine), each run is one fresh `python3.13 -I -S -B` process against the artifact that times
every group of imports inside itself with `time.process_time()`, in the order the handler
loads them; a group's figure is what it adds over what is already loaded. Prints the median
and quartiles of each group over the runs, and the load average seen.
"""

from __future__ import annotations

import json
import os
import statistics
import subprocess
import sys

from bench.run import BUILD, SHARED_IMPORTS

# In the order TasksFunction's app.py loads them; each adds what is not loaded yet.
GROUPS: list[tuple[str, str]] = [
    ("the libraries both sides import", f"import {', '.join(SHARED_IMPORTS)}"),
    ("aws_lambda_powertools (Logger, Metrics)", "import aws_lambda_powertools"),
    ("powertools utilities.data_classes", "import aws_lambda_powertools.utilities.data_classes"),
    ("powertools event_handler package", "import aws_lambda_powertools.event_handler"),
    (
        "powertools openapi.params, compat, types",
        "import aws_lambda_powertools.event_handler.openapi.params, "
        "aws_lambda_powertools.event_handler.openapi.types",
    ),
    (
        "powertools metrics, validation middleware, correlation paths",
        "import aws_lambda_powertools.metrics, "
        "aws_lambda_powertools.event_handler.middlewares.openapi_validation, "
        "aws_lambda_powertools.logging.correlation_paths",
    ),
    ("taskline.errors, clock", "import taskline.errors, taskline.clock"),
    ("taskline.settings", "import taskline.settings"),
    (
        "taskline.secret_store, security.tokens, pagination",
        "import taskline.secret_store, taskline.security.tokens, taskline.pagination",
    ),
    ("taskline.models", "import taskline.models"),
    ("taskline.emails", "import taskline.emails"),
    ("taskline.schemas", "import taskline.schemas"),
    ("taskline.api.documentation", "import taskline.api.documentation"),
    (
        "taskline.api.problems, auth, resolver",
        "import taskline.api.problems, taskline.api.auth, taskline.api.resolver",
    ),
    ("taskline.api.etags, links", "import taskline.api.etags, taskline.api.links"),
    ("taskline.db, pgwire", "import taskline.db, taskline.pgwire"),
    ("taskline.repositories.task_repository", "import taskline.repositories.task_repository"),
    (
        "taskline.repositories.deadline_notification_repository",
        "import taskline.repositories.deadline_notification_repository",
    ),
    ("taskline.services.task_service", "import taskline.services.task_service"),
    ("taskline.snapstart", "import taskline.snapstart"),
    ("app.py (Logger(), Metrics(), the resolver, its routes)", "import app"),
]

CHILD = """
import json, sys, time
sys.path[:0] = PATHS
out = []
for code in CODES:
    begun, loaded = time.process_time(), len(sys.modules)
    exec(code, {})
    out.append([(time.process_time() - begun) * 1e3, len(sys.modules) - loaded])
print(json.dumps(out))
"""


def main() -> int:
    runs = int(sys.argv[1]) if len(sys.argv) > 1 else 21
    packages = BUILD / "packages"
    paths = [str(packages / "TasksFunction"), str(packages / "layer")]
    if not (packages / "layer").is_dir():
        raise SystemExit(f"{packages} is missing: run `make bench` first")
    code = f"PATHS = {paths!r}\nCODES = {[c for _, c in GROUPS]!r}\n{CHILD}"
    # What the deployed function has of the environment's bearing on imports.
    environment = {"PATH": os.environ.get("PATH", ""), "PYDANTIC_DISABLE_PLUGINS": "__all__"}
    results, loads = [], []
    for _ in range(runs):
        completed = subprocess.run(
            [sys.executable, "-I", "-S", "-B", "-c", code],
            cwd=paths[0], env=environment, capture_output=True, text=True, check=False,
        )  # fmt: skip
        if completed.returncode != 0:
            raise SystemExit(completed.stderr[-3000:])
        results.append(json.loads(completed.stdout.splitlines()[-1]))
        loads.append(os.getloadavg()[0])
    print(
        f"{runs} runs; load average (1 min) {min(loads):.2f} to {max(loads):.2f}; "
        "CPU ms (time.process_time), median [quartiles], modules added"
    )
    above = 0.0
    for index, (label, _) in enumerate(GROUPS):
        samples = sorted(run[index][0] for run in results)
        low, median, high = statistics.quantiles(samples, n=4)
        modules = results[0][index][1]
        print(f"{median:8.1f}  [{low:6.1f} {high:6.1f}]  {modules:4d}  {label}")
        above += median if index else 0.0
    print(f"{above:8.1f}  above the libraries (sum of medians)")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
