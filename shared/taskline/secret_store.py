"""Secrets: straight from the settings locally, from AWS Secrets Manager in AWS.

In AWS the environment holds only ARNs (never a secret value). The first use in a container
reads the secret through Powertools Parameters and caches it for SECRETS_MAX_AGE_SECONDS,
so a cold start pays one GetSecretValue per secret and a warm container none; an expired
value is read again, which is how rotated secrets reach running containers.

boto3 and Powertools Parameters are imported only when an ARN is configured and only when a
secret is first needed, never at import time: local runs and tests with DATABASE_URL and
JWT_SECRET never load them, and moto can patch the client, which is created lazily too.
"""

from __future__ import annotations

import json
import threading
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from aws_lambda_powertools import Logger
from pydantic import SecretStr

from taskline.errors import SecretsUnavailable
from taskline.settings import check_signing_key, get_settings

if TYPE_CHECKING:
    from aws_lambda_powertools.utilities.parameters import SecretsProvider

# GetSecretValue must answer well inside a request's time budget (Lambda timeout 10 s):
# at most 2 attempts of (1 s connect + 2 s read).
_CONNECT_TIMEOUT_SECONDS = 1.0
_READ_TIMEOUT_SECONDS = 2.0
_MAX_ATTEMPTS = 2

logger = Logger(child=True)
_lock = threading.Lock()
_provider: SecretsProvider | None = None


@dataclass(frozen=True)
class DatabaseCredentials:
    username: str
    password: SecretStr


def _secrets_provider() -> SecretsProvider:
    """The container's Secrets Manager reader, created on first use."""
    global _provider  # one provider (client + cache) per container
    with _lock:
        if _provider is None:
            from aws_lambda_powertools.utilities.parameters import SecretsProvider
            from botocore.config import Config

            config = Config(
                connect_timeout=_CONNECT_TIMEOUT_SECONDS,
                read_timeout=_READ_TIMEOUT_SECONDS,
                retries={"max_attempts": _MAX_ATTEMPTS, "mode": "standard"},
            )
            _provider = SecretsProvider(boto_config=config)
        return _provider


def reset() -> None:
    """Forget the client and every cached value (tests; after a SnapStart restore)."""
    global _provider
    with _lock:
        _provider = None


def read_json(arn: str, *, refresh: bool = False) -> dict[str, Any]:
    """The JSON object stored in secret `arn`, cached for SECRETS_MAX_AGE_SECONDS."""
    from aws_lambda_powertools.utilities.parameters.exceptions import (
        GetParameterError,
        TransformParameterError,
    )

    try:
        raw = _secrets_provider().get(
            arn, max_age=get_settings().secrets_max_age_seconds, force_fetch=refresh
        )
    except GetParameterError as error:
        logger.error("Reading a secret failed", extra={"secret_arn": arn, "error": str(error)})
        raise SecretsUnavailable(f"secret {arn} could not be read") from error
    except TransformParameterError as error:  # pragma: no cover - no transform is requested
        raise SecretsUnavailable(f"secret {arn} could not be decoded") from error
    if not isinstance(raw, str | bytes):
        raise SecretsUnavailable(f"secret {arn} is not a JSON object")
    try:
        document = json.loads(raw)
    except ValueError as error:
        raise SecretsUnavailable(f"secret {arn} is not a JSON object") from error
    if not isinstance(document, dict):
        raise SecretsUnavailable(f"secret {arn} is not a JSON object")
    return document


def _credentials_from(arn: str, *, refresh: bool = False) -> DatabaseCredentials:
    document = read_json(arn, refresh=refresh)
    username, password = document.get("username"), document.get("password")
    if not (isinstance(username, str) and username and isinstance(password, str) and password):
        raise SecretsUnavailable(f"secret {arn} has no username and password")
    return DatabaseCredentials(username=username, password=SecretStr(password))


def database_credentials(*, refresh: bool = False) -> DatabaseCredentials:
    """Who the functions log in to the database as (DB_SECRET_ARN's username and password).

    `refresh` reads the secret again even if the cached copy is young: used after the
    database refused the cached password (the secret was rotated).
    """
    arn = get_settings().db_secret_arn
    if arn is None:
        raise SecretsUnavailable("DB_SECRET_ARN is not set")
    return _credentials_from(arn, refresh=refresh)


def app_user_credentials() -> DatabaseCredentials:
    """The least-privileged role the migration function provisions (DB_APP_USER_SECRET_ARN)."""
    arn = get_settings().db_app_user_secret_arn
    if arn is None:
        raise SecretsUnavailable("DB_APP_USER_SECRET_ARN is not set")
    return _credentials_from(arn, refresh=True)


def jwt_signing_secrets() -> tuple[SecretStr, ...]:
    """The signing keys, current first, then the previous ones that still verify.

    Locally: JWT_SECRET and JWT_PREVIOUS_SECRETS. In AWS: the secret at JWT_SECRET_ARN, a JSON
    object `{"current": "...", "previous": ["...", ...]}` (previous is optional); keys from
    JWT_PREVIOUS_SECRETS are appended.
    """
    settings = get_settings()
    if settings.jwt_secret is not None:
        return (settings.jwt_secret, *settings.jwt_previous_secrets)
    arn = settings.jwt_secret_arn
    if arn is None:  # pragma: no cover - Settings requires one of the two
        raise SecretsUnavailable("JWT_SECRET_ARN is not set")
    document = read_json(arn)
    current, previous = document.get("current"), document.get("previous", [])
    if not isinstance(current, str) or not isinstance(previous, list):
        raise SecretsUnavailable(f"secret {arn} needs a string 'current' and a list 'previous'")
    if not all(isinstance(value, str) for value in previous):
        raise SecretsUnavailable(f"secret {arn}: 'previous' must hold strings")
    try:
        keys = [check_signing_key(SecretStr(value)) for value in (current, *previous)]
    except ValueError as error:
        raise SecretsUnavailable(f"secret {arn} holds a key that is too short") from error
    return (*keys, *settings.jwt_previous_secrets)
