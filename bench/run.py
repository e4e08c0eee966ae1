"""`make bench`: Taskline against the FastAPI peer and the raw pg8000 floor, side by side.

Every figure comes from this one run, on one database and one data set, with the same HTTP
API 2.0 events for both sides. Each function runs in its own fresh interpreter (bench/child.py,
`python -I -S -B`: no site, nothing written) with only what its deployment ships on sys.path.
Taskline runs its `sam build` artifact (.aws-sam/build: the function folder and the layer's
python/ folder, with their bytecode), where only the packages holding native extensions are
swapped for the x86_64 twin built by the same recipe (bench/.build/layer-x86_64), since the
arm64 ones cannot run here. The peer runs as `sam build` packages it (no bytecode) and, for the
like-for-like comparison, compiled the same way as Taskline. Absolute numbers depend on the
machine; the ratios, measured interleaved, are what the targets are about.

Environment knobs (for quick iterations; `make bench` uses the defaults): BENCH_COLD_RUNS (15),
BENCH_STEP_RUNS (11, the import steps), BENCH_ROUNDS (3), BENCH_SCALE (1.0, multiplies warm
iterations), BENCH_SAM (1; 0 skips `make sam-build` and reuses .aws-sam/build if present).
"""

from __future__ import annotations

import json
import os
import platform
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
import zipfile
from pathlib import Path
from typing import Any

from bench import data as bench_data
from bench.report import write_reports
from localdev.template import ROOT, load

BENCH = ROOT / "bench"
BUILD = BENCH / ".build"
SAM_BUILD = ROOT / ".aws-sam" / "build"
RESULTS = BENCH / "results"
CHILD = BENCH / "child.py"
PEER = BENCH / "peers" / "fastapi"
CHILD_TIMEOUT = 600

COLD_RUNS = int(os.environ.get("BENCH_COLD_RUNS", "15"))
STEP_RUNS = int(os.environ.get("BENCH_STEP_RUNS", "11"))
ROUNDS = int(os.environ.get("BENCH_ROUNDS", "3"))
SCALE = float(os.environ.get("BENCH_SCALE", "1.0"))
RUN_SAM = os.environ.get("BENCH_SAM", "1") != "0"

BIG_TASKS = 60_000  # page 1,000 of 50 needs 50,000; the rest keeps it from being the last
OTHER_USERS = 200
TASKS_EACH = 100
BCRYPT_ROUNDS = 12  # the default cost, stated in the report


def log(message: str) -> None:
    print(f"[bench {time.strftime('%H:%M:%S')}] {message}", file=sys.stderr, flush=True)


def iterations(n: int) -> int:
    return max(20, int(n * SCALE))


def prepare_packages() -> dict[str, Any]:
    """What each benchmarked process gets on sys.path, built from what ships.

    - Taskline as deployed: `.aws-sam/build/<Function>` and a copy of the layer's `python/`
      folder in which each top-level package holding native extensions (aarch64 here) is
      replaced by the same package from the x86_64 twin, built by the very same recipe.
    - Taskline before this change (for reference): the same files without their bytecode.
    - The peer as deployed: its requirements (pip --no-compile) and its code, no bytecode.
    - The peer compiled: the same, with unchecked-hash 3.13 bytecode as Taskline ships.
    """
    if RUN_SAM or not (SAM_BUILD / "TasklineLayer").is_dir():
        log("make sam-build ...")
        completed = subprocess.run(
            ["make", "sam-build"], cwd=ROOT, capture_output=True, text=True, timeout=1800
        )
        if completed.returncode != 0:
            raise SystemExit(f"sam build failed:\n{completed.stdout[-3000:]}\n{completed.stderr}")
    twin = BUILD / "layer-x86_64" / "python"
    packages = BUILD / "packages"
    shutil.rmtree(packages, ignore_errors=True)
    layer = packages / "layer"
    shutil.copytree(SAM_BUILD / "TasklineLayer" / "python", layer)
    swapped = []
    for entry in sorted(layer.iterdir()):
        if entry.is_dir() and any(entry.rglob("*.so")):
            shutil.rmtree(entry)
            shutil.copytree(twin / entry.name, entry)
            swapped.append(entry.name)
    no_bytecode = shutil.ignore_patterns("__pycache__", "*.pyc")
    shutil.copytree(layer, packages / "layer-source", ignore=no_bytecode)
    for function in ("TasksFunction", "AuthFunction"):
        shutil.copytree(SAM_BUILD / function, packages / function)
        shutil.copytree(SAM_BUILD / function, packages / f"{function}-source", ignore=no_bytecode)
    peer = packages / "peer"
    shutil.copytree(BUILD / "peer", peer, ignore=no_bytecode)
    shutil.copytree(PEER / "api", peer / "api", ignore=no_bytecode)
    shutil.copytree(peer, packages / "peer-compiled")
    subprocess.run(
        [sys.executable, "-m", "compileall", "-q", "-j", "0", "--invalidation-mode",
         "unchecked-hash", str(packages / "peer-compiled")],
        check=True, capture_output=True,
    )  # fmt: skip
    log(f"packages ready; native packages from the x86_64 twin: {', '.join(swapped)}")
    return {"swapped_native_packages": swapped}


def systems(template: Any, data: bench_data.Data) -> dict[str, dict[str, Any]]:
    """How to start each function: sys.path, handler, environment, what to run warm."""
    packages = BUILD / "packages"
    base = bench_data.bench_environment()

    def taskline_env(function: str) -> dict[str, str]:
        env = {k: v for k, v in template.functions[function].environment.items() if v}
        env.update(
            DATABASE_URL=data.url,
            JWT_SECRET=bench_data.JWT_SECRET,
            DB_SSL_MODE="disable",
            BCRYPT_ROUNDS=str(BCRYPT_ROUNDS),
        )
        return {**base, **env}

    def route(status: int, n: int, warmup: int = 100, event: str = "") -> dict[str, Any]:
        options = {"status": status, "iterations": iterations(n), "warmup": min(warmup, n)}
        return {**options, "event": event} if event else options

    reads = {
        "get": route(200, 3000),
        "list_p1": route(200, 1000),
        "list_p1000": route(200, 1000),
        "create": route(201, 1000),
    }
    # Page 1,000 is compared with page 1: their blocks take turns (bench/child.py's timed()).
    pages_together = [["list_p1", "list_p1000"]]
    tasks = {
        "label": "Taskline TasksFunction",
        "sys_path": [str(packages / "TasksFunction"), str(packages / "layer")],
        "module": "app",
        "handler": "lambda_handler",
        "env": taskline_env("TasksFunction"),
        "first": ["get", 200],
        "routes": reads,
        "together": pages_together,
        "floor": {
            "connect": data.connect,
            "routes": ["get", "list_p1", "list_p1000", "create"],
        },
    }
    peer_env = {
        **base,
        "DATABASE_URL": data.sqlalchemy_url,
        "JWT_SECRET": bench_data.JWT_SECRET,
        "JWT_ISSUER": "taskline",
        "JWT_AUDIENCE": "taskline-api",
    }
    peer = {
        "label": "FastAPI peer (Mangum), compiled",
        "sys_path": [str(packages / "peer-compiled")],
        "module": "api.main",
        "handler": "handler",
        "env": peer_env,
        "first": ["get", 200],
        # Page 1,000 the way each side pages: Taskline's cursor, the peer's ?skip= (OFFSET).
        "routes": {**reads, "list_p1000": route(200, 1000, event="peer_list_p1000")},
        "together": pages_together,
    }
    return {
        "tasks": tasks,
        "auth": {
            "label": "Taskline AuthFunction",
            "sys_path": [str(packages / "AuthFunction"), str(packages / "layer")],
            "module": "app",
            "handler": "lambda_handler",
            "env": taskline_env("AuthFunction"),
            "first": ["me", 200],
            "bcrypt": {
                "password": bench_data.PASSWORD,
                "hash": data.password_hash,
                "iterations": 7,
            },
            "routes": {
                "me": route(200, 2000),
                "token": {"status": 200, "iterations": 15, "warmup": 1},
            },
        },
        "peer": peer,
        "peer_deployed": {
            **peer,
            "label": "FastAPI peer (Mangum), as sam build packages it",
            "sys_path": [str(packages / "peer")],
        },
        "tasks_source": {
            **tasks,
            "label": "Taskline TasksFunction without bytecode (sam build before this change)",
            "sys_path": [str(packages / "TasksFunction-source"), str(packages / "layer-source")],
        },
        "shared": {
            "label": "The libraries both sides import, alone",
            "sys_path": [str(packages / "layer")],
            "imports": SHARED_IMPORTS,
            "env": base,
        },
        # A SnapStart restore: everything imported and the engine built (the before-snapshot
        # hook), no connection; then the first request, its round trips counted.
        "tasks_restore": {
            **tasks,
            "label": "Taskline TasksFunction after a SnapStart restore",
            "before_first": ["taskline.snapstart", "warm_up"],
        },
        "peer_restore": {**peer, "label": "FastAPI peer, first request after its imports"},
    }


# What any Lambda on this stack serving these routes loads, whatever sits on top: the ORM and
# its PostgreSQL dialect over pg8000, pydantic's models, PyJWT. Importing them and nothing else
# bounds from below the cold start any design on this stack can reach.
SHARED_IMPORTS = [
    "sqlalchemy.orm",
    "sqlalchemy.dialects.postgresql.pg8000",
    "pg8000",
    "pydantic.main",
    "jwt",
]


# What the TasksFunction cold path imports, in the order it builds up: each step adds to the
# previous ones, so the difference between two steps' medians is what that step costs.
IMPORT_STEPS = [
    ("the interpreter alone", []),
    ("sqlalchemy (Core)", ["sqlalchemy"]),
    ("PostgreSQL dialect + pg8000", ["sqlalchemy.dialects.postgresql.pg8000", "pg8000"]),
    ("pydantic", ["pydantic.main"]),
    ("PyJWT", ["jwt"]),
    ("sqlalchemy.orm", ["sqlalchemy.orm"]),
    ("Powertools event handler", ["aws_lambda_powertools.event_handler"]),
    (
        "Powertools Logger + Metrics",
        ["aws_lambda_powertools.logging", "aws_lambda_powertools.metrics"],
    ),
    ("taskline.models (10 mapped tables)", ["taskline.models"]),
    ("taskline.schemas", ["taskline.schemas"]),
    (
        "settings, tokens, resolver, problems",
        ["taskline.settings", "taskline.security.tokens", "taskline.api.resolver"],
    ),
    ("services, repositories, db, pgwire", ["taskline.services.task_service", "taskline.db"]),
    ("app.py (routes registered)", ["app"]),
]


def measure_import_steps(all_systems: dict[str, Any], runs_each: int) -> list[dict[str, Any]]:
    """Fresh processes importing each cumulative step, interleaved; medians and differences."""
    tasks = all_systems["tasks"]
    steps = []
    cumulative: list[str] = []
    for label, modules in IMPORT_STEPS:
        cumulative = [*cumulative, *modules]
        steps.append({**tasks, "label": label, "imports": cumulative, "env": tasks["env"]})
    samples: list[list[float]] = [[] for _ in steps]
    for index in range(runs_each):
        order = list(range(len(steps)))
        order = order[index % len(order) :] + order[: index % len(order)]
        for step in order:
            _, wall_ms = spawn(steps[step], "imports", {})
            samples[step].append(wall_ms)
    log(f"import steps: {runs_each} runs each of {len(steps)} steps")
    medians = [statistics.median(s) for s in samples]
    return [
        {
            "label": label,
            "modules": modules,
            "wall_ms": medians[i],
            "added_ms": medians[i] - medians[i - 1] if i else medians[0],
        }
        for i, (label, modules) in enumerate(IMPORT_STEPS)
    ]


def spawn(
    system: dict[str, Any], mode: str, events: dict[str, Any]
) -> tuple[dict[str, Any], float]:
    """Start a fresh interpreter; return its report and the wall time until it arrived.

    `python -I -S -B`, as Lambda's runtime starts: no site-packages, no user environment, and
    no bytecode written (the deployment is read-only), so a module without shipped bytecode is
    compiled from source on every start.
    """
    spec = {**system, "mode": mode, "events": events if mode != "imports" else {}}
    if mode != "warm":
        spec.pop("floor", None)
    spec.pop("env")
    with tempfile.NamedTemporaryFile("w", suffix=".json", delete=False) as file:
        json.dump(spec, file)
    try:
        command = [sys.executable, "-I", "-S", "-B", str(CHILD), file.name]
        begun = time.perf_counter()
        process = subprocess.Popen(
            command,
            env=system["env"],
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
            cwd=system["sys_path"][0],
        )
        assert process.stdout is not None
        line = process.stdout.readline()
        elapsed_ms = (time.perf_counter() - begun) * 1e3
        _, errors = process.communicate(timeout=CHILD_TIMEOUT)
        if process.returncode != 0 or not line:
            raise RuntimeError(f"{system['label']} ({mode}) failed:\n{errors[-3000:]}")
        return json.loads(line), elapsed_ms
    finally:
        Path(file.name).unlink()


COLD_SYSTEMS = ("tasks", "auth", "peer", "peer_deployed", "tasks_source", "shared")
RESTORE_SYSTEMS = ("tasks_restore", "peer_restore")


def _mode(name: str) -> str:
    if name == "shared":
        return "imports"
    return "restore" if name in RESTORE_SYSTEMS else "cold"


def measure_cold(
    all_systems: dict[str, Any], events: dict[str, Any], runs_each: int
) -> dict[str, Any]:
    """Fresh processes, all systems interleaved in a rotating order; medians per system.

    One unmeasured start of each first, so every run reads its files from the page cache.
    """
    names = [*COLD_SYSTEMS, *RESTORE_SYSTEMS]
    for name in names:
        spawn(all_systems[name], _mode(name), events)
    runs: dict[str, list[dict[str, Any]]] = {name: [] for name in names}
    loads = []
    for index in range(runs_each):
        order = names[index % len(names) :] + names[: index % len(names)]
        for name in order:
            report, wall_ms = spawn(all_systems[name], _mode(name), events)
            runs[name].append({**report, "wall_ms": wall_ms})
        loads.append(os.getloadavg()[0])
    log(f"cold starts: {runs_each} runs each of {names}")
    summary: dict[str, Any] = {}
    for name, samples in runs.items():
        figures = {
            "runs": samples,
            "wall_ms": statistics.median(s["wall_ms"] for s in samples),
            "import_ms": statistics.median(s["import_ms"] for s in samples),
            "first_request_ms": statistics.median(s["first_request_ms"] for s in samples),
            "peak_rss_kb": statistics.median(s["peak_rss_kb_after_first"] for s in samples),
            "modules": statistics.median(s["modules_after_first"] for s in samples),
        }
        if "first_round_trips" in samples[0]:
            figures["first_round_trips"] = statistics.median(
                s["first_round_trips"] for s in samples
            )
            figures["first_statements"] = samples[-1]["first_statements"]
            figures["first_phases_ms"] = {
                phase: statistics.median(s["first_phases_ms"][phase] for s in samples)
                for phase in samples[-1]["first_phases_ms"]
            }
        summary[name] = figures
    summary["load_average_during"] = {
        "min": min(loads),
        "median": statistics.median(loads),
        "max": max(loads),
    }
    return summary


def measure_warm(all_systems: dict[str, Any], events: dict[str, Any]) -> dict[str, Any]:
    rounds: dict[str, list[dict[str, Any]]] = {name: [] for name in ("tasks", "peer", "auth")}
    for index in range(ROUNDS):
        order = ["tasks", "peer", "auth"] if index % 2 == 0 else ["peer", "tasks", "auth"]
        for name in order:
            report, _ = spawn(all_systems[name], "warm", events)
            rounds[name].append(report)
        log(f"warm round {index + 1}/{ROUNDS} done")
    return {name: summarize_warm(reports) for name, reports in rounds.items()}


def summarize_warm(reports: list[dict[str, Any]]) -> dict[str, Any]:
    """Medians over rounds of each route's p50/p99; round trips from the last round."""
    last = reports[-1]
    routes = {}
    for route, figures in last["routes"].items():
        per_round = [r["routes"][route] for r in reports]
        routes[route] = {
            "p50_ms": statistics.median(r["p50_ms"] for r in per_round),
            "p99_ms": statistics.median(r["p99_ms"] for r in per_round),
            "n": sum(r["n"] for r in per_round),
            "round_trips": figures["round_trips"],
            "statements": figures["statements"],
        }
    summary: dict[str, Any] = {
        "routes": routes,
        "first_round_trips": last["first_round_trips"],
        "first_statements": last["first_statements"],
        "peak_rss_kb_end": statistics.median(r["peak_rss_kb_end"] for r in reports),
    }
    if "bcrypt" in last:
        summary["bcrypt"] = {
            "p50_ms": statistics.median(r["bcrypt"]["p50_ms"] for r in reports),
        }
    if "floor" in last:
        summary["floor"] = {
            route: {
                kind: {
                    "p50_ms": statistics.median(r["floor"][route][kind]["p50_ms"] for r in reports),
                    "p99_ms": statistics.median(r["floor"][route][kind]["p99_ms"] for r in reports),
                    "round_trips": figures[kind]["round_trips"],
                }
                for kind in ("run", "prepared")
            }
            for route, figures in last["floor"].items()
        }
    return summary


def directory_sizes(path: Path) -> dict[str, float]:
    """Unzipped bytes, and the deployment zip's bytes (deflate, as `sam deploy` uploads)."""
    files = [p for p in path.rglob("*") if p.is_file()]
    raw = sum(p.stat().st_size for p in files)
    with tempfile.TemporaryFile() as handle:
        with zipfile.ZipFile(handle, "w", zipfile.ZIP_DEFLATED) as archive:
            for p in files:
                archive.write(p, p.relative_to(path))
        zipped = handle.tell()
    return {"unzipped_mb": raw / 1e6, "zipped_mb": zipped / 1e6, "files": len(files)}


def measure_artifacts() -> dict[str, Any]:
    """The size of each directory `sam build` made (built by prepare_packages)."""
    sizes = {
        child.name: directory_sizes(child)
        for child in sorted(SAM_BUILD.iterdir())
        if child.is_dir() and child.name != "__pycache__"
    }
    sizes["FastAPI peer (arm64 package)"] = peer_package_size()
    return sizes


def peer_package_size() -> dict[str, Any]:
    """The peer's Lambda package as `sam build` would make it for arm64: its code + wheels."""
    with tempfile.TemporaryDirectory() as target:
        completed = subprocess.run(
            [
                sys.executable, "-m", "pip", "install", "--quiet", "--no-compile",
                "--target", target,
                "--platform", "manylinux2014_aarch64", "--implementation", "cp",
                "--python-version", "3.13", "--only-binary=:all:",
                "-r", str(PEER / "requirements.txt"),
            ],
            capture_output=True, text=True, timeout=600,
        )  # fmt: skip
        if completed.returncode != 0:
            return {"error": "pip could not fetch the peer's arm64 wheels"}
        shutil.copytree(
            PEER / "api", Path(target) / "api", ignore=shutil.ignore_patterns("__pycache__")
        )
        return directory_sizes(Path(target))


def main() -> int:
    begun = time.perf_counter()
    for needed in (BUILD / "layer-x86_64", BUILD / "peer"):
        if not needed.is_dir():
            raise SystemExit(f"{needed} is missing: run `make bench`, which installs it")
    os.environ.update(
        JWT_SECRET=bench_data.JWT_SECRET,
        BCRYPT_ROUNDS=str(BCRYPT_ROUNDS),
        DB_SSL_MODE="disable",
        ACCESS_TOKEN_TTL_SECONDS=str(6 * 3600),  # the bench's tokens outlive the run
    )
    log("seeding the taskline_bench database ...")
    data = bench_data.prepare(BIG_TASKS, OTHER_USERS, TASKS_EACH, BCRYPT_ROUNDS)
    os.environ["DATABASE_URL"] = data.url
    template = load()
    events = bench_data.events(template, data)
    packages = prepare_packages()
    all_systems = systems(template, data)

    cold = measure_cold(all_systems, events, COLD_RUNS)
    import_steps = measure_import_steps(all_systems, STEP_RUNS)
    warm = measure_warm(all_systems, events)
    artifacts = measure_artifacts()
    results = {
        "when": time.strftime("%Y-%m-%d %H:%M:%S %Z"),
        "machine": {
            "python": platform.python_version(),
            "platform": platform.platform(),
            "cpus": os.cpu_count(),
            "load_average": os.getloadavg(),
        },
        "setup": {
            "cold_runs": COLD_RUNS,
            "step_runs": STEP_RUNS,
            **packages,
            "shared_imports": SHARED_IMPORTS,
            "rounds": ROUNDS,
            "big_account_tasks": BIG_TASKS,
            "total_tasks": BIG_TASKS + OTHER_USERS * TASKS_EACH,
            "page_size": bench_data.PAGE_SIZE,
            "deep_page": bench_data.DEEP_PAGE,
        },
        "cold": cold,
        "import_steps": import_steps,
        "warm": warm,
        "bcrypt": {"rounds": BCRYPT_ROUNDS, "check_ms": warm["auth"]["bcrypt"]["p50_ms"]},
        "artifacts": artifacts,
        "duration_s": time.perf_counter() - begun,
    }
    table = write_reports(results, RESULTS)
    print(table)
    log(f"done in {results['duration_s']:.0f} s; results in {RESULTS.relative_to(ROOT)}/")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
