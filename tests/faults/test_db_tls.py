"""The database path as in AWS: TLS to RDS Proxy (a local stand-in), credentials from Secrets
Manager (moto), the server certificate verified against the configured CA, one SSL context.
"""

from __future__ import annotations

import json
import ssl
from collections.abc import Iterator
from typing import Any

import pg8000.dbapi
import pytest
from moto import mock_aws
from sqlalchemy import create_engine, event, text

from taskline.services import deadline_service
from tests.support.api import ApiClient
from tests.support.tls_postgres import CertificateAuthority, TlsPostgres

APP_ROLE = "taskline_app_tls"
APP_PASSWORD = "first-Password-0123456789abcdef"


def _causes(error: BaseException) -> Iterator[BaseException]:
    seen: BaseException | None = error
    while seen is not None:
        yield seen
        seen = seen.__cause__ or seen.__context__


@pytest.fixture(scope="module")
def app_role(tls_server: TlsPostgres) -> str:
    """The data-only role the API functions use, as the migration function provisions it."""
    from taskline.db import sqlalchemy_url
    from taskline.migrate import provision_app_role

    engine = create_engine(sqlalchemy_url(tls_server.superuser_url("taskline")))
    provision_app_role(engine, APP_ROLE, APP_PASSWORD, statement_timeout_ms=5000)
    engine.dispose()
    return APP_ROLE


@pytest.fixture
def secretsmanager() -> Iterator[Any]:
    import boto3

    with mock_aws():
        yield boto3.client("secretsmanager", region_name="us-east-1")


@pytest.fixture
def aws_database(
    tls_server: TlsPostgres,
    app_role: str,
    secretsmanager: Any,
    monkeypatch: pytest.MonkeyPatch,
    reload_settings: None,
) -> dict[str, Any]:
    """Environment as template.yaml sets it: DB_HOST + DB_SECRET_ARN, TLS verify-full."""
    secret = secretsmanager.create_secret(
        Name="taskline/app-db",
        SecretString=json.dumps({"username": app_role, "password": APP_PASSWORD}),
    )
    monkeypatch.delenv("DATABASE_URL")
    for name, value in {
        "DB_HOST": "localhost",
        "DB_PORT": str(tls_server.port),
        "DB_NAME": "taskline",
        "DB_SECRET_ARN": secret["ARN"],
        "DB_SSL_MODE": "verify-full",
        "DB_SSL_ROOT_CERT": str(tls_server.ca_file),
    }.items():
        monkeypatch.setenv(name, value)
    return {"secret_arn": secret["ARN"], "server": tls_server}


def secret_reads() -> list[str]:
    from taskline import secret_store

    calls: list[str] = []
    client = secret_store._secrets_provider().client
    client.meta.events.register(
        "provide-client-params.secrets-manager.GetSecretValue",
        lambda params, **_: calls.append(params["SecretId"]),
    )
    return calls


def test_requests_run_over_verified_tls_as_the_data_only_role(
    client: ApiClient, aws_database: dict[str, Any]
) -> None:
    from taskline.db import transaction

    server: TlsPostgres = aws_database["server"]
    sessions_before = len(server.proxy.sessions)
    user = ApiClient(client.gateway, client.login(client.sign_up()))
    created = user.post(
        "/tasks",
        json_body={
            "description": "over TLS",
            "category": "ops",
            "deadline": "2031-01-01T00:00:00Z",
        },
    )
    assert created.status == 201

    with transaction() as session:
        who = session.execute(text("SELECT current_user")).scalar_one()
        # The role's defaults, as the migration function provisions them: no startup option.
        timeout = session.execute(text("SHOW statement_timeout")).scalar_one()
    assert who == APP_ROLE
    assert timeout == "5s"
    used = server.proxy.sessions[sessions_before:]
    assert used
    assert all(s.tls_version in ("TLSv1.2", "TLSv1.3") for s in used)
    assert [(s.refused, s.pins) for s in used] == [(None, [])] * len(used)


def test_a_certificate_from_another_ca_is_refused_with_503(
    client: ApiClient,
    aws_database: dict[str, Any],
    monkeypatch: pytest.MonkeyPatch,
    tmp_path: Any,
) -> None:
    from taskline.db import transaction
    from taskline.errors import DatabaseUnavailable

    impostor = tmp_path / "other-ca.pem"
    impostor.write_bytes(CertificateAuthority.create("Some Other CA").pem())
    monkeypatch.setenv("DB_SSL_ROOT_CERT", str(impostor))

    response = client.post(
        "/users", json_body={"email": "tls@example.com", "password": "correct horse battery"}
    )
    assert response.status == 503
    assert response.json()["type"] == "urn:taskline:problem:database-unavailable"

    with pytest.raises(DatabaseUnavailable) as raised, transaction() as session:
        session.execute(text("SELECT 1"))
    verify_errors = [
        e for e in _causes(raised.value) if isinstance(e, ssl.SSLCertVerificationError)
    ]
    assert verify_errors
    assert "unable to get local issuer certificate" in str(verify_errors[0])


def test_verify_full_checks_the_host_name_and_require_does_not(
    aws_database: dict[str, Any], monkeypatch: pytest.MonkeyPatch
) -> None:
    from taskline.db import close_connections, transaction
    from taskline.errors import DatabaseUnavailable
    from taskline.settings import get_settings

    monkeypatch.setenv("DB_HOST", "127.0.0.1")  # the certificate names only `localhost`
    with pytest.raises(DatabaseUnavailable) as raised, transaction() as session:
        session.execute(text("SELECT 1"))
    mismatch = [e for e in _causes(raised.value) if isinstance(e, ssl.SSLCertVerificationError)]
    assert mismatch
    assert "mismatch" in str(mismatch[0]).lower() or "not valid for" in str(mismatch[0])

    # require: encrypted, peer not verified (libpq semantics), so the same address works.
    close_connections()
    from taskline.db import get_engine

    get_settings.cache_clear()
    get_engine.cache_clear()
    monkeypatch.setenv("DB_SSL_MODE", "require")
    with transaction() as session:
        assert session.execute(text("SELECT 1")).scalar_one() == 1


def test_the_shipped_aws_bundle_is_the_only_trust_anchor_by_default(
    aws_database: dict[str, Any], monkeypatch: pytest.MonkeyPatch
) -> None:
    """In AWS mode without DB_SSL_ROOT_CERT, only the shipped AWS CA bundle is trusted: a server
    with any other CA (here the test CA, as for any certificate outside AWS) is refused."""
    from taskline.db import AWS_CA_BUNDLE, root_cert, ssl_context, transaction
    from taskline.errors import DatabaseUnavailable
    from taskline.settings import get_settings

    monkeypatch.delenv("DB_SSL_ROOT_CERT")
    settings = get_settings()
    assert root_cert(settings) == str(AWS_CA_BUNDLE)
    context = ssl_context(settings.db_ssl_mode, root_cert(settings))
    assert context is not None
    assert context.verify_mode == ssl.CERT_REQUIRED
    assert context.check_hostname
    assert context.cert_store_stats()["x509_ca"] == AWS_CA_BUNDLE.read_text().count("BEGIN CERT")

    with pytest.raises(DatabaseUnavailable), transaction() as session:
        session.execute(text("SELECT 1"))


def test_every_connection_shares_one_ssl_context(aws_database: dict[str, Any]) -> None:
    from taskline.db import build_engine
    from taskline.settings import get_settings

    contexts: list[int] = []
    engines = [build_engine(get_settings()) for _ in range(2)]
    for engine in engines:
        # The TLS socket of every new connection, and the context that wrapped it.
        event.listen(
            engine,
            "connect",
            lambda dbapi_connection, _record: contexts.append(id(dbapi_connection._usock.context)),
        )
        for _ in range(2):
            with engine.connect() as connection:
                connection.execute(text("SELECT 1"))
            engine.dispose()  # the next checkout opens a new connection
    assert len(contexts) == 4
    assert len(set(contexts)) == 1


def test_a_rotated_database_password_is_picked_up(
    client: ApiClient,
    aws_database: dict[str, Any],
    secretsmanager: Any,
) -> None:
    """RDS rotates the password; the cached secret goes stale; the next connection refused with
    the old password reads the secret again and succeeds."""
    from taskline.db import close_connections, sqlalchemy_url, transaction

    server: TlsPostgres = aws_database["server"]
    admin = create_engine(sqlalchemy_url(server.superuser_url("taskline")))
    reads = secret_reads()
    with transaction() as session:
        session.execute(text("SELECT 1"))
    assert len(reads) == 1
    new_password = "rotated-Password-abcdef0123456789"
    try:
        with admin.begin() as connection:
            connection.exec_driver_sql(f"ALTER ROLE {APP_ROLE} PASSWORD '{new_password}'")
        secretsmanager.put_secret_value(
            SecretId=aws_database["secret_arn"],
            SecretString=json.dumps({"username": APP_ROLE, "password": new_password}),
        )
        close_connections()  # as after a restore, or when the proxy closes an idle client

        with transaction() as session:
            assert session.execute(text("SELECT current_user")).scalar_one() == APP_ROLE
        assert len(reads) == 2  # the refused cached password caused exactly one re-read
    finally:
        with admin.begin() as connection:
            connection.exec_driver_sql(f"ALTER ROLE {APP_ROLE} PASSWORD '{APP_PASSWORD}'")
        admin.dispose()


def test_a_wrong_password_is_retried_once_then_fails_without_leaking(
    client: ApiClient,
    aws_database: dict[str, Any],
    secretsmanager: Any,
    caplog: pytest.LogCaptureFixture,
) -> None:
    """A login the server refuses is a configuration error: one re-read of the secret (it may
    have rotated), then a 500 the error alarms count, and a log line that says so."""
    secretsmanager.put_secret_value(
        SecretId=aws_database["secret_arn"],
        SecretString=json.dumps({"username": APP_ROLE, "password": "not-the-password"}),
    )
    reads = secret_reads()

    response = client.post(
        "/users", json_body={"email": "wrong@example.com", "password": "correct horse battery"}
    )

    assert response.status == 500
    assert "password" not in response.body.decode().lower()
    assert len(reads) == 2
    refusals = [r for r in caplog.records if "refused the connection" in r.getMessage()]
    assert refusals
    assert {r.__dict__.get("sqlstate") for r in refusals} == {"28P01"}


def test_the_stand_in_refuses_plaintext_like_rds_proxy(tls_server: TlsPostgres) -> None:
    with pytest.raises(pg8000.dbapi.DatabaseError) as refused:
        pg8000.dbapi.connect(
            user=APP_ROLE,
            password=APP_PASSWORD,
            host="localhost",
            port=tls_server.port,
            database="taskline",
            ssl_context=False,
        )
    assert refused.value.args[0]["C"] == "28000"


def test_the_data_only_role_can_use_rows_but_not_change_the_schema(
    tls_server: TlsPostgres, app_role: str
) -> None:
    context = ssl.create_default_context(cafile=str(tls_server.ca_file))
    connection = pg8000.dbapi.connect(
        user=app_role,
        password=APP_PASSWORD,
        host="localhost",
        port=tls_server.port,
        database="taskline",
        ssl_context=context,
    )
    try:
        cursor = connection.cursor()
        cursor.execute("SELECT count(*) FROM users")
        cursor.execute("SELECT version_num FROM alembic_version")
        connection.rollback()
        for statement in (
            "CREATE TABLE intruder (id int)",
            "DROP TABLE tasks",
            "UPDATE alembic_version SET version_num = 'x'",
            "TRUNCATE users",
        ):
            with pytest.raises(pg8000.dbapi.DatabaseError) as denied:
                cursor.execute(statement)
            assert denied.value.args[0]["C"] == "42501", statement  # insufficient_privilege
            connection.rollback()
    finally:
        connection.close()


def test_provisioning_the_role_is_idempotent_and_updates_its_password(
    tls_server: TlsPostgres, app_role: str
) -> None:
    from taskline.db import sqlalchemy_url
    from taskline.migrate import provision_app_role

    admin = create_engine(sqlalchemy_url(tls_server.superuser_url("taskline")))
    context = ssl.create_default_context(cafile=str(tls_server.ca_file))
    try:
        provision_app_role(admin, app_role, "second-Password-0123456789")
        provision_app_role(admin, app_role, "second-Password-0123456789")
        connection = pg8000.dbapi.connect(
            user=app_role,
            password="second-Password-0123456789",
            host="localhost",
            port=tls_server.port,
            database="taskline",
            ssl_context=context,
        )
        connection.close()
        with admin.connect() as check:
            stored = check.execute(
                text("SELECT rolpassword FROM pg_authid WHERE rolname = :r"), {"r": app_role}
            ).scalar_one()
        assert stored.startswith("SCRAM-SHA-256$4096:")
    finally:
        provision_app_role(admin, app_role, APP_PASSWORD)
        admin.dispose()


@pytest.mark.parametrize("name", ["Robert'); DROP TABLE users;--", "UPPER", "", "a" * 64])
def test_role_names_must_be_plain_identifiers(name: str) -> None:
    from taskline.migrate import provision_app_role

    never_connected = create_engine("postgresql+pg8000://nobody@127.0.0.1:9/none")
    with pytest.raises(ValueError, match="identifier"):
        provision_app_role(never_connected, name, "whatever-password")


def test_account_security_and_deadline_checks_work_as_the_data_only_role(
    client: ApiClient, aws_database: dict[str, Any]
) -> None:
    """Everything the later migrations added (sessions, refresh tokens, login throttles, task
    notifications) is usable by the role the migration function provisions, over TLS."""
    from datetime import UTC, datetime, timedelta

    from taskline.db import transaction

    old, new = "correct horse battery", "a brand new passphrase"
    email = client.sign_up(password=old)
    other_device = client.login_pair(email, old)
    refreshed = client.refresh(client.login_pair(email, old)["refresh_token"])
    assert refreshed.status == 200, refreshed.body  # rotation: UPDATE + INSERT refresh_tokens
    me = ApiClient(client.gateway, refreshed.json()["access_token"])
    assert me.get("/users/me").status == 200  # the session check reads auth_sessions

    # The deadline check claims task_notifications rows (FOR UPDATE SKIP LOCKED, INSERT).
    due = (datetime.now(UTC) + timedelta(hours=1)).isoformat().replace("+00:00", "Z")
    task = me.post("/tasks", json_body={"description": "d", "category": "c", "deadline": due})
    assert task.status == 201, task.body
    first = deadline_service.check_deadlines()
    assert (first.due_soon, first.overdue, first.failed) == (1, 0, 0)
    assert deadline_service.check_deadlines().due_soon == 0

    # Password change ends the other sessions (DELETE auth_sessions, cascading to tokens).
    changed = me.put("/users/me/password", json_body={"current_password": old, "new_password": new})
    assert changed.status == 204, changed.body
    assert client.refresh(other_device["refresh_token"]).status == 400
    # RFC 7009 revocation, then logout everywhere.
    spare = client.login_pair(email, new)
    assert client.post("/token/revoke", json_body={"token": spare["refresh_token"]}).status == 200
    assert client.refresh(spare["refresh_token"]).status == 400
    assert me.post("/users/me/logout-all").status == 204
    assert me.get("/users/me").status == 401

    # Failed logins are counted in login_throttles until the account is locked out.
    for _ in range(5):
        wrong = client.post("/token", json_body={"email": email, "password": "not the one"})
        assert wrong.status == 400
    assert client.post("/token", json_body={"email": email, "password": new}).status == 429

    # Account deletion removes the user with its tasks, sessions and notification records.
    leaving = client.sign_up(password=old)
    token = client.login(leaving, old)
    assert (
        client.post(
            "/tasks", json_body={"description": "d", "category": "c", "deadline": due}, token=token
        ).status
        == 201
    )
    assert deadline_service.check_deadlines().due_soon == 1
    assert client.delete("/users/me", json_body={"password": old}, token=token).status == 204
    with transaction() as session:
        who = session.execute(text("SELECT current_user")).scalar_one()
        gone = session.execute(
            text("SELECT count(*) FROM users WHERE email = :e"), {"e": leaving}
        ).scalar_one()
    assert who == APP_ROLE
    assert gone == 0
