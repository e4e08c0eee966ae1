"""Secrets in AWS: the JWT signing key comes from Secrets Manager (moto), cached, rotatable.

Locally (DATABASE_URL, JWT_SECRET) nothing AWS-related is imported at all.
"""

from __future__ import annotations

import json
import os
from collections.abc import Iterator
from typing import Any

import jwt
import pytest
from moto import mock_aws

from tests.support.api import ApiClient
from tests.support.processes import child_environment, run_python

CURRENT_KEY = "k1-" + "a" * 61
NEXT_KEY = "k2-" + "b" * 61


@pytest.fixture
def secretsmanager() -> Iterator[Any]:
    import boto3

    with mock_aws():
        yield boto3.client("secretsmanager", region_name="us-east-1")


@pytest.fixture
def jwt_secret_arn(
    secretsmanager: Any, monkeypatch: pytest.MonkeyPatch, reload_settings: None
) -> str:
    """The functions configured as in AWS: JWT_SECRET_ARN instead of JWT_SECRET."""
    created = secretsmanager.create_secret(
        Name="taskline/jwt", SecretString=json.dumps({"current": CURRENT_KEY, "previous": []})
    )
    monkeypatch.delenv("JWT_SECRET")
    monkeypatch.setenv("JWT_SECRET_ARN", created["ARN"])
    return str(created["ARN"])


def count_secret_reads() -> list[str]:
    """Records every GetSecretValue the functions' Secrets Manager client sends."""
    from taskline import secret_store

    calls: list[str] = []
    client = secret_store._secrets_provider().client

    def record(params: dict[str, Any], **_: Any) -> None:
        calls.append(params["SecretId"])

    client.meta.events.register("provide-client-params.secrets-manager.GetSecretValue", record)
    return calls


def key_id_of(token: str) -> str:
    return str(jwt.get_unverified_header(token)["kid"])


def test_tokens_are_signed_with_the_key_from_secrets_manager(
    client: ApiClient, jwt_secret_arn: str
) -> None:
    from taskline.security.tokens import key_id

    token = client.login(client.sign_up())

    assert key_id_of(token) == key_id(CURRENT_KEY.encode())
    assert ApiClient(client.gateway, token).get("/users/me").status == 200


def test_the_secret_is_read_once_and_then_served_from_the_cache(
    client: ApiClient, jwt_secret_arn: str
) -> None:
    reads = count_secret_reads()
    email = client.sign_up()
    token = client.login(email)
    me = ApiClient(client.gateway, token)
    for _ in range(3):
        assert me.get("/users/me").status == 200
    client.login(email)

    assert reads == [jwt_secret_arn]


def test_a_rotated_key_is_used_once_the_cache_expires_and_old_tokens_keep_working(
    client: ApiClient,
    jwt_secret_arn: str,
    secretsmanager: Any,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    from taskline.security.tokens import key_id

    monkeypatch.setenv("SECRETS_MAX_AGE_SECONDS", "0")  # every use re-reads the secret
    email = client.sign_up()
    old_token = client.login(email)

    # Step 1 of docs/deploy.md: the new key is known (verifies) but does not sign yet.
    secretsmanager.put_secret_value(
        SecretId=jwt_secret_arn,
        SecretString=json.dumps({"current": CURRENT_KEY, "previous": [NEXT_KEY]}),
    )
    assert key_id_of(client.login(email)) == key_id(CURRENT_KEY.encode())
    assert ApiClient(client.gateway, old_token).get("/users/me").status == 200

    # Step 2: the new key signs, the old one still verifies.
    secretsmanager.put_secret_value(
        SecretId=jwt_secret_arn,
        SecretString=json.dumps({"current": NEXT_KEY, "previous": [CURRENT_KEY]}),
    )
    new_token = client.login(email)
    assert key_id_of(new_token) == key_id(NEXT_KEY.encode())
    assert ApiClient(client.gateway, old_token).get("/users/me").status == 200
    assert ApiClient(client.gateway, new_token).get("/users/me").status == 200

    # Step 3: the old key is dropped; its tokens are refused, the new ones are not.
    secretsmanager.put_secret_value(
        SecretId=jwt_secret_arn, SecretString=json.dumps({"current": NEXT_KEY})
    )
    refused = ApiClient(client.gateway, old_token).get("/users/me")
    assert refused.status == 401
    assert ApiClient(client.gateway, new_token).get("/users/me").status == 200


def test_a_cached_key_is_kept_until_it_expires(
    client: ApiClient, jwt_secret_arn: str, secretsmanager: Any
) -> None:
    from taskline.security.tokens import key_id

    email = client.sign_up()
    client.login(email)
    secretsmanager.put_secret_value(
        SecretId=jwt_secret_arn, SecretString=json.dumps({"current": NEXT_KEY})
    )

    assert key_id_of(client.login(email)) == key_id(CURRENT_KEY.encode())


@pytest.mark.parametrize(
    "secret_string",
    [
        pytest.param(None, id="missing secret"),
        pytest.param("not json", id="not JSON"),
        pytest.param(json.dumps({"current": "short"}), id="key too short"),
        pytest.param(json.dumps({"previous": []}), id="no current key"),
    ],
)
def test_an_unusable_signing_secret_gives_503_and_reveals_nothing(
    client: ApiClient,
    secretsmanager: Any,
    monkeypatch: pytest.MonkeyPatch,
    reload_settings: None,
    secret_string: str | None,
) -> None:
    if secret_string is None:
        arn = "arn:aws:secretsmanager:us-east-1:123456789012:secret:taskline/absent-AbCdEf"
    else:
        arn = secretsmanager.create_secret(Name="taskline/bad", SecretString=secret_string)["ARN"]
    monkeypatch.delenv("JWT_SECRET")
    monkeypatch.setenv("JWT_SECRET_ARN", arn)
    email = client.sign_up()  # needs no key

    response = client.post(
        "/token", json_body={"email": email, "password": "correct horse battery"}
    )

    assert response.status == 503
    assert response.header("Content-Type") == "application/problem+json"
    assert response.header("Retry-After") == "5"
    problem = response.json()
    assert problem["type"] == "urn:taskline:problem:service-unavailable"
    assert "secret" not in response.body.decode().lower()


def test_local_runs_import_neither_boto3_nor_powertools_parameters() -> None:
    """With DATABASE_URL and JWT_SECRET, a request through every layer loads no AWS SDK."""
    script = """
import json, sys
from localdev.gateway import LocalGateway
from localdev.template import load
gateway = LocalGateway(load())
body = json.dumps({"email": "no-boto@example.com", "password": "correct horse battery"})
headers = [("Content-Type", "application/json")]
signup = gateway.request("POST", "/users", "", headers, body.encode())
login = gateway.request("POST", "/token", "", headers, body.encode())
print(json.dumps({
    "statuses": [signup.status, login.status],
    "boto3": "boto3" in sys.modules,
    "parameters": "aws_lambda_powertools.utilities.parameters" in sys.modules,
}))
"""
    local = {
        key: value
        for key, value in os.environ.items()
        if not key.startswith(("JWT_SECRET_ARN", "DB_SECRET_ARN", "DB_HOST"))
    }
    completed = run_python("-c", script, env=child_environment(local))
    assert completed.returncode == 0, completed.stderr
    result = json.loads(completed.stdout.strip().splitlines()[-1])

    assert result == {"statuses": [201, 200], "boto3": False, "parameters": False}


def test_unreadable_database_credentials_give_503_before_any_connection(
    client: ApiClient,
    secretsmanager: Any,
    monkeypatch: pytest.MonkeyPatch,
    reload_settings: None,
) -> None:
    monkeypatch.delenv("DATABASE_URL")
    monkeypatch.setenv("DB_HOST", "proxy.invalid")  # never resolved: the secret comes first
    monkeypatch.setenv(
        "DB_SECRET_ARN", "arn:aws:secretsmanager:us-east-1:123456789012:secret:taskline/db-AbCdEf"
    )

    response = client.post(
        "/users", json_body={"email": "nodb@example.com", "password": "correct horse battery"}
    )

    assert response.status == 503
    assert response.json()["type"] == "urn:taskline:problem:service-unavailable"
