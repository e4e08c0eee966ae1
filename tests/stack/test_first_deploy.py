"""The first deploy as CloudFormation runs it: the migration custom resource meets an RDS Proxy
whose target is still registering (CloudFormation's DBProxyTargetGroup reports success before
the target is available), migration steps slower than the API functions' socket timeout, and
the deletion protection that is switched on only after a successful create."""

from __future__ import annotations

import time
import uuid
from collections.abc import Iterator
from typing import Any

import boto3
import pytest
from moto import mock_aws
from sqlalchemy import Engine, create_engine, text

from localdev import database, loader
from localdev.rdsproxy import RdsProxyStandIn, Registering, proxied_url, upstream_for
from localdev.template import load
from tests.functions.test_migrate_function import (
    Context,
    FakePresignedUrl,
    event,
    presigned,  # noqa: F401  (a fixture)
    revision,
)

REGISTERING_SECONDS = 3.0


@pytest.fixture
def migrate_module() -> Any:
    return loader.load_module(load().functions["MigrationFunction"])


@pytest.fixture
def empty_database(database_url: str) -> Iterator[str]:
    name = f"taskline_first_{uuid.uuid4().hex[:8]}"
    url = database.ensure_database(database_url, name)
    yield url
    from tests.support.caches import clear_caches

    clear_caches()
    database.drop_database(database_url, name)


def through(
    monkeypatch: pytest.MonkeyPatch, url: str, proxy: RdsProxyStandIn, **settings: str
) -> None:
    """Point the migration function at `url` through `proxy`, with short API timeouts (the
    function's probe uses them; a hanging connection is given up after about 2 s)."""
    from tests.support.caches import clear_caches

    monkeypatch.setenv("DATABASE_URL", proxied_url(url, proxy.port))
    monkeypatch.setenv("DB_CONNECT_TIMEOUT_SECONDS", "1")
    monkeypatch.setenv("DB_STATEMENT_TIMEOUT_MS", "1000")
    for name, setting in settings.items():
        monkeypatch.setenv(name, setting)
    clear_caches()


def direct(url: str) -> Engine:
    from taskline.db import sqlalchemy_url

    return create_engine(sqlalchemy_url(url))


@pytest.mark.parametrize("behaviour", ["refuse", "hang", "login"])
def test_the_first_migration_waits_for_the_proxy_target_to_become_available(
    migrate_module: Any,
    empty_database: str,
    presigned: FakePresignedUrl,  # noqa: F811
    monkeypatch: pytest.MonkeyPatch,
    behaviour: Registering,
) -> None:
    from taskline.migrate import code_head

    with RdsProxyStandIn(
        upstream_for(empty_database),
        registering_seconds=REGISTERING_SECONDS,
        registering=behaviour,
    ) as proxy:
        through(monkeypatch, empty_database, proxy)
        started = time.monotonic()
        migrate_module.lambda_handler(event("Create", presigned.url), Context(60))
        waited = time.monotonic() - started

        [answer] = presigned.answers
        assert answer.body["Status"] == "SUCCESS", answer.body["Reason"]
        assert waited >= REGISTERING_SECONDS - 0.5
        turned_away = [s for s in proxy.sessions if s.refused and "registering" in s.refused]
        assert turned_away, "the stand-in never turned a connection away"
    engine = direct(empty_database)
    assert revision(engine) == code_head()
    engine.dispose()


def test_an_update_does_not_wait_out_a_login_error(
    migrate_module: Any,
    empty_database: str,
    presigned: FakePresignedUrl,  # noqa: F811
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """Only a first deploy meets a proxy whose target registers: on Update, a login error is
    a real one (a wrong password), answered at once rather than after minutes."""
    with RdsProxyStandIn(
        upstream_for(empty_database), registering_seconds=30, registering="login"
    ) as proxy:
        through(monkeypatch, empty_database, proxy)
        started = time.monotonic()
        migrate_module.lambda_handler(event("Update", presigned.url), Context(60))

    [answer] = presigned.answers
    assert answer.body["Status"] == "FAILED"
    assert "28000" in answer.body["Reason"]
    assert time.monotonic() - started < 10


def test_the_first_migration_gives_up_at_its_deadline_with_the_last_error(
    migrate_module: Any,
    empty_database: str,
    presigned: FakePresignedUrl,  # noqa: F811
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    with RdsProxyStandIn(
        upstream_for(empty_database), registering_seconds=120, registering="login"
    ) as proxy:
        through(monkeypatch, empty_database, proxy)
        started = time.monotonic()
        migrate_module.lambda_handler(event("Create", presigned.url), Context(19))

    [answer] = presigned.answers
    assert answer.body["Status"] == "FAILED"
    assert "28000" in answer.body["Reason"]
    assert time.monotonic() - started < 19


def test_a_migration_step_slower_than_the_api_socket_timeout_completes(
    migrate_module: Any,
    empty_database: str,
    presigned: FakePresignedUrl,  # noqa: F811
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """The API functions' socket timeout here is 1 s + 1 s (in AWS 3 s + 5 s); a migration
    step of 3 s (a DDL on a big table, a backfill, a lock wait) must still complete, bounded
    by the migration's own statement timeout and MIGRATION_SOCKET_TIMEOUT_SECONDS."""
    from taskline.migrate import code_head

    real_upgrade = migrate_module.upgrade

    def slow_upgrade(engine: Engine, *args: Any, **kwargs: Any) -> None:
        with engine.begin() as connection:
            connection.execute(text("SELECT pg_sleep(3)"))
        real_upgrade(engine, *args, **kwargs)

    monkeypatch.setattr(migrate_module, "upgrade", slow_upgrade)
    with RdsProxyStandIn(upstream_for(empty_database)) as proxy:
        through(
            monkeypatch,
            empty_database,
            proxy,
            MIGRATION_STATEMENT_TIMEOUT_MS="10000",
            MIGRATION_SOCKET_TIMEOUT_SECONDS="12",
        )
        migrate_module.lambda_handler(event("Create", presigned.url), Context(60))

    [answer] = presigned.answers
    assert answer.body["Status"] == "SUCCESS", answer.body["Reason"]
    engine = direct(empty_database)
    assert revision(engine) == code_head()
    engine.dispose()


# --- DatabaseProtection ------------------------------------------------------------------------

INSTANCE = "taskline-0f1e2d3c-4b5a-6978-8796-a5b4c3d2e1f0"


@pytest.fixture
def rds_instance(monkeypatch: pytest.MonkeyPatch) -> Iterator[Any]:
    monkeypatch.setenv("AWS_DEFAULT_REGION", "us-east-1")
    monkeypatch.setenv("AWS_ACCESS_KEY_ID", "testing")
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", "testing")
    with mock_aws():
        client = boto3.client("rds", region_name="us-east-1")
        client.create_db_instance(
            DBInstanceIdentifier=INSTANCE,
            DBInstanceClass="db.t4g.micro",
            Engine="postgres",
            AllocatedStorage=20,
            MasterUsername="taskline_admin",
            MasterUserPassword="not-a-real-password",
            DeletionProtection=False,
        )
        yield client


def protected(client: Any) -> bool:
    [instance] = client.describe_db_instances(DBInstanceIdentifier=INSTANCE)["DBInstances"]
    return bool(instance["DeletionProtection"])


def protection_event(request: str, url: str, wanted: str = "true") -> dict[str, Any]:
    request_event = event(
        request,
        url,
        LogicalResourceId="DatabaseProtection",
        ResourceType="Custom::DatabaseProtection",
        ResourceProperties={"DBInstanceIdentifier": INSTANCE, "DeletionProtection": wanted},
    )
    if request != "Create":  # the id the Create answered with
        request_event["PhysicalResourceId"] = "taskline-database-protection"
    return request_event


def test_protection_is_switched_on_after_the_create_and_follows_the_parameter(
    migrate_module: Any,
    rds_instance: Any,
    presigned: FakePresignedUrl,  # noqa: F811
) -> None:
    migrate_module.protection_handler(protection_event("Create", presigned.url), Context(60))
    assert protected(rds_instance)
    migrate_module.protection_handler(
        protection_event("Update", presigned.url, "false"), Context(60)
    )
    assert not protected(rds_instance)
    assert [a.body["Status"] for a in presigned.answers] == ["SUCCESS", "SUCCESS"]
    assert {a.body["PhysicalResourceId"] for a in presigned.answers} == {
        "taskline-database-protection"
    }


@pytest.mark.parametrize(
    ("stack_status", "still_protected"),
    [
        ("ROLLBACK_IN_PROGRESS", False),  # a failed create: the rollback must delete it
        ("DELETE_IN_PROGRESS", True),  # a stack deletion: protection does its job
        ("UPDATE_ROLLBACK_COMPLETE_CLEANUP_IN_PROGRESS", True),
    ],
)
def test_protection_is_cleared_only_for_the_rollback_of_a_failed_create(
    migrate_module: Any,
    rds_instance: Any,
    presigned: FakePresignedUrl,  # noqa: F811
    monkeypatch: pytest.MonkeyPatch,
    stack_status: str,
    still_protected: bool,
) -> None:
    rds_instance.modify_db_instance(DBInstanceIdentifier=INSTANCE, DeletionProtection=True)
    # moto cannot put a stack in these states; the status is what DescribeStacks would say.
    monkeypatch.setattr(migrate_module, "stack_status", lambda _stack_id: stack_status)

    migrate_module.protection_handler(protection_event("Delete", presigned.url), Context(60))

    [answer] = presigned.answers
    assert answer.body["Status"] == "SUCCESS"
    assert protected(rds_instance) is still_protected


CLUSTER = "taskline-0f1e2d3c-4b5a-6978-8796-a5b4c3d2e1f0"


def test_the_starter_clusters_protection_follows_the_same_rules(
    migrate_module: Any,
    rds_instance: Any,
    presigned: FakePresignedUrl,  # noqa: F811
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """The starter profile's Aurora cluster: protection on after the create, off only for the
    rollback of a failed create."""
    rds_instance.create_db_cluster(
        DBClusterIdentifier=CLUSTER,
        Engine="aurora-postgresql",
        MasterUsername="taskline_admin",
        MasterUserPassword="not-a-real-password",
        DeletionProtection=False,
    )

    def cluster_protected() -> bool:
        [cluster] = rds_instance.describe_db_clusters(DBClusterIdentifier=CLUSTER)["DBClusters"]
        return bool(cluster["DeletionProtection"])

    def cluster_event(request: str) -> dict[str, Any]:
        request_event = protection_event(request, presigned.url)
        request_event["ResourceProperties"] = {
            "DBClusterIdentifier": CLUSTER,
            "DeletionProtection": "true",
        }
        return request_event

    migrate_module.protection_handler(cluster_event("Create"), Context(60))
    assert cluster_protected()
    assert not protected(rds_instance)  # the instance of the other profiles is not touched

    monkeypatch.setattr(migrate_module, "stack_status", lambda _stack_id: "ROLLBACK_IN_PROGRESS")
    migrate_module.protection_handler(cluster_event("Delete"), Context(60))
    assert not cluster_protected()
    assert [a.body["Status"] for a in presigned.answers] == ["SUCCESS", "SUCCESS"]


def test_starter_lets_the_app_role_log_in_with_iam_tokens(
    migrate_module: Any,
    empty_database: str,
    presigned: FakePresignedUrl,  # noqa: F811
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """DB_APP_IAM_USER (the starter profile, as the template sets it): the app role is created
    with no password and joins rds_iam, Aurora's role for IAM auth tokens (created here, as
    Aurora has it); no app-user secret is needed."""
    role = f"taskline_app_{uuid.uuid4().hex[:6]}"
    engine = direct(empty_database)
    with engine.begin() as connection:
        exists = connection.execute(
            text("SELECT 1 FROM pg_roles WHERE rolname = 'rds_iam'")
        ).scalar()
        if not exists:
            connection.exec_driver_sql("CREATE ROLE rds_iam NOLOGIN")
    try:
        with mock_aws(), RdsProxyStandIn(upstream_for(empty_database)) as proxy:
            through(
                monkeypatch,
                empty_database,
                proxy,
                DB_APP_USER_SECRET_ARN="",
                DB_APP_IAM_USER=role,
                AWS_DEFAULT_REGION="us-east-1",
            )
            migrate_module.lambda_handler(event("Create", presigned.url), Context(60))
        with engine.connect() as connection:
            member, password = connection.execute(
                text(
                    "SELECT pg_has_role(:r, 'rds_iam', 'MEMBER'), rolpassword IS NULL"
                    " FROM pg_authid WHERE rolname = :r"
                ),
                {"r": role},
            ).one()
    finally:
        with engine.begin() as connection:
            connection.exec_driver_sql(f'DROP OWNED BY "{role}"')
            connection.exec_driver_sql(f'DROP ROLE IF EXISTS "{role}"')
        engine.dispose()
    assert presigned.answers[-1].body["Status"] == "SUCCESS", presigned.answers[-1].body
    assert member is True
    assert password is True  # a token is the only way in
