"""The bench's table (Markdown, printed and saved) and chart (PNG), from one run's results."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

TARGETS = {
    "cold_deployed": 0.35,  # cold start, each side's artifact as it ships, <= 0.35x the peer's
    "cold_like_for_like": 0.75,  # cold start, both compiled, <= 0.75x the peer's
    "warm_vs_peer": 0.25,  # warm GET /tasks/{id} p50 <= 0.25x the peer's
    "warm_vs_floor": 2.0,  # ... and <= 2x the raw pg8000 floor
    "round_trips": 1,  # database round trips for a read by id
    "deep_page": 1.5,  # page 1,000 p50 <= 1.5x page 1 p50
}
COLD_ROWS = [
    ("tasks", "Taskline TasksFunction, GET /tasks/{id} (the sam build artifact, bytecode shipped)"),
    ("auth", "Taskline AuthFunction, GET /users/me (the sam build artifact)"),
    ("peer_deployed", "FastAPI peer, GET /tasks/{id}, as sam build packages it (no bytecode)"),
    ("peer", "FastAPI peer, GET /tasks/{id}, compiled like Taskline"),
    ("tasks_source", "Taskline TasksFunction without bytecode (sam build before issue 12)"),
    ("shared", "Shared libraries only (imports, no request)"),
]
ROUTES = [
    ("get", "GET /tasks/{id}"),
    ("list_p1", "GET /tasks, page 1"),
    ("list_p1000", "GET /tasks, page 1,000"),
    ("create", "POST /tasks"),
]


def _ms(value: float) -> str:
    return f"{value:.1f} ms" if value >= 10 else f"{value:.2f} ms"


def _mb(kilobytes: float) -> str:
    return f"{kilobytes / 1024:.1f} MB"


def _size(megabytes: float) -> str:
    return f"{megabytes:.1f} MB" if megabytes >= 1 else f"{megabytes * 1000:.1f} kB"


def _verdict(met: bool | None) -> str:
    if met is None:
        return "reported"
    return "met" if met else "NOT met"


def targets(results: dict[str, Any]) -> list[dict[str, Any]]:
    cold, warm = results["cold"], results["warm"]
    tasks, peer = warm["tasks"], warm["peer"]
    get_p50 = tasks["routes"]["get"]["p50_ms"]
    floor = tasks["floor"]["get"]["run"]["p50_ms"]
    mine = cold["tasks"]["wall_ms"]
    deployed_ratio = mine / cold["peer_deployed"]["wall_ms"]
    like_ratio = mine / cold["peer"]["wall_ms"]
    warm_ratio = get_p50 / peer["routes"]["get"]["p50_ms"]
    floor_ratio = get_p50 / floor
    memory_ratio = cold["tasks"]["peak_rss_kb"] / cold["peer"]["peak_rss_kb"]
    trips = tasks["routes"]["get"]["round_trips"]
    deep_ratio = tasks["routes"]["list_p1000"]["p50_ms"] / tasks["routes"]["list_p1"]["p50_ms"]
    restore = cold["tasks_restore"]
    return [
        {
            "figure": "Cold start as deployed: TasksFunction artifact vs the peer as sam build "
            "packages it (median wall time)",
            "target": f"<= {TARGETS['cold_deployed']}x",
            "measured": f"{deployed_ratio:.2f}x ({_ms(mine)} vs "
            f"{_ms(cold['peer_deployed']['wall_ms'])})",
            "met": deployed_ratio <= TARGETS["cold_deployed"],
        },
        {
            "figure": "Cold start like for like: both compiled (median wall time)",
            "target": f"<= {TARGETS['cold_like_for_like']}x",
            "measured": f"{like_ratio:.2f}x ({_ms(mine)} vs {_ms(cold['peer']['wall_ms'])})",
            "met": like_ratio <= TARGETS["cold_like_for_like"],
        },
        {
            "figure": "Warm GET /tasks/{id} p50 vs peer",
            "target": f"<= {TARGETS['warm_vs_peer']}x",
            "measured": f"{warm_ratio:.2f}x ({_ms(get_p50)} vs "
            f"{_ms(peer['routes']['get']['p50_ms'])})",
            "met": warm_ratio <= TARGETS["warm_vs_peer"],
        },
        {
            "figure": "Warm GET /tasks/{id} p50 vs raw pg8000 floor (Connection.run)",
            "target": f"<= {TARGETS['warm_vs_floor']}x",
            "measured": f"{floor_ratio:.2f}x ({_ms(get_p50)} vs {_ms(floor)})",
            "met": floor_ratio <= TARGETS["warm_vs_floor"],
        },
        {
            "figure": "Database round trips, GET /tasks/{id} (counted on the socket)",
            "target": f"{TARGETS['round_trips']}",
            "measured": f"{trips}",
            "met": trips <= TARGETS["round_trips"],
        },
        {
            "figure": "GET /tasks page 1,000 p50 vs page 1 p50",
            "target": f"<= {TARGETS['deep_page']}x",
            "measured": f"{deep_ratio:.2f}x ({_ms(tasks['routes']['list_p1000']['p50_ms'])} vs "
            f"{_ms(tasks['routes']['list_p1']['p50_ms'])})",
            "met": deep_ratio <= TARGETS["deep_page"],
        },
        {
            "figure": "First request after a SnapStart restore: round trips, time",
            "target": "fewest justified",
            "measured": f"{restore['first_round_trips']:.0f} round trips, "
            f"{_ms(restore['first_request_ms'])} (peer: "
            f"{cold['peer_restore']['first_round_trips']:.0f}, "
            f"{_ms(cold['peer_restore']['first_request_ms'])})",
            "met": None,
        },
        {
            "figure": "Peak memory (VmHWM after the first request) vs peer, compiled",
            "target": "report",
            "measured": f"{memory_ratio:.2f}x ({_mb(cold['tasks']['peak_rss_kb'])} vs "
            f"{_mb(cold['peer']['peak_rss_kb'])})",
            "met": None,
        },
    ]


def markdown(results: dict[str, Any]) -> str:
    cold, warm = results["cold"], results["warm"]
    tasks, peer, auth = warm["tasks"], warm["peer"], warm["auth"]
    setup = results["setup"]
    lines = [
        f"Run {results['when']} on {results['machine']['platform']}, Python "
        f"{results['machine']['python']}, {results['machine']['cpus']} CPUs "
        f"(load average {results['machine']['load_average'][0]:.2f} at the end); "
        f"{results['duration_s']:.0f} s in all.",
        "",
        "### Targets",
        "",
        "| Figure | Target | Measured | |",
        "|---|---|---|---|",
    ]
    lines += [
        f"| {t['figure']} | {t['target']} | {t['measured']} | {_verdict(t['met'])} |"
        for t in targets(results)
    ]
    shared = cold["shared"]
    during = cold["load_average_during"]
    lines += [
        "",
        f"Lower bound on this stack: a process that only imports what both sides need "
        f"({', '.join(f'`{m}`' for m in setup['shared_imports'])}) takes "
        f"{_ms(shared['wall_ms'])}, {shared['wall_ms'] / cold['peer']['wall_ms']:.2f}x the peer's "
        f"compiled cold start, and peaks at {_mb(shared['peak_rss_kb'])}, "
        f"{shared['peak_rss_kb'] / cold['peer']['peak_rss_kb']:.2f}x the peer's memory.",
        "",
        f"### Cold start (median of {setup['cold_runs']} fresh `python -I -S -B` processes each, "
        "all interleaved in one loop)",
        "",
        f"Load average (1 min) during the loop: {during['min']:.2f} to {during['max']:.2f}, "
        f"median {during['median']:.2f}. Native packages taken from the x86_64 twin of the "
        f"layer: {', '.join(setup.get('swapped_native_packages', []))}.",
        "",
        "| Function | Process start to first response | of which imports | first request "
        "| peak RSS (VmHWM) after it | modules loaded |",
        "|---|---|---|---|---|---|",
    ]
    for name, label in COLD_ROWS:
        figures = cold[name]
        lines.append(
            f"| {label} | {_ms(figures['wall_ms'])} | {_ms(figures['import_ms'])} | "
            f"{_ms(figures['first_request_ms'])} | {_mb(figures['peak_rss_kb'])} | "
            f"{figures['modules']:.0f} |"
        )
    lines += [
        "",
        "### Where the TasksFunction cold start goes: imports, step by step",
        "",
        "Each step imports everything the steps above it import, plus its own modules, in a "
        "fresh `python -I -S -B` against the artifact (same interleaving, medians of wall "
        "time); a step's cost is the difference from the step above.",
        "",
        "| Step | Modules added | Process start to imports done | This step |",
        "|---|---|---|---|",
    ]
    for step in results.get("import_steps", []):
        lines.append(
            f"| {step['label']} | {', '.join(f'`{m}`' for m in step['modules']) or '-'} | "
            f"{_ms(step['wall_ms'])} | {_ms(step['added_ms'])} |"
        )
    lines += [
        "",
        "### First request after a SnapStart restore (imports done, engine built, no connection)",
        "",
        "| Function | Round trips | First request | before the database | connecting "
        "| first-connection queries | the query and the response | statements sent |",
        "|---|---|---|---|---|---|---|---|",
    ]
    for name, label in (
        ("tasks_restore", "Taskline TasksFunction, GET /tasks/{id}"),
        ("peer_restore", "FastAPI peer, GET /tasks/{id}"),
    ):
        figures = cold[name]
        phase = figures["first_phases_ms"]
        lines.append(
            f"| {label} | {figures['first_round_trips']:.0f} | "
            f"{_ms(figures['first_request_ms'])} | {_ms(phase.get('before_database', 0))} | "
            f"{_ms(phase.get('connect', 0))} | {_ms(phase.get('first_connection_queries', 0))} | "
            f"{_ms(phase.get('query_and_response', 0))} | "
            f"{'; '.join(_short(sql) for sql, _ in figures['first_statements'])} |"
        )
    lines += [
        "",
        f"### Warm latency (one process; median over {setup['rounds']} rounds of each "
        "round's p50 and p99)",
        "",
        "| Route | Taskline p50 / p99 | FastAPI peer p50 / p99 | raw pg8000 `run` p50 "
        "| raw pg8000 prepared p50 | Taskline / peer |",
        "|---|---|---|---|---|---|",
    ]
    for route, label in ROUTES:
        mine, theirs = tasks["routes"][route], peer["routes"][route]
        floor = tasks["floor"][route]
        lines.append(
            f"| {label} | {_ms(mine['p50_ms'])} / {_ms(mine['p99_ms'])} | "
            f"{_ms(theirs['p50_ms'])} / {_ms(theirs['p99_ms'])} | "
            f"{_ms(floor['run']['p50_ms'])} | {_ms(floor['prepared']['p50_ms'])} | "
            f"{mine['p50_ms'] / theirs['p50_ms']:.2f}x |"
        )
    lines += [
        f"| GET /users/me (AuthFunction) | {_ms(auth['routes']['me']['p50_ms'])} / "
        f"{_ms(auth['routes']['me']['p99_ms'])} | - | - | - | - |",
        f"| POST /token, bcrypt cost {results['bcrypt']['rounds']} | "
        f"{_ms(auth['routes']['token']['p50_ms'])} / {_ms(auth['routes']['token']['p99_ms'])} "
        f"| - | bcrypt check alone: {_ms(results['bcrypt']['check_ms'])} | - | - |",
        "",
        "Both sides get the very same event for every row but one: page 1,000 is asked the way"
        " each side pages, `?cursor=` (keyset) for Taskline and `?skip=49950` (the FastAPI"
        " tutorial's skip/limit, i.e. OFFSET) for the peer. The floor replays the SQL Taskline"
        " sent, minus BEGIN/COMMIT, in the same process, in blocks of 250 that take turns with"
        " the function's invocations.",
        "",
        "### Database round trips per request (counted on the socket) and statements sent",
        "",
        "| Request | Taskline | FastAPI peer |",
        "|---|---|---|",
    ]

    def sent(figures: dict[str, Any]) -> str:
        return "; ".join(_short(sql) for sql, _ in figures["statements"])

    for route, label in ROUTES:
        mine, theirs = tasks["routes"][route], peer["routes"][route]
        lines.append(
            f"| {label} | {mine['round_trips']}: {sent(mine)} | "
            f"{theirs['round_trips']}: {sent(theirs)} |"
        )
    lines.append(
        f"| GET /users/me | {auth['routes']['me']['round_trips']}: {sent(auth['routes']['me'])}"
        " | - |"
    )
    token = auth["routes"]["token"]
    lines.append(f"| POST /token (password grant) | {token['round_trips']}: {sent(token)} | - |")
    lines.append(
        f"| First request of a new process (connect + query) | {tasks['first_round_trips']} | "
        f"{peer['first_round_trips']} |"
    )
    lines += ["", "### `sam build` artifacts (.aws-sam/build)", ""]
    artifacts = results["artifacts"]
    if "error" in artifacts:
        lines.append(f"Not measured: {artifacts['error']}.")
    else:
        lines += ["| Artifact | Unzipped | Zipped (deflate) | Files |", "|---|---|---|---|"]
        for name, size in artifacts.items():
            if "error" in size:
                lines.append(f"| {name} | {size['error']} | | |")
                continue
            lines.append(
                f"| {name} | {_size(size['unzipped_mb'])} | {_size(size['zipped_mb'])} | "
                f"{size['files']} |"
            )
    return "\n".join(lines) + "\n"


def _short(sql: str) -> str:
    """A statement as one word: BEGIN, ping, SELECT tasks, INSERT tasks, COMMIT..."""
    words = sql.replace(";", " ").split()
    if not words:
        return "ping"
    if words[0].upper() == "WITH" and len(words) > 3:  # WITH name AS (INSERT ...) ...: the CTE's
        words = [words[3].lstrip("("), *words[4:]]
    verb = words[0].upper()
    lowered = [w.lower() for w in words]
    table = ""
    keyword = {"SELECT": "from", "DELETE": "from", "INSERT": "into"}.get(verb)
    if verb == "UPDATE" and len(words) > 1:
        table = " " + words[1]
    elif keyword in lowered[:-1]:
        table = " " + words[lowered.index(keyword) + 1]
    if verb == "SELECT" and not table:
        return "SELECT"
    return verb + table


def chart(results: dict[str, Any], path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    cold, warm = results["cold"], results["warm"]
    taskline, peer, floor = "#2b7bba", "#d95f02", "#7f7f7f"
    figure, axes = plt.subplots(2, 2, figsize=(12, 8.5))
    figure.suptitle("Taskline vs the FastAPI + Mangum peer (same database, data and events)")

    ax = axes[0][0]
    names = ["tasks", "auth", "peer", "peer_deployed", "tasks_source", "shared"]
    labels = [
        "Taskline\nTasksFunction",
        "Taskline\nAuthFunction",
        "peer\ncompiled",
        "peer as\ndeployed",
        "Taskline\nno bytecode",
        "shared libs\nonly",
    ]
    imports = [cold[n]["import_ms"] for n in names]
    rest = [cold[n]["wall_ms"] - cold[n]["import_ms"] for n in names]
    colors = [taskline, taskline, peer, peer, taskline, floor]
    ax.bar(labels, imports, color=colors, label="imports")
    ax.bar(
        labels, rest, bottom=imports, color=colors, alpha=0.45, label="interpreter + first request"
    )
    for i, n in enumerate(names):
        ax.text(i, cold[n]["wall_ms"], f"{cold[n]['wall_ms']:.0f} ms", ha="center", va="bottom")
    ax.axhline(
        cold["peer"]["wall_ms"] * TARGETS["cold_like_for_like"], color=peer, linestyle="--",
        linewidth=1, label=f"target: {TARGETS['cold_like_for_like']}x the compiled peer",
    )  # fmt: skip
    ax.axhline(
        cold["peer_deployed"]["wall_ms"] * TARGETS["cold_deployed"], color=peer, linestyle=":",
        linewidth=1, label=f"target: {TARGETS['cold_deployed']}x the peer as deployed",
    )  # fmt: skip
    ax.tick_params(axis="x", labelsize=8)
    ax.set_title("Cold start: process start to first response (median)")
    ax.set_ylabel("ms")
    ax.set_ylim(top=max(cold[n]["wall_ms"] for n in names) * 1.35)  # room for the legend
    ax.legend(loc="upper left", fontsize=8)

    ax = axes[0][1]
    width = 0.2
    for offset, (label, color, values) in enumerate(
        [
            ("Taskline", taskline, [warm["tasks"]["routes"][r]["p50_ms"] for r, _ in ROUTES]),
            ("FastAPI peer", peer, [warm["peer"]["routes"][r]["p50_ms"] for r, _ in ROUTES]),
            (
                "raw pg8000 run",
                floor,
                [warm["tasks"]["floor"][r]["run"]["p50_ms"] for r, _ in ROUTES],
            ),
            (
                "raw pg8000 prepared",
                "#bbbbbb",
                [warm["tasks"]["floor"][r]["prepared"]["p50_ms"] for r, _ in ROUTES],
            ),
        ]
    ):
        positions = [i + (offset - 1.5) * width for i in range(len(ROUTES))]
        ax.bar(positions, values, width, label=label, color=color)
    ax.set_xticks(range(len(ROUTES)), [label.replace(", ", "\n") for _, label in ROUTES])
    ax.set_title("Warm latency, p50 per invocation")
    ax.set_ylabel("ms")
    ax.legend(fontsize=8)

    ax = axes[1][0]
    values = [cold[n]["peak_rss_kb"] / 1024 for n in names]
    ax.bar(labels, values, color=colors)
    ax.tick_params(axis="x", labelsize=8)
    for i, value in enumerate(values):
        ax.text(i, value, f"{value:.0f} MB", ha="center", va="bottom")
    ax.set_title("Peak memory after the first request (VmHWM)")
    ax.set_ylabel("MB")

    ax = axes[1][1]
    width = 0.35
    mine = [warm["tasks"]["routes"][r]["round_trips"] for r, _ in ROUTES]
    theirs = [warm["peer"]["routes"][r]["round_trips"] for r, _ in ROUTES]
    ax.bar(
        [i - width / 2 for i in range(len(ROUTES))], mine, width, label="Taskline", color=taskline
    )
    ax.bar(
        [i + width / 2 for i in range(len(ROUTES))], theirs, width, label="FastAPI peer", color=peer
    )
    ax.set_xticks(range(len(ROUTES)), [label.replace(", ", "\n") for _, label in ROUTES])
    ax.set_title("Database round trips per warm request (counted)")
    ax.legend(fontsize=8)

    figure.tight_layout()
    figure.savefig(path, dpi=110)
    plt.close(figure)


def write_reports(results: dict[str, Any], directory: Path) -> str:
    directory.mkdir(parents=True, exist_ok=True)
    table = markdown(results)
    (directory / "results.md").write_text(table)
    (directory / "results.json").write_text(json.dumps(results, indent=1, default=str) + "\n")
    chart(results, directory / "performance.png")
    return table


if __name__ == "__main__":  # re-render the table and chart from a saved results.json
    import sys

    saved = Path(sys.argv[1]) if len(sys.argv) > 1 else Path(__file__).parent / "results"
    print(write_reports(json.loads((saved / "results.json").read_text()), saved))
