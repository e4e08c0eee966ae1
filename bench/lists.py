"""Benchmark of GET /tasks and GET /tasks/{id} with shared lists (issue 20), on 1,000,000 tasks.

    python bench/lists.py [--tasks 1000000] [--runs 200] [--keep]

Seeds a separate database (`taskline_bench_lists`, dropped and recreated) on the local PostgreSQL
(embedded, or the server of DATABASE_URL) with SQL set operations:

- account 1 ("lists"): a member (editor) of 20 lists of 500 tasks each, plus 1,000 personal
  tasks (11,000 tasks visible; a third of the lists' tasks assigned to it);
- account 2 ("personal"): 11,000 personal tasks, in no list;
- the rest of `--tasks`: 2,000 other lists of 200 tasks each (their owners are background
  accounts) and personal tasks of 10,000 background accounts.

Then, in this process, through the service functions the handlers call (task_service.list_page,
task_service.get) on the layer's own engine:

1. EXPLAIN (ANALYZE, BUFFERS) of the statements those calls send (captured at the driver), for
   page 1 and page 100 of each account, GET and PATCH of a list task (the write rolled back);
   fails on a sequential scan of `tasks`;
2. statements sent per call (must be 1: one round trip; a PATCH adds only BEGIN and COMMIT);
3. p50 / p90 of page 1 and page 100 (50 tasks a page) of each account, the calls interleaved
   (lists, personal, lists, ...) so both see the same machine load; and of GET /tasks/{id} for a
   list task and a personal one.

Plans and figures are printed (and written to bench/results/lists-i20.txt with --record).
Nothing here is collected by pytest.
"""

from __future__ import annotations

import argparse
import os
import statistics
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
sys.path[:0] = [str(ROOT / "shared"), str(ROOT)]

from sqlalchemy import Engine, create_engine, event, text  # noqa: E402

from localdev import database  # noqa: E402

BENCH_DATABASE = "taskline_bench_lists"
USERS = 10_000
LISTS_OF_ACCOUNT = 20
TASKS_PER_LIST = 500
PERSONAL_OF_LISTS_ACCOUNT = 1_000
OTHER_LISTS = 2_000
TASKS_PER_OTHER_LIST = 200
PAGE = 50
RESULTS = ROOT / "bench" / "results" / "lists-i20.txt"

SEED_SQL = """
INSERT INTO users (id, email, password_hash)
OVERRIDING SYSTEM VALUE
SELECT u, 'bench-' || u || '@example.com', 'not-a-real-hash'
FROM generate_series(1, :users) AS u;

-- Lists 1-20 are account 1's (owned by accounts 3-22); lists 21-2020 are others' (owners
-- 23-2022), each with one more member.
INSERT INTO lists (id, name, owner_id)
OVERRIDING SYSTEM VALUE
SELECT l, 'List ' || l, l + 2 FROM generate_series(1, :lists + :other_lists) AS l;

INSERT INTO list_members (list_id, user_id, role)
SELECT l, l + 2, 'owner' FROM generate_series(1, :lists + :other_lists) AS l
UNION ALL
SELECT l, 1, 'editor' FROM generate_series(1, :lists) AS l
UNION ALL
SELECT l, 3000 + l, 'viewer' FROM generate_series(:lists + 1, :lists + :other_lists) AS l;

-- Account 1's lists: 500 tasks each, a third assigned to it, a third to the list's owner.
INSERT INTO tasks (user_id, list_id, description, category, deadline, status,
                   created_by, assignee_id, recipient_id, due_soon_at, overdue_at)
SELECT NULL, l, 'List task ' || l || '/' || i, 'work', d, 'To Do', l + 2,
       CASE mod(i, 3) WHEN 0 THEN 1 WHEN 1 THEN l + 2 END,
       CASE mod(i, 3) WHEN 0 THEN 1 ELSE l + 2 END,
       d - interval '1 day', d
FROM generate_series(1, :lists) AS l, generate_series(1, :per_list) AS i,
     LATERAL (SELECT now() + (random() * 730 - 365) * interval '1 day' AS d) AS x;

-- Account 1's personal tasks, and account 2's: as many as account 1 sees in all.
INSERT INTO tasks (user_id, description, category, deadline, status, created_by,
                   due_soon_at, overdue_at)
SELECT u, 'Personal ' || i, 'home', d, 'To Do', u, d - interval '1 day', d
FROM (SELECT 1 AS u, n FROM generate_series(1, :personal) AS n
      UNION ALL
      SELECT 2, n FROM generate_series(1, :personal + :lists * :per_list) AS n) AS p(u, i),
     LATERAL (SELECT now() + (random() * 730 - 365) * interval '1 day' AS d) AS x;

-- Other lists' tasks.
INSERT INTO tasks (user_id, list_id, description, category, deadline, status,
                   created_by, assignee_id, recipient_id, due_soon_at, overdue_at)
SELECT NULL, l, 'Other list task', 'work', d,
       CASE WHEN mod(i, 10) = 0 THEN 'To Do' ELSE 'Done' END, l + 2,
       CASE WHEN mod(i, 2) = 0 THEN 3000 + l END,
       CASE WHEN mod(i, 2) = 0 THEN 3000 + l ELSE l + 2 END,
       d - interval '1 day', d
FROM generate_series(:lists + 1, :lists + :other_lists) AS l,
     generate_series(1, :per_other_list) AS i,
     LATERAL (SELECT now() + (random() * 730 - 365) * interval '1 day' AS d) AS x;

-- Background accounts' personal tasks, up to the total.
INSERT INTO tasks (user_id, description, category, deadline, status, created_by,
                   due_soon_at, overdue_at)
SELECT u, 'Background task', 'errands', d,
       CASE WHEN mod(i, 10) = 0 THEN 'To Do' ELSE 'Done' END, u, d - interval '1 day', d
FROM generate_series(1, greatest(:tasks - (SELECT count(*) FROM tasks), 0)) AS i,
     LATERAL (SELECT 3 + mod(i, :users - 2) AS u,
                     now() + (random() * 730 - 365) * interval '1 day' AS d) AS x
"""


def bench_engine(server: str) -> Engine:
    database.drop_database(server, BENCH_DATABASE)
    url = database.ensure_database(server, BENCH_DATABASE)
    os.environ.update(
        {
            "DATABASE_URL": url,
            "JWT_SECRET": "bench-" + "x" * 40,
            "DB_SSL_MODE": "disable",
            "POWERTOOLS_METRICS_DISABLED": "true",
            "POWERTOOLS_LOG_LEVEL": "WARNING",
        }
    )
    from taskline.db import get_engine, sqlalchemy_url
    from taskline.migrate import upgrade
    from taskline.settings import get_settings

    get_settings.cache_clear()
    get_engine.cache_clear()
    engine = create_engine(sqlalchemy_url(url))
    upgrade(engine)
    return engine


def seed(engine: Engine, tasks: int) -> float:
    started = time.perf_counter()
    values = {
        "users": USERS,
        "lists": LISTS_OF_ACCOUNT,
        "other_lists": OTHER_LISTS,
        "per_list": TASKS_PER_LIST,
        "per_other_list": TASKS_PER_OTHER_LIST,
        "personal": PERSONAL_OF_LISTS_ACCOUNT,
        "tasks": tasks,
    }
    with engine.begin() as connection:
        connection.exec_driver_sql("SELECT setseed(0.42)")
        # Integers of this script only, written into the SQL: pg8000 sends parameters untyped,
        # and `unknown + unknown` has no operator.
        seed_sql = SEED_SQL
        for name in sorted(values, key=len, reverse=True):
            seed_sql = seed_sql.replace(f":{name}", str(int(values[name])))
        for statement in seed_sql.split(";\n\n"):
            connection.exec_driver_sql(statement)
        for table in ("users", "lists", "tasks"):
            connection.exec_driver_sql(
                f"SELECT setval(pg_get_serial_sequence('{table}', 'id'), "
                f"(SELECT max(id) FROM {table}))"
            )
    with engine.connect().execution_options(isolation_level="AUTOCOMMIT") as connection:
        for table in ("users", "lists", "list_members", "tasks"):
            connection.exec_driver_sql(f"VACUUM ANALYZE {table}")
    return time.perf_counter() - started


class Statements:
    """Every statement the layer's engine sends, with its parameters (one per round trip)."""

    def __init__(self, engine: Engine) -> None:
        self.sent: list[tuple[str, Any]] = []
        event.listen(engine, "before_cursor_execute", self._record)

    def _record(self, _conn: Any, _cursor: Any, statement: str, parameters: Any, *_: Any) -> None:
        self.sent.append((statement, parameters))

    def during(self, call: Callable[[], Any]) -> list[tuple[str, Any]]:
        self.sent.clear()
        call()
        return list(self.sent)


def explain(engine: Engine, statement: str, parameters: Any) -> str:
    """EXPLAIN (ANALYZE, BUFFERS) of the statement as sent, rolled back (writes too)."""
    with engine.connect() as connection, connection.begin() as transaction:
        rows = connection.exec_driver_sql(
            "EXPLAIN (ANALYZE, BUFFERS) " + statement, parameters
        ).all()
        transaction.rollback()
    return "\n".join(row[0] for row in rows)


def percentile(values: list[float], fraction: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(fraction * len(ordered)))]


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--tasks", type=int, default=1_000_000)
    parser.add_argument("--runs", type=int, default=200)
    parser.add_argument("--keep", action="store_true", help=f"keep the {BENCH_DATABASE} database")
    parser.add_argument("--record", action="store_true", help=f"write {RESULTS.name}")
    args = parser.parse_args()

    server = database.server_url()
    engine = bench_engine(server)
    out: list[str] = []

    def say(line: str = "") -> None:
        print(line, flush=True)
        out.append(line)

    seconds = seed(engine, args.tasks)
    with engine.connect() as connection:
        total, in_lists = connection.execute(
            text("SELECT count(*), count(list_id) FROM tasks")
        ).one()
    say(
        f"seeded {total:,} tasks ({in_lists:,} in {LISTS_OF_ACCOUNT + OTHER_LISTS:,} lists) in "
        f"{seconds:.1f} s; account 1: {LISTS_OF_ACCOUNT} lists x {TASKS_PER_LIST} + "
        f"{PERSONAL_OF_LISTS_ACCOUNT:,} personal; account 2: "
        f"{LISTS_OF_ACCOUNT * TASKS_PER_LIST + PERSONAL_OF_LISTS_ACCOUNT:,} personal"
    )

    from taskline.db import get_engine
    from taskline.domain import TaskFilters
    from taskline.services import task_service

    statements = Statements(get_engine())
    no_filters = TaskFilters()

    def cursor_of_page(user: int, page: int) -> str | None:
        cursor = None
        for _ in range(page - 1):
            cursor = task_service.list_page(user, no_filters, PAGE, cursor).next_cursor
        return cursor

    with engine.connect() as connection:
        list_task = connection.execute(
            text("SELECT id FROM tasks WHERE list_id = 7 ORDER BY id LIMIT 1")
        ).scalar_one()
        personal_task = connection.execute(
            text("SELECT id FROM tasks WHERE user_id = 2 ORDER BY id LIMIT 1")
        ).scalar_one()
    calls: dict[str, Callable[[], Any]] = {}
    for user, name in ((1, "lists"), (2, "personal")):
        for page in (1, 100):
            cursor = cursor_of_page(user, page)
            calls[f"GET /tasks page {page}, {name} account"] = lambda user=user, cursor=cursor: (
                task_service.list_page(user, no_filters, PAGE, cursor)
            )
    calls["GET /tasks/{id}, a list task (member)"] = lambda: task_service.get(1, list_task)
    calls["GET /tasks/{id}, a personal task"] = lambda: task_service.get(2, personal_task)

    from taskline.schemas import TaskPatch

    writes: dict[str, Callable[[], Any]] = {
        # The write's statement carries the access check, the member-row lock and the version;
        # a transaction adds BEGIN and COMMIT around it.
        "PATCH /tasks/{id}, a list task (editor)": lambda: task_service.update(
            1, list_task, TaskPatch(description="Renamed")
        ),
    }
    failed = False
    say()
    for label, call in {**calls, **writes}.items():
        sent = statements.during(call)
        work = [entry for entry in sent if entry[0] not in ("BEGIN", "COMMIT")]
        say(f"{label}: {len(sent)} statement(s) sent, {len(work)} besides BEGIN/COMMIT")
        failed |= len(work) != 1
        plan = explain(engine, *work[-1])
        say(f"EXPLAIN (ANALYZE, BUFFERS) of {label}:")
        say("  " + plan.replace("\n", "\n  "))
        if "Seq Scan on tasks" in plan:
            say("FAIL: a sequential scan of tasks")
            failed = True
        say()

    timings: dict[str, list[float]] = {label: [] for label in calls}
    for _ in range(20):  # warm-up
        for call in calls.values():
            call()
    for _ in range(args.runs):
        for label, call in calls.items():  # interleaved: every call sees the same load
            started = time.perf_counter()
            call()
            timings[label].append(time.perf_counter() - started)
    say(f"service-level timings, {args.runs} interleaved runs each (ms):")
    for label, values in timings.items():
        say(
            f"  {label}: p50 {statistics.median(values) * 1000:.2f}, "
            f"p90 {percentile(values, 0.9) * 1000:.2f}"
        )
    for page in (1, 100):
        ratio = statistics.median(timings[f"GET /tasks page {page}, lists account"]) / (
            statistics.median(timings[f"GET /tasks page {page}, personal account"])
        )
        verdict = "OK" if ratio <= 1.5 else "OVER TARGET"
        say(
            f"page {page}: lists account p50 / personal-only p50 = {ratio:.2f} "
            f"(target <= 1.5) {verdict}"
        )

    get_engine().dispose()
    engine.dispose()
    if not args.keep:
        database.drop_database(server, BENCH_DATABASE)
    if args.record:
        RESULTS.write_text("\n".join(out) + "\n")
    return 1 if failed else 0


if __name__ == "__main__":
    raise SystemExit(main())
