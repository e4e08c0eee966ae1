"""SnapStart runtime hooks: registered by every SnapStart function, and correct when called
directly (as the Lambda runtime calls them before a snapshot and after a restore)."""

from __future__ import annotations

import json
import random
import sys
from typing import Any

import pytest
from sqlalchemy import text
from sqlalchemy.pool import QueuePool

from localdev.template import load
from tests.support.processes import run_python


def api_functions() -> list[str]:
    """The functions behind HTTP routes: the ones SnapStart is enabled for (test_template.py)."""
    return sorted(name for name, function in load().functions.items() if function.routes)


def test_every_api_function_registers_its_hooks_on_import() -> None:
    """Imports each function's module in a fresh interpreter and lists what it registered with
    the runtime's hook registry (snapshot_restore_py, as the Lambda Python runtime provides)."""
    script = """
import json, sys
import snapshot_restore_py as registry
from localdev import loader
from localdev.template import load
from taskline import snapstart
template = load()
loader.add_layers(template)
found = {}
for name in sys.argv[1:]:
    registry._before_snapshot_registry.clear()
    registry._after_restore_registry.clear()
    snapstart._registered.clear()
    loader.load_module(template.functions[name])
    names = lambda hooks: [f"{f.__module__}.{f.__name__}" for f, _, _ in hooks]
    found[name] = {
        "before": names(registry._before_snapshot_registry),
        "after": names(registry._after_restore_registry),
    }
print(json.dumps(found))
"""
    functions = api_functions()
    assert functions == [
        "AuthFunction",
        "ListsFunction",
        "MetaFunction",
        "NotificationsFunction",
        "TasksFunction",
    ]
    completed = run_python("-c", script, *functions)
    assert completed.returncode == 0, completed.stderr
    found = json.loads(completed.stdout.strip().splitlines()[-1])

    database_hooks = {
        "before": ["taskline.snapstart.warm_up"],
        "after": ["taskline.snapstart.after_restore"],
    }
    assert found["AuthFunction"] == database_hooks
    assert found["TasksFunction"] == database_hooks
    assert found["NotificationsFunction"] == database_hooks
    assert found["ListsFunction"] == database_hooks
    assert found["MetaFunction"] == {"before": [], "after": ["taskline.snapstart.reseed"]}


def test_outside_lambda_without_the_runtime_library_nothing_is_registered(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    from taskline import snapstart

    monkeypatch.setitem(sys.modules, "snapshot_restore_py", None)  # import now fails
    assert snapstart.register_hooks() is False


def engine_pool() -> QueuePool:
    from taskline.db import get_engine

    pool = get_engine().pool
    assert isinstance(pool, QueuePool)
    return pool


def test_after_restore_drops_pooled_connections_and_the_next_request_reconnects() -> None:
    from taskline.db import transaction
    from taskline.snapstart import after_restore

    with transaction() as session:
        before = session.execute(text("SELECT pg_backend_pid()")).scalar_one()
    assert engine_pool().checkedin() == 1  # the connection a snapshot would freeze

    after_restore()

    assert engine_pool().checkedin() == 0
    with transaction() as session:
        after = session.execute(text("SELECT pg_backend_pid()")).scalar_one()
    assert after != before


def test_after_restore_reseeds_random_so_restored_environments_diverge() -> None:
    from taskline.snapstart import after_restore, reseed

    for hook in (after_restore, reseed):
        random.seed(1234)  # the state every environment restored from one snapshot shares
        shared_state = random.getstate()
        next_in_snapshot = [random.random() for _ in range(4)]
        random.setstate(shared_state)

        hook()

        assert [random.random() for _ in range(4)] != next_in_snapshot


def test_after_restore_forgets_the_secrets_client_and_cached_values(
    monkeypatch: pytest.MonkeyPatch, reload_settings: None
) -> None:
    from moto import mock_aws

    from taskline import secret_store
    from taskline.snapstart import after_restore

    with mock_aws():
        import boto3

        arn = boto3.client("secretsmanager", region_name="us-east-1").create_secret(
            Name="taskline/jwt", SecretString=json.dumps({"current": "k" * 64})
        )["ARN"]
        monkeypatch.delenv("JWT_SECRET")
        monkeypatch.setenv("JWT_SECRET_ARN", arn)
        secret_store.jwt_signing_secrets()
        assert secret_store._provider is not None

        after_restore()

        assert secret_store._provider is None


def test_warm_up_prepares_the_engine_without_connecting_or_reading_secrets(
    monkeypatch: pytest.MonkeyPatch, reload_settings: None
) -> None:
    """Before the snapshot: import and build what a first request needs, but open no
    connection (it would be dead after a restore) and read no secret (it would be frozen)."""
    from taskline import secret_store
    from taskline.db import AWS_CA_BUNDLE, get_engine, ssl_context
    from taskline.snapstart import warm_up

    monkeypatch.delenv("DATABASE_URL")
    monkeypatch.delenv("JWT_SECRET")
    aws_environment: dict[str, Any] = {
        "DB_HOST": "proxy.invalid",  # never resolved: nothing connects
        "DB_SECRET_ARN": "arn:aws:secretsmanager:us-east-1:123456789012:secret:db-AbCdEf",
        "JWT_SECRET_ARN": "arn:aws:secretsmanager:us-east-1:123456789012:secret:jwt-AbCdEf",
        "DB_SSL_MODE": "verify-full",
    }
    for name, value in aws_environment.items():
        monkeypatch.setenv(name, value)
    ssl_context.cache_clear()

    warm_up()

    assert get_engine.cache_info().currsize == 1
    assert engine_pool().checkedin() == 0
    assert engine_pool().checkedout() == 0
    assert ssl_context.cache_info().currsize == 1
    assert ssl_context("verify-full", str(AWS_CA_BUNDLE)) is not None
    assert secret_store._provider is None
    assert "aws_lambda_powertools.utilities.parameters" in sys.modules
    # What a cold start builds on first use is in the snapshot: mappers and schemas.
    from taskline import schemas

    assert schemas.TaskOut.__pydantic_complete__
    assert schemas.TaskCreate.__pydantic_complete__
    assert (
        schemas.TaskOut.model_validate(
            {
                "id": 1,
                "description": "d",
                "category": "c",
                "deadline": "2030-01-01T00:00:00Z",
                "status": "To Do",
                "created_at": "2030-01-01T00:00:00Z",
                "updated_at": "2030-01-01T00:00:00Z",
                "created_by": 1,
            }
        ).id
        == 1
    )
