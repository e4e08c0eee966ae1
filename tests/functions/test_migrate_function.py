"""The MigrationFunction as CloudFormation drives it: Create/Update/Delete events in, one
SUCCESS or FAILED answer out, PUT to a pre-signed URL (here a local HTTP server on loopback).
"""

from __future__ import annotations

import json
import threading
import time
import uuid
from collections.abc import Iterator
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

import pytest
from sqlalchemy import Engine, create_engine, inspect, text

from localdev import database, loader
from localdev.rdsproxy import RdsProxyStandIn, proxied_url
from localdev.template import load

STACK_ID = "arn:aws:cloudformation:us-east-1:123456789012:stack/taskline/0f1e2d3c"


@dataclass
class Answer:
    method: str
    path: str
    headers: dict[str, str]
    body: dict[str, Any]


@dataclass
class FakePresignedUrl:
    """Stands in for the S3 pre-signed URL CloudFormation puts in ResponseURL."""

    answers: list[Answer] = field(default_factory=list)
    fail_first: int = 0  # answer 503 to this many PUTs first (S3 hiccups)
    server: ThreadingHTTPServer | None = None

    @property
    def url(self) -> str:
        assert self.server is not None
        host, port = self.server.server_address[:2]
        return f"http://{host!s}:{port}/cloudformation-response/taskline?X-Amz-Signature=abc%3D"


@pytest.fixture
def presigned() -> Iterator[FakePresignedUrl]:
    fake = FakePresignedUrl()

    class Handler(BaseHTTPRequestHandler):
        def do_PUT(self) -> None:
            length = int(self.headers["Content-Length"])
            raw = self.rfile.read(length)
            if fake.fail_first > 0:
                fake.fail_first -= 1
                self.send_response(503)
                self.end_headers()
                return
            fake.answers.append(
                Answer(
                    "PUT",
                    self.path,
                    {k.lower(): v for k, v in self.headers.items()},
                    json.loads(raw),
                )
            )
            self.send_response(200)
            self.send_header("Content-Length", "0")
            self.end_headers()

        def log_message(self, format: str, *args: object) -> None:  # noqa: A002
            pass

    fake.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    thread = threading.Thread(target=fake.server.serve_forever, daemon=True)
    thread.start()
    yield fake
    fake.server.shutdown()
    fake.server.server_close()


@dataclass
class Context:
    """The Lambda context attributes the handler reads, with a chosen time budget."""

    seconds: float
    function_name: str = "MigrationFunction"
    memory_limit_in_mb: int = 512
    function_version: str = "$LATEST"
    invoked_function_arn: str = "arn:aws:lambda:us-east-1:123456789012:function:migrate"
    aws_request_id: str = field(default_factory=lambda: str(uuid.uuid4()))
    log_group_name: str = "/aws/lambda/taskline/migrate"
    log_stream_name: str = "2030/01/01/[$LATEST]abcdef"

    def __post_init__(self) -> None:
        self._deadline = time.monotonic() + self.seconds

    def get_remaining_time_in_millis(self) -> int:
        return max(0, int((self._deadline - time.monotonic()) * 1000))


def event(request_type: str, url: str, **extra: Any) -> dict[str, Any]:
    body = {
        "RequestType": request_type,
        "ServiceToken": "arn:aws:lambda:us-east-1:123456789012:function:migrate",
        "ResponseURL": url,
        "StackId": STACK_ID,
        "RequestId": str(uuid.uuid4()),
        "LogicalResourceId": "DatabaseMigrations",
        "ResourceType": "Custom::DatabaseMigrations",
        "ResourceProperties": {"MigrationHead": "0001", "LayerVersion": "arn:layer:1"},
    }
    if request_type != "Create":
        body["PhysicalResourceId"] = "taskline-database-migrations"
    body.update(extra)
    return body


@pytest.fixture
def migrate_handler() -> Any:
    """The handler exactly as template.yaml wires it (CodeUri + Handler)."""
    function = load().functions["MigrationFunction"]
    return loader.load_handler(function)


@pytest.fixture
def fresh_database(
    monkeypatch: pytest.MonkeyPatch,
    reload_settings: None,
    database_url: str,
    rds_proxy: RdsProxyStandIn,
) -> Iterator[Engine]:
    """An empty database the migration function points at (DATABASE_URL), as the owner and
    through the strict RDS Proxy stand-in, as in AWS (the master login through RDS Proxy)."""
    from taskline.db import sqlalchemy_url

    server = database_url
    name = f"taskline_migrate_{uuid.uuid4().hex[:8]}"
    url = database.ensure_database(server, name)
    monkeypatch.setenv("DATABASE_URL", proxied_url(url, rds_proxy.port))
    engine = create_engine(sqlalchemy_url(url))
    yield engine
    engine.dispose()
    from tests.support.caches import clear_caches

    clear_caches()
    database.drop_database(server, name)


def revision(engine: Engine) -> str | None:
    if not inspect(engine).has_table("alembic_version"):
        return None
    with engine.connect() as connection:
        return connection.execute(text("SELECT version_num FROM alembic_version")).scalar()


def test_create_migrates_an_empty_database_and_answers_success(
    migrate_handler: Any, fresh_database: Engine, presigned: FakePresignedUrl
) -> None:
    from taskline.migrate import code_head

    request = event("Create", presigned.url)
    migrate_handler(request, Context(60))

    assert revision(fresh_database) == code_head()
    assert {"users", "tasks"} <= set(inspect(fresh_database).get_table_names())
    [answer] = presigned.answers
    assert answer.path == "/cloudformation-response/taskline?X-Amz-Signature=abc%3D"
    assert answer.headers.get("content-type") is None  # the URL is signed without one
    assert answer.body == {
        "Status": "SUCCESS",
        "Reason": f"Database at revision {code_head()}.",
        "PhysicalResourceId": "taskline-database-migrations",
        "StackId": STACK_ID,
        "RequestId": request["RequestId"],
        "LogicalResourceId": "DatabaseMigrations",
        "NoEcho": False,
        "Data": {"Revision": code_head()},
    }


def test_update_is_idempotent_and_keeps_the_data(
    migrate_handler: Any, fresh_database: Engine, presigned: FakePresignedUrl
) -> None:
    migrate_handler(event("Create", presigned.url), Context(60))
    with fresh_database.begin() as connection:
        connection.execute(
            text("INSERT INTO users (email, password_hash) VALUES ('kept@example.com', 'x')")
        )

    migrate_handler(event("Update", presigned.url), Context(60))
    migrate_handler(event("Update", presigned.url), Context(60))

    assert [a.body["Status"] for a in presigned.answers] == ["SUCCESS"] * 3
    assert {a.body["PhysicalResourceId"] for a in presigned.answers} == {
        "taskline-database-migrations"
    }
    with fresh_database.connect() as connection:
        emails = connection.execute(text("SELECT email FROM users")).scalars().all()
    assert emails == ["kept@example.com"]


def test_delete_succeeds_without_touching_the_database(
    migrate_handler: Any,
    presigned: FakePresignedUrl,
    monkeypatch: pytest.MonkeyPatch,
    reload_settings: None,
) -> None:
    # Not even reachable: Delete must neither need nor touch the database.
    monkeypatch.setenv("DATABASE_URL", "postgresql://nobody:secret@127.0.0.1:9/gone")
    request = event("Delete", presigned.url)

    migrate_handler(request, Context(60))

    [answer] = presigned.answers
    assert answer.body["Status"] == "SUCCESS"
    assert answer.body["PhysicalResourceId"] == "taskline-database-migrations"
    assert answer.body["RequestId"] == request["RequestId"]


def test_a_failing_migration_answers_failed_and_changes_nothing(
    migrate_handler: Any, fresh_database: Engine, presigned: FakePresignedUrl
) -> None:
    # A table in the way of the first migration: CREATE TABLE users fails half-way through.
    with fresh_database.begin() as connection:
        connection.execute(text("CREATE TABLE users (id bigint PRIMARY KEY, note text)"))

    migrate_handler(event("Create", presigned.url), Context(60))

    [answer] = presigned.answers
    assert answer.body["Status"] == "FAILED"
    assert "already exists" in answer.body["Reason"]
    assert "[SQL:" not in answer.body["Reason"]
    assert answer.body["PhysicalResourceId"] == "taskline-database-migrations"
    # One transaction: nothing the migration did before failing is left behind.
    assert revision(fresh_database) is None
    assert set(inspect(fresh_database).get_table_names()) == {"users"}
    assert [c["name"] for c in inspect(fresh_database).get_columns("users")] == ["id", "note"]


def test_a_database_ahead_of_the_code_is_left_alone_during_a_rollback(
    migrate_handler: Any, fresh_database: Engine, presigned: FakePresignedUrl
) -> None:
    migrate_handler(event("Create", presigned.url), Context(60))
    with fresh_database.begin() as connection:
        connection.execute(text("UPDATE alembic_version SET version_num = '9999'"))

    migrate_handler(event("Update", presigned.url), Context(60))

    answer = presigned.answers[-1]
    assert answer.body["Status"] == "SUCCESS"
    assert answer.body["Data"] == {"Revision": "9999", "Skipped": "database is ahead of this code"}
    assert revision(fresh_database) == "9999"


def test_migrations_that_cannot_finish_in_time_fail_before_the_function_times_out(
    migrate_handler: Any, fresh_database: Engine, presigned: FakePresignedUrl
) -> None:
    """Another deploy holds the migration lock: the statement timeout, derived from the time
    left, cancels the wait and the function answers FAILED instead of being killed."""
    blocker = fresh_database.connect()
    blocker.execute(text("SELECT pg_advisory_lock(4242001)"))
    try:
        migrate_handler(event("Create", presigned.url), Context(16.5))  # budget ~1.5 s
    finally:
        blocker.execute(text("SELECT pg_advisory_unlock(4242001)"))
        blocker.close()

    [answer] = presigned.answers
    assert answer.body["Status"] == "FAILED"
    assert "statement timeout" in answer.body["Reason"]
    assert revision(fresh_database) is None


def test_the_timeout_guard_answers_once_before_lambda_would_kill_the_function(
    migrate_handler: Any, fresh_database: Engine, presigned: FakePresignedUrl
) -> None:
    blocker = fresh_database.connect()
    blocker.execute(text("SELECT pg_advisory_lock(4242001)"))
    try:
        migrate_handler(event("Create", presigned.url), Context(5.3))  # guard fires at ~0.3 s
    finally:
        blocker.execute(text("SELECT pg_advisory_unlock(4242001)"))
        blocker.close()

    [answer] = presigned.answers  # the handler's own, later FAILED is not sent twice
    assert answer.body["Status"] == "FAILED"
    assert "timeout" in answer.body["Reason"]
    assert revision(fresh_database) is None


def test_a_transient_error_from_s3_is_retried(
    migrate_handler: Any,
    presigned: FakePresignedUrl,
    monkeypatch: pytest.MonkeyPatch,
    reload_settings: None,
) -> None:
    module = loader.load_module(load().functions["MigrationFunction"])
    monkeypatch.setattr(module.time, "sleep", lambda _seconds: None)
    presigned.fail_first = 2

    migrate_handler(event("Delete", presigned.url), Context(60))

    [answer] = presigned.answers
    assert answer.body["Status"] == "SUCCESS"


def test_the_app_role_is_provisioned_from_its_secret(
    migrate_handler: Any,
    fresh_database: Engine,
    presigned: FakePresignedUrl,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    import boto3
    from moto import mock_aws

    role = f"taskline_app_{uuid.uuid4().hex[:6]}"
    with mock_aws():
        secrets = boto3.client("secretsmanager", region_name="us-east-1")
        arn = secrets.create_secret(
            Name="taskline/app-user",
            SecretString=json.dumps({"username": role, "password": "app-Password-0123456789"}),
        )["ARN"]
        monkeypatch.setenv("DB_APP_USER_SECRET_ARN", arn)
        try:
            migrate_handler(event("Create", presigned.url), Context(60))
            with fresh_database.connect() as connection:
                rights = connection.execute(
                    text(
                        "SELECT has_table_privilege(:r, 'tasks', 'INSERT'),"
                        " has_table_privilege(:r, 'alembic_version', 'UPDATE'),"
                        " has_schema_privilege(:r, 'public', 'CREATE')"
                    ),
                    {"r": role},
                ).one()
                # The API functions' statement timeout and UTC, as the role's own defaults.
                defaults = connection.execute(
                    text(
                        "SELECT unnest(setconfig) FROM pg_db_role_setting s"
                        " JOIN pg_roles r ON r.oid = s.setrole WHERE r.rolname = :r"
                    ),
                    {"r": role},
                ).scalars()
                role_defaults = set(defaults)
        finally:
            with fresh_database.begin() as connection:
                connection.exec_driver_sql(f'DROP OWNED BY "{role}"')
                connection.exec_driver_sql(f'DROP ROLE IF EXISTS "{role}"')

    assert presigned.answers[-1].body["Status"] == "SUCCESS"
    assert tuple(rights) == (True, False, False)
    assert role_defaults == {
        "statement_timeout=5000",
        "TimeZone=UTC",
        "idle_session_timeout=60000",  # idle sessions end: the database can pause
    }


def _drop_role(engine: Engine, role: str) -> None:
    with engine.begin() as connection:
        connection.exec_driver_sql(f'DROP OWNED BY "{role}"')
        connection.exec_driver_sql(f'DROP ROLE IF EXISTS "{role}"')


def _missing_rights(engine: Engine, role: str) -> list[str]:
    """What the app role lacks on the tables (but alembic_version) and sequences there are."""
    tables = set(inspect(engine).get_table_names()) - {"alembic_version"}
    missing: list[str] = []
    with engine.connect() as connection:
        for table in sorted(tables):
            for right in ("SELECT", "INSERT", "UPDATE", "DELETE"):
                allowed = connection.execute(
                    text("SELECT has_table_privilege(:r, :t, :p)"),
                    {"r": role, "t": table, "p": right},
                ).scalar_one()
                if not allowed:
                    missing.append(f"{right} on {table}")
        sequences = connection.execute(
            text("SELECT sequencename FROM pg_sequences WHERE schemaname = 'public'")
        ).scalars()
        for sequence in sequences:
            allowed = connection.execute(
                text("SELECT has_sequence_privilege(:r, :s, 'USAGE')"),
                {"r": role, "s": sequence},
            ).scalar_one()
            if not allowed:
                missing.append(f"USAGE on {sequence}")
    return missing


def test_tables_of_later_migrations_are_granted_to_the_app_role(
    fresh_database: Engine,
) -> None:
    """A role provisioned at 0001 can use the tables later migrations create (sessions, refresh
    tokens, login throttles, task notifications, idempotency keys) through default privileges,
    before the migration function provisions it again."""
    from taskline.migrate import code_head, provision_app_role, upgrade
    from taskline.models import Base

    role = f"taskline_app_{uuid.uuid4().hex[:6]}"
    upgrade(fresh_database, "0001")
    provision_app_role(fresh_database, role, "app-Password-0123456789")
    try:
        assert _missing_rights(fresh_database, role) == []
        upgrade(fresh_database, "head")
        assert revision(fresh_database) == code_head() != "0001"
        tables = set(inspect(fresh_database).get_table_names())
        assert {table.name for table in Base.metadata.sorted_tables} <= tables
        assert {
            "auth_sessions",
            "refresh_tokens",
            "login_throttles",
            "task_notifications",
            "idempotency_keys",
        } <= tables
        assert _missing_rights(fresh_database, role) == []
        with fresh_database.connect() as connection:
            writes_version = connection.execute(
                text("SELECT has_table_privilege(:r, 'alembic_version', 'UPDATE')"), {"r": role}
            ).scalar_one()
        assert writes_version is False
    finally:
        _drop_role(fresh_database, role)


def test_a_new_due_soon_window_moves_the_reminders_still_to_come(
    migrate_handler: Any, fresh_database: Engine, presigned: FakePresignedUrl
) -> None:
    """Issue 20: DueSoonWindowMinutes is a property of the custom resource, so changing it
    re-runs the function, which re-plans the reminders planned with the old window."""
    migrate_handler(event("Create", presigned.url), Context(60))
    with fresh_database.begin() as connection:
        ann, ben = (
            connection.execute(
                text("INSERT INTO users (email, password_hash) VALUES (:e, 'x') RETURNING id"),
                {"e": email},
            ).scalar_one()
            for email in ("ann@example.com", "ben@example.com")
        )
        # ben chose his own lead time: his tasks are not the default's.
        connection.execute(
            text(
                "INSERT INTO notification_preferences (user_id, email_enabled, due_soon_enabled,"
                " overdue_enabled, due_soon_minutes) VALUES (:u, true, true, true, 30)"
            ),
            {"u": ben},
        )
        rows = {
            "default": (ann, None, "To Do"),
            "own": (ann, 120, "To Do"),
            "done": (ann, None, "Done"),
            "sent": (ann, None, "To Do"),
            "bens": (ben, None, "To Do"),
        }
        ids = {}
        for name, (owner, remind, status) in rows.items():
            ids[name] = connection.execute(
                text(
                    "INSERT INTO tasks (user_id, description, category, deadline, status,"
                    " remind_before, due_soon_at, overdue_at) VALUES (:u, :n, 'c',"
                    " now() + interval '3 days', :s, :r, now() + interval '2 days',"
                    " now() + interval '3 days') RETURNING id"
                ),
                {"u": owner, "n": name, "s": status, "r": remind},
            ).scalar_one()
        connection.execute(
            text(
                "INSERT INTO task_notifications (task_id, stage, deadline)"
                " SELECT id, 'due_soon', deadline FROM tasks WHERE id = :t"
            ),
            {"t": ids["sent"]},
        )

    def lead_times() -> dict[str, float | None]:
        with fresh_database.connect() as connection:
            found = connection.execute(
                text(
                    "SELECT description, extract(epoch FROM deadline - due_soon_at) / 60 FROM tasks"
                )
            ).all()
        return {name: None if lead is None else round(float(lead)) for name, lead in found}

    before = lead_times()
    unchanged = {"DueSoonWindowMinutes": "1440"}
    same = event(
        "Update",
        presigned.url,
        ResourceProperties={**unchanged, "MigrationHead": "0001"},
        OldResourceProperties=unchanged,
    )
    migrate_handler(same, Context(60))
    assert lead_times() == before
    assert "RemindersReplanned" not in presigned.answers[-1].body["Data"]

    changed = event(
        "Update",
        presigned.url,
        ResourceProperties={"DueSoonWindowMinutes": "60", "MigrationHead": "0001"},
        OldResourceProperties=unchanged,
    )
    migrate_handler(changed, Context(60))

    answer = presigned.answers[-1].body
    assert answer["Status"] == "SUCCESS", answer
    assert answer["Data"]["RemindersReplanned"] == 2  # ann's default task and ben's (his 30)
    after = lead_times()
    assert after["default"] == 60
    assert after["bens"] == 30  # his own preference now applies (it was planned without it)
    assert {name: after[name] for name in ("own", "done", "sent")} == {
        name: before[name] for name in ("own", "done", "sent")
    }
