"""The bench's database, data, tokens and events: the same for Taskline and the FastAPI peer."""

from __future__ import annotations

import os
import uuid
from dataclasses import dataclass
from typing import Any

from sqlalchemy import Engine, create_engine, text

from localdev import database
from localdev.events import http_api_event
from localdev.template import Template

BENCH_DATABASE = "taskline_bench"
JWT_SECRET = "bench-signing-key-" + "b" * 32
PASSWORD = "correct horse battery staple"
PAGE_SIZE = 50  # the list endpoints' default page size, on both sides
DEEP_PAGE = 1000


@dataclass(frozen=True)
class Data:
    url: str  # libpq-style, what Taskline's DATABASE_URL takes
    sqlalchemy_url: str  # postgresql+pg8000://..., what the peer's DATABASE_URL takes
    connect: dict[str, Any]  # pg8000.native.Connection arguments, for the floor
    big_user: int
    writer: int
    task_id: int
    big_tasks: int
    page_1000_after: tuple[Any, int]  # (deadline, id) of the last task of page 999
    password_hash: str  # every bench account's, bcrypt at the bench's cost
    sessions: dict[int, uuid.UUID]  # a live sign-in session of big_user and writer (`sid`)


def prepare(big_tasks: int, other_users: int, tasks_each: int, bcrypt_rounds: int) -> Data:
    """A fresh `taskline_bench` database, migrated and seeded with generate_series."""
    import bcrypt

    from taskline.db import sqlalchemy_url
    from taskline.migrate import upgrade

    server = database.server_url()
    database.drop_database(server, BENCH_DATABASE)
    url = database.ensure_database(server, BENCH_DATABASE)
    admin = create_engine(sqlalchemy_url(server), isolation_level="AUTOCOMMIT")
    with admin.connect() as connection:
        # Commits wait for no disk flush here: the machine's disk (shared with other work) is
        # not what is measured, and both sides commit the same way.
        connection.exec_driver_sql(f"ALTER DATABASE {BENCH_DATABASE} SET synchronous_commit = off")
    admin.dispose()
    engine = create_engine(sqlalchemy_url(url))
    upgrade(engine)
    password_hash = bcrypt.hashpw(PASSWORD.encode(), bcrypt.gensalt(bcrypt_rounds)).decode()
    with engine.begin() as connection:
        users = connection.execute(
            text(
                "INSERT INTO users (email, password_hash) "
                "SELECT 'bench-' || n || '@example.com', :hash FROM generate_series(1, :n) n "
                "RETURNING id"
            ),
            {"hash": password_hash, "n": other_users + 2},
        ).scalars()
        big_user, writer, *others = sorted(users)
        # Three tasks per deadline, so the keyset's id tie-break is exercised.
        connection.execute(
            text(
                "INSERT INTO tasks (user_id, description, category, deadline, status) "
                "SELECT :user, 'Task number ' || n || ' of the big account', "
                "       (ARRAY['work','home','errands'])[1 + mod(n, 3)], "
                "       timestamptz '2030-01-01 00:00:00+00' + (n / 3) * interval '1 hour', "
                "       (ARRAY['To Do','In Progress','Done'])[1 + mod(n, 3)] "
                "FROM generate_series(1, :n) n"
            ),
            {"user": big_user, "n": big_tasks},
        )
        connection.execute(
            text(
                "INSERT INTO tasks (user_id, description, category, deadline) "
                "SELECT u, 'Someone else''s task ' || n, 'work', "
                "       timestamptz '2030-01-01 00:00:00+00' + n * interval '1 hour' "
                "FROM unnest(CAST(:users AS bigint[])) u, generate_series(1, :n) n"
            ),
            {"users": others, "n": tasks_each},
        )
        task_id = connection.execute(
            text("SELECT id FROM tasks WHERE user_id = :u ORDER BY id OFFSET :k LIMIT 1"),
            {"u": big_user, "k": big_tasks // 2},
        ).scalar_one()
        deadline, last_id = connection.execute(
            text(
                "SELECT deadline, id FROM tasks WHERE user_id = :u "
                "ORDER BY deadline, id OFFSET :k LIMIT 1"
            ),
            {"u": big_user, "k": (DEEP_PAGE - 1) * PAGE_SIZE - 1},
        ).one()
        # Access tokens name a sign-in session (`sid`); GET /users/me checks it is live.
        sessions = {user: uuid.uuid4() for user in (big_user, writer)}
        for user, session_id in sessions.items():
            connection.execute(
                text(
                    "INSERT INTO auth_sessions (id, user_id, created_at, expires_at) "
                    "VALUES (:id, :user, now(), now() + interval '1 day')"
                ),
                {"id": session_id, "user": user},
            )
    with engine.connect().execution_options(isolation_level="AUTOCOMMIT") as connection:
        connection.exec_driver_sql("VACUUM ANALYZE users, tasks, auth_sessions")
    pg_url = sqlalchemy_url(url)
    engine.dispose()
    query = dict(pg_url.query)
    connect: dict[str, Any] = {"user": pg_url.username, "database": pg_url.database}
    if pg_url.password:
        connect["password"] = pg_url.password
    if "unix_sock" in query:
        connect["unix_sock"] = query["unix_sock"]
    else:
        connect.update(host=pg_url.host or "localhost", port=pg_url.port or 5432)
    return Data(
        url=url,
        sqlalchemy_url=pg_url.render_as_string(hide_password=False),
        connect=connect,
        big_user=big_user,
        writer=writer,
        task_id=task_id,
        big_tasks=big_tasks,
        page_1000_after=(deadline, last_id),
        password_hash=password_hash,
        sessions=sessions,
    )


def admin_engine(data: Data) -> Engine:
    from taskline.db import sqlalchemy_url

    return create_engine(sqlalchemy_url(data.url))


def token_for(data: Data, user_id: int) -> str:
    """An access token of the user's bench session, valid for the whole run (the caller sets
    ACCESS_TOKEN_TTL_SECONDS: the default 15 minutes could run out during `make bench`)."""
    from taskline.security.tokens import issue_access_token

    return issue_access_token(user_id, data.sessions[user_id]).token


def events(template: Template, data: Data) -> dict[str, dict[str, Any]]:
    """The HTTP API 2.0 events API Gateway would send; the peer gets the very same ones."""
    from taskline.domain import TaskFilters
    from taskline.pagination import encode_cursor
    from taskline.services.task_service import listing_scope

    routes = {route.route_key: route for route, _ in template.routes()}
    reader = [("Authorization", f"Bearer {token_for(data, data.big_user)}")]
    writer = [("Authorization", f"Bearer {token_for(data, data.writer)}")]
    json_type = [("Content-Type", "application/json")]
    body = (
        b'{"description": "Benchmark task", "category": "bench",'
        b' "deadline": "2031-06-01T12:00:00Z", "status": "In Progress"}'
    )
    # Cursors are signed for their user and filters (an unfiltered list of the reader's).
    cursor = encode_cursor(*data.page_1000_after, listing_scope(data.big_user, TaskFilters()))
    skip = (DEEP_PAGE - 1) * PAGE_SIZE

    def event(key: str, path: str, query: str = "", headers: Any = (), payload: bytes = b""):
        route = routes[key]
        parameters = route.match(route.method, path)
        return http_api_event(
            method=route.method,
            path=path,
            raw_query=query,
            headers=[("User-Agent", "taskline-bench"), *headers],
            body=payload,
            route=route,
            path_parameters=parameters or None,
            domain_name="api.example.com",
        )

    form = f"grant_type=password&username=bench-1%40example.com&password={PASSWORD}"
    return {
        "get": event("GET /tasks/{task_id}", f"/tasks/{data.task_id}", headers=reader),
        "list_p1": event("GET /tasks", "/tasks", headers=reader),
        "list_p1000": event("GET /tasks", "/tasks", f"cursor={cursor}", headers=reader),
        "peer_list_p1000": event("GET /tasks", "/tasks", f"skip={skip}", headers=reader),
        "create": event("POST /tasks", "/tasks", headers=[*writer, *json_type], payload=body),
        "me": event("GET /users/me", "/users/me", headers=reader),
        "token": event(
            "POST /token",
            "/token",
            headers=[("Content-Type", "application/x-www-form-urlencoded")],
            payload=form.replace(" ", "+").encode(),
        ),
    }


def bench_environment() -> dict[str, str]:
    """What every child process starts with, besides its function's own variables."""
    return {
        "PATH": os.environ.get("PATH", "/usr/bin:/bin"),
        "LANG": "C.UTF-8",
        "TZ": "UTC",
        "AWS_REGION": "us-east-1",
        "AWS_DEFAULT_REGION": "us-east-1",
    }
