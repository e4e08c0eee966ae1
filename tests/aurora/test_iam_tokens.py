"""IAM database authentication through the strict Aurora stand-in: the functions' tokens (signed
locally by boto3, one per connection) log in; a forged, expired, altered or plaintext login is
refused as Aurora refuses it (28P01 / 28000)."""

from __future__ import annotations

import ssl
from datetime import UTC, datetime, timedelta

import boto3
import pg8000
import pytest
from sqlalchemy import Engine, text

from localdev.aurora import IamAuth, token_problem
from tests.aurora.conftest import use_aurora
from tests.support.aurora import HOST, TEST_ACCESS_KEYS, RunningAurora
from tests.support.environment import TEST_APP_ROLE, TEST_DATABASE


def token(port: int, *, secret: str = "testing", user: str = TEST_APP_ROLE) -> str:
    client = boto3.client(
        "rds",
        region_name="us-east-1",
        aws_access_key_id="testing",
        aws_secret_access_key=secret,
    )
    return str(client.generate_db_auth_token(DBHostname=HOST, Port=port, DBUsername=user))


def log_in(running: RunningAurora, password: str, *, tls: bool = True) -> pg8000.Connection:
    context = ssl.create_default_context(cafile=running.ca_file) if tls else False
    return pg8000.connect(
        user=TEST_APP_ROLE,
        password=password,
        host=HOST,
        port=running.stand_in.port,
        database=TEST_DATABASE,
        ssl_context=context,
        timeout=10,
    )


def refusal(running: RunningAurora, password: str, *, tls: bool = True) -> str:
    with pytest.raises(pg8000.Error) as refused:
        log_in(running, password, tls=tls).close()
    details = refused.value.args[0]
    assert isinstance(details, dict)
    return str(details["C"])


@pytest.fixture
def iam(aurora: RunningAurora) -> IamAuth:
    assert aurora.stand_in.iam is not None
    return aurora.stand_in.iam


def test_a_fresh_token_logs_in(aurora: RunningAurora) -> None:
    connection = log_in(aurora, token(aurora.stand_in.port))
    assert list(connection.run("SELECT current_user")) == [[TEST_APP_ROLE]]
    connection.close()


def test_the_functions_log_in_with_iam_tokens(
    aurora: RunningAurora, monkeypatch: pytest.MonkeyPatch, admin_engine: Engine
) -> None:
    from taskline.db import get_engine

    use_aurora(aurora, monkeypatch, admin_engine)
    before = len(aurora.stand_in.connections)
    with get_engine().connect() as connection:
        assert connection.execute(text("SELECT current_user")).scalar_one() == TEST_APP_ROLE
    get_engine().dispose()
    new = aurora.stand_in.connections[before:]
    assert new
    assert all(c.refused is None for c in new)


def test_forged_token_is_refused(aurora: RunningAurora) -> None:
    assert refusal(aurora, token(aurora.stand_in.port, secret="not-the-key")) == "28P01"
    assert aurora.stand_in.refused[-1].refused == (
        "IAM token signature does not match (forged or altered)"
    )


def test_token_for_another_user_or_altered_is_refused(aurora: RunningAurora) -> None:
    port = aurora.stand_in.port
    assert refusal(aurora, token(port, user="postgres")) == "28P01"
    altered = token(port).replace("X-Amz-Expires=900", "X-Amz-Expires=899")
    assert refusal(aurora, altered) == "28P01"
    assert refusal(aurora, "a-password") == "28P01"


def test_plaintext_login_is_refused(aurora: RunningAurora) -> None:
    assert refusal(aurora, token(aurora.stand_in.port), tls=False) == "28000"


def test_token_expires_after_15_minutes(iam: IamAuth, aurora: RunningAurora) -> None:
    port = aurora.stand_in.port
    fresh = token(port)
    assert token_problem(fresh, TEST_APP_ROLE, iam, port) is None
    later = IamAuth(HOST, TEST_ACCESS_KEYS, now=lambda: datetime.now(UTC) + timedelta(minutes=14))
    assert token_problem(fresh, TEST_APP_ROLE, later, port) is None
    expired = IamAuth(HOST, TEST_ACCESS_KEYS, now=lambda: datetime.now(UTC) + timedelta(minutes=16))
    assert token_problem(fresh, TEST_APP_ROLE, expired, port) == "expired"


def test_an_expired_token_is_refused_at_login(
    aurora: RunningAurora, monkeypatch: pytest.MonkeyPatch
) -> None:
    port = aurora.stand_in.port
    stale = token(port)
    iam = aurora.stand_in.iam
    assert iam is not None
    monkeypatch.setattr(
        aurora.stand_in,
        "iam",
        IamAuth(iam.host, iam.access_keys, now=lambda: datetime.now(UTC) + timedelta(minutes=16)),
    )
    assert refusal(aurora, stale) == "28P01"
    assert aurora.stand_in.refused[-1].refused == "IAM token expired"


def test_token_shape(iam: IamAuth, aurora: RunningAurora) -> None:
    port = aurora.stand_in.port
    good = token(port)
    assert good.startswith(f"{HOST}:{port}/?Action=connect&DBUser={TEST_APP_ROLE}&")
    assert "X-Amz-Expires=900" in good
    for bad, why in (
        (good.replace(f"{HOST}:{port}", f"{HOST}:{port + 1}"), "signed for"),
        (good.replace("Action=connect", "Action=login"), "Action"),
        (good.replace("rds-db", "rds"), "credential scope"),
        (good.split("&X-Amz-Signature")[0], "missing"),
        (good.replace("/?", "?"), "not a presigned"),
    ):
        problem = token_problem(bad, TEST_APP_ROLE, iam, port)
        assert problem is not None, bad
        assert why in problem, (bad, problem)
