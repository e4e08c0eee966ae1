"""Benchmark of the deadline check on 1,000,000 tasks (`make bench-deadlines`).

    python bench/deadlines.py [--tasks 1000000] [--due 10000] [--keep]

Seeds a separate database (`taskline_bench`, dropped and recreated) on the local PostgreSQL
(embedded, or the server of DATABASE_URL) with SQL set operations (generate_series), 10% of the
tasks open, of which `--due` are in the due range (overdue within the lookback or due within
23 h) and the rest far from now; Done tasks are spread over the same range, inside the window
too. A third of the tasks are in shared lists (issue 20: one list per account, with another
account as editor; a list task reminds its recipient, here the list's owner as assignee or
creator). Preferences and per-task reminders are populated (issue 15): a fifth of the
accounts have a 2-hour lead time, one in twenty has overdue notifications off, another one in
twenty due-soon reminders off, one in ten email off, and every seventh task has its own
60-minute reminder; the tasks' stored due times are written as the API writes them (a sample
is checked against the API's own expression). Then:

1. EXPLAIN (ANALYZE, BUFFERS) of the selection query of each stage; fails unless each reads its
   partial index (`ix_tasks_open_overdue_at`, `ix_tasks_open_due_soon_at`) and never scans
   `tasks` sequentially;
2. the selection queries' time (median and max of repeated runs, each rolled back);
3. one full run of the deadline check over the due tasks, SNS stubbed at the boto3 level (a
   real boto3 client whose PublishBatch HTTP call is answered by a `before-call` hook), then a
   second run that finds nothing new (the steady state every 15 minutes).

Timings are printed; nothing here is collected by pytest.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import sys
import time
import uuid
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
sys.path[:0] = [str(ROOT / "shared"), str(ROOT)]

from sqlalchemy import Engine, create_engine, text  # noqa: E402

from localdev import database  # noqa: E402

BENCH_DATABASE = "taskline_bench"
USERS = 10_000
SELECTION_RUNS = 25

SEED_SQL = """
INSERT INTO users (id, email, password_hash)
OVERRIDING SYSTEM VALUE
SELECT u, 'bench-' || u || '@example.com', 'not-a-real-hash'
FROM generate_series(1, :users) AS u;

-- Preferences, chosen by u / 10: the owners of open tasks are the users 1 + 10k.
INSERT INTO notification_preferences
    (user_id, email_enabled, due_soon_enabled, overdue_enabled, due_soon_minutes)
SELECT u, mod(u / 10, 10) <> 3, mod(u / 10, 20) <> 2, mod(u / 10, 20) <> 1,
       CASE WHEN mod(u / 10, 5) = 0 THEN 120 ELSE 1440 END
FROM generate_series(1, :users) AS u;

-- Shared lists (issue 20): one per account, owned by it, with the next account as an editor.
INSERT INTO lists (id, name, owner_id)
OVERRIDING SYSTEM VALUE
SELECT u, 'List ' || u, u FROM generate_series(1, :users) AS u;

INSERT INTO list_members (list_id, user_id, role)
SELECT u, u, 'owner' FROM generate_series(1, :users) AS u
UNION ALL
SELECT u, 1 + mod(u, :users), 'editor' FROM generate_series(1, :users) AS u;

-- Every 10th task is open (To Do / In Progress); the rest are Done.
-- Every 3rd task is in its account's list instead of personal, reminding that account (its
-- recipient): assigned to it (every 6th) or unassigned with it as the creator.
-- Open task number j = i / 10: the first `due` of them are due now (overdue by up to 6 days,
-- or due within 23 hours); the others are far off (2 to 365 days ahead, 8 to 365 days late).
-- Done tasks are spread over -365 to +365 days, so many sit inside the window too.
INSERT INTO tasks
    (id, user_id, list_id, created_by, assignee_id, recipient_id,
     description, category, deadline, status, remind_before, due_soon_at, overdue_at)
OVERRIDING SYSTEM VALUE
SELECT
    t.i,
    CASE WHEN mod(t.i, 3) <> 0 THEN t.u END,
    CASE WHEN mod(t.i, 3) = 0 THEN t.u END,
    t.u,
    CASE WHEN mod(t.i, 6) = 0 THEN t.u END,
    CASE WHEN mod(t.i, 3) = 0 THEN t.u END,
    'Benchmark task ' || t.i,
    (ARRAY['work', 'home', 'errands', 'health'])[1 + mod(t.i, 4)],
    t.deadline, t.status, t.remind_before,
    -- As the API writes them (repositories.task_repository.schedule), for the preferences above.
    CASE WHEN t.remind_before IS NOT NULL OR mod(t.u / 10, 20) <> 2
         THEN t.deadline
              - COALESCE(t.remind_before, CASE WHEN mod(t.u / 10, 5) = 0 THEN 120 ELSE 1440 END)
              * interval '1 minute' END,
    CASE WHEN mod(t.u / 10, 20) <> 1 THEN t.deadline END
FROM (
    SELECT
        i,
        1 + mod(i, p.users) AS u,
        CASE
            WHEN mod(i, 10) <> 0 THEN p.now - interval '365 days' + random() * interval '730 days'
            WHEN i / 10 <= p.due THEN p.now - interval '6 days' + (i / 10) * p.due_step
            WHEN mod(i / 10, 2) = 0 THEN p.now + interval '2 days' + random() * interval '363 days'
            ELSE p.now - interval '8 days' - random() * interval '357 days'
        END AS deadline,
        CASE
            WHEN mod(i, 10) <> 0 THEN 'Done'
            WHEN mod(i, 20) = 0 THEN 'In Progress'
            ELSE 'To Do'
        END AS status,
        CASE WHEN mod(i, 7) = 0 THEN 60 END AS remind_before
    FROM
        (
            SELECT
                CAST(:now AS timestamptz) AS now,
                CAST(:users AS integer) AS users,
                CAST(:due AS integer) AS due,
                interval '6 days 23 hours' / CAST(:due AS integer) AS due_step
        ) AS p,
        generate_series(1, :tasks) AS i
) AS t;
"""

# What the run must send, from the seed's rules alone (not the stored due times).
EXPECTED_SQL = """
SELECT
    count(*) FILTER (WHERE deadline <= p.now AND deadline > p.now - interval '7 days'
                     AND mod(r / 10, 20) <> 1),
    count(*) FILTER (WHERE deadline > p.now
                     AND deadline - COALESCE(remind_before,
                         CASE WHEN mod(r / 10, 5) = 0 THEN 120 ELSE 1440 END)
                         * interval '1 minute' <= p.now
                     AND (remind_before IS NOT NULL OR mod(r / 10, 20) <> 2))
FROM (SELECT *, COALESCE(recipient_id, user_id) AS r FROM tasks) AS tasks,
     (SELECT CAST(:now AS timestamptz) AS now) AS p
WHERE status <> 'Done'
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
            "AWS_DEFAULT_REGION": "us-east-1",
            "AWS_ACCESS_KEY_ID": "bench",
            "AWS_SECRET_ACCESS_KEY": "bench",
        }
    )
    os.environ.pop("NOTIFICATIONS_TOPIC_ARN", None)
    os.environ.pop("NOTIFICATION_EMAIL_SENDER", None)
    from taskline.db import get_engine, sqlalchemy_url
    from taskline.migrate import upgrade
    from taskline.settings import get_settings

    get_settings.cache_clear()
    get_engine.cache_clear()
    engine = create_engine(sqlalchemy_url(url))
    upgrade(engine)
    return engine


def seed(engine: Engine, tasks: int, due: int, now: datetime) -> float:
    started = time.perf_counter()
    with engine.begin() as connection:
        connection.exec_driver_sql("SELECT setseed(0.42)")
        for statement in SEED_SQL.split(";\n\n"):
            connection.execute(
                text(statement), {"users": USERS, "tasks": tasks, "due": due, "now": now}
            )
        connection.exec_driver_sql(
            "SELECT setval(pg_get_serial_sequence('users', 'id'), (SELECT max(id) FROM users))"
        )
        connection.exec_driver_sql(
            "SELECT setval(pg_get_serial_sequence('tasks', 'id'), (SELECT max(id) FROM tasks))"
        )
        connection.exec_driver_sql(
            "SELECT setval(pg_get_serial_sequence('lists', 'id'), (SELECT max(id) FROM lists))"
        )
    with engine.connect().execution_options(isolation_level="AUTOCOMMIT") as connection:
        connection.exec_driver_sql("VACUUM ANALYZE users")
        connection.exec_driver_sql("VACUUM ANALYZE tasks")
        connection.exec_driver_sql("VACUUM ANALYZE list_members")
    return time.perf_counter() - started


STAGES = ("overdue", "due_soon")
STAGE_INDEX = {"overdue": "ix_tasks_open_overdue_at", "due_soon": "ix_tasks_open_due_soon_at"}


def check_stored_schedule(engine: Engine) -> int:
    """Tasks (a 1% sample) whose stored due times differ from what the API's own expression
    (repositories.task_repository.schedule) computes for them: must be 0."""
    from sqlalchemy import func, or_, select

    from taskline.models import Task
    from taskline.repositories.task_repository import schedule
    from taskline.settings import get_settings

    planned = schedule(
        func.coalesce(Task.recipient_id, Task.user_id),
        Task.deadline,
        Task.remind_before,
        get_settings().deadline_due_soon_minutes,
    )
    statement = select(func.count()).where(
        Task.id % 100 == 0,
        or_(
            Task.due_soon_at.is_distinct_from(planned["due_soon_at"]),
            Task.overdue_at.is_distinct_from(planned["overdue_at"]),
        ),
    )
    with engine.connect() as connection:
        return int(connection.execute(statement).scalar_one())


def selection_sql(engine: Engine, now: datetime, stage: str) -> tuple[str, tuple[Any, ...]]:
    """The service's own selection statement, compiled for the driver, with its parameters."""
    from taskline.domain import NotificationStage
    from taskline.repositories.deadline_notification_repository import select_due
    from taskline.services.deadline_service import due_window
    from taskline.settings import get_settings

    settings = get_settings()
    statement = select_due(
        due_window(now, settings), NotificationStage(stage), None, settings.deadline_batch_size
    )
    compiled = statement.compile(dialect=engine.dialect)
    parameters = compiled.construct_params()
    return str(compiled), tuple(parameters[name] for name in compiled.positiontup or ())


def explain(engine: Engine, now: datetime, stage: str) -> str:
    sql, parameters = selection_sql(engine, now, stage)
    with engine.connect() as connection:
        rows = connection.exec_driver_sql("EXPLAIN (ANALYZE, BUFFERS) " + sql, parameters).scalars()
        plan = "\n".join(rows)
        connection.rollback()  # FOR UPDATE took row locks
    return plan


def time_selection(engine: Engine, now: datetime, stage: str) -> list[float]:
    sql, parameters = selection_sql(engine, now, stage)
    timings = []
    with engine.connect() as connection:
        for _ in range(SELECTION_RUNS):
            started = time.perf_counter()
            connection.exec_driver_sql(sql, parameters).all()
            timings.append(time.perf_counter() - started)
            connection.rollback()
    return timings


def stubbed_sns_client() -> tuple[Any, list[int]]:
    """A real boto3 SNS client: parameters are validated and serialised as usual, but each
    PublishBatch is answered by a `before-call` hook instead of AWS (every entry succeeds)."""
    import boto3
    from botocore.awsrequest import AWSResponse

    client = boto3.client("sns", region_name="us-east-1")
    calls: list[int] = []

    def answer(params: dict[str, Any], **_: Any) -> tuple[AWSResponse, dict[str, Any]]:
        body = params["body"]
        if isinstance(body, dict):  # query protocol: form fields
            ids = [v for k, v in body.items() if k.endswith(".Id")]
        else:  # JSON protocol
            ids = [e["Id"] for e in json.loads(body)["PublishBatchRequestEntries"]]
        calls.append(len(ids))
        parsed = {
            "Successful": [{"Id": i, "MessageId": str(uuid.uuid4())} for i in ids],
            "Failed": [],
            "ResponseMetadata": {"HTTPStatusCode": 200},
        }
        return AWSResponse(params["url"], 200, {}, None), parsed

    client.meta.events.register("before-call.sns.PublishBatch", answer)
    return client, calls


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--tasks", type=int, default=1_000_000)
    parser.add_argument("--due", type=int, default=10_000)
    parser.add_argument("--keep", action="store_true", help=f"keep the {BENCH_DATABASE} database")
    args = parser.parse_args()
    if args.due > args.tasks // 10:
        parser.error("--due must be at most a tenth of --tasks (the open ones)")

    server = database.server_url()
    engine = bench_engine(server)
    now = datetime.now(UTC).replace(microsecond=0)
    print(f"database: {BENCH_DATABASE} on {server.split('@')[-1]}")
    seconds = seed(engine, args.tasks, args.due, now)
    with engine.connect() as connection:
        counts = connection.execute(
            text(
                "SELECT count(*), count(*) FILTER (WHERE status <> 'Done'), "
                "count(*) FILTER (WHERE remind_before IS NOT NULL AND status <> 'Done'), "
                "pg_size_pretty(pg_relation_size('ix_tasks_open_overdue_at')), "
                "pg_size_pretty(pg_relation_size('ix_tasks_open_due_soon_at')), "
                "pg_size_pretty(pg_relation_size('tasks')) FROM tasks"
            )
        ).one()
        expected_overdue, expected_due_soon = connection.execute(
            text(EXPECTED_SQL), {"now": now}
        ).one()
    print(
        f"seeded {counts[0]:,} tasks ({counts[1]:,} open, {counts[2]:,} of them with their own "
        f"reminder; {args.due:,} in the due range) and {USERS:,} accounts' preferences in "
        f"{seconds:.1f} s; table {counts[5]}, partial indexes {counts[3]} (overdue_at) and "
        f"{counts[4]} (due_soon_at)"
    )
    print(
        f"due under the preferences and reminders: {expected_overdue:,} overdue, "
        f"{expected_due_soon:,} due soon"
    )
    mismatched = check_stored_schedule(engine)
    print(f"stored due times differing from the API's expression (1% sample): {mismatched}")
    if mismatched:
        print("FAIL: the seed's due times are not what the API would store")
        return 1

    for stage in STAGES:
        plan = explain(engine, now, stage)
        print(f"\nEXPLAIN (ANALYZE, BUFFERS) of the {stage} selection (first batch):")
        print("  " + plan.replace("\n", "\n  "))
        if STAGE_INDEX[stage] not in plan or "Seq Scan on tasks" in plan:
            print(
                f"FAIL: the {stage} selection does not use the partial index {STAGE_INDEX[stage]}"
            )
            return 1
        print(f"OK: the {stage} selection reads the partial index {STAGE_INDEX[stage]}")

    print()
    for stage in STAGES:
        timings = time_selection(engine, now, stage)
        print(
            f"{stage} selection (batch of 100, nothing notified yet), {SELECTION_RUNS} runs: "
            f"median {statistics.median(timings) * 1000:.2f} ms, max {max(timings) * 1000:.2f} ms"
        )

    from taskline.notifications import SnsPublisher
    from taskline.services.deadline_service import check_deadlines

    client, calls = stubbed_sns_client()
    publisher = SnsPublisher("arn:aws:sns:us-east-1:123456789012:taskline-bench", client=client)
    started = time.perf_counter()
    summary = check_deadlines(now=now, publisher=publisher)
    elapsed = time.perf_counter() - started
    sent = summary.due_soon + summary.overdue
    print(
        f"\nfull run: {sent:,} notifications ({summary.due_soon:,} due soon, "
        f"{summary.overdue:,} overdue, {summary.failed} failed) in {summary.batches} batches, "
        f"{len(calls)} PublishBatch calls, {elapsed:.2f} s ({sent / elapsed:,.0f}/s)"
    )
    if (summary.overdue, summary.due_soon) != (expected_overdue, expected_due_soon):
        print("FAIL: the run did not send what the preferences and reminders make due")
        return 1
    if summary.failed:
        print("FAIL: some publishes failed")
        return 1

    for stage in STAGES:
        timings = time_selection(engine, now, stage)
        print(
            f"{stage} selection after the run (everything due already notified): "
            f"median {statistics.median(timings) * 1000:.2f} ms, max {max(timings) * 1000:.2f} ms"
        )
    started = time.perf_counter()
    again = check_deadlines(now=now, publisher=publisher)
    elapsed = time.perf_counter() - started
    print(
        f"second run at the same time (steady state, nothing new): "
        f"{again.due_soon + again.overdue} notifications, {again.batches} batches, "
        f"{elapsed * 1000:.0f} ms"
    )
    if again.due_soon + again.overdue:
        print("FAIL: the second run sent notifications again")
        return 1

    from taskline.db import get_engine

    get_engine().dispose()
    engine.dispose()
    if not args.keep:
        database.drop_database(server, BENCH_DATABASE)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
