"""Typed configuration, parsed once per container from environment variables."""

from __future__ import annotations

import json
import os
import types
import typing
from functools import lru_cache
from typing import Annotated, Any, Literal, Union
from urllib.parse import urlsplit

from pydantic import BaseModel, ConfigDict, Field, SecretStr, field_validator, model_validator

MIN_JWT_SECRET_BYTES = 32


class NoDecode:
    """Marks a field whose environment value is passed to its validators as the raw string,
    where a list or mapping field's value would otherwise be decoded as JSON first."""


_COMPLEX_ORIGINS = (list, set, frozenset, tuple, dict)


def _decodes_json(annotation: Any) -> bool:
    """Whether an environment value for `annotation` is JSON (lists, mappings, models), as
    pydantic-settings reads them; scalars, strings and NoDecode fields are taken as given."""
    origin = typing.get_origin(annotation)
    if origin is Annotated:
        inner, *metadata = typing.get_args(annotation)
        return not any(m is NoDecode for m in metadata) and _decodes_json(inner)
    if origin is Union or origin is types.UnionType:
        return any(_decodes_json(arg) for arg in typing.get_args(annotation))
    if origin is not None:
        return origin in _COMPLEX_ORIGINS
    return isinstance(annotation, type) and issubclass(annotation, (*_COMPLEX_ORIGINS, BaseModel))


class EnvironmentSettings(BaseModel):
    """A typed model whose fields are read from environment variables of the same name, in
    any case (DB_HOST or db_host); keyword arguments win over the environment.

    It does what pydantic-settings' BaseSettings did here, environment only (no .env file,
    no secrets directory), without importing pydantic-settings and python-dotenv on every
    cold start (docs/performance.md).
    """

    @model_validator(mode="before")
    @classmethod
    def _read_environment(cls, given: Any) -> Any:
        if not isinstance(given, dict):
            return given
        fields = cls.model_fields
        values: dict[str, Any] = {}
        for name, value in os.environ.items():
            field = fields.get(name.lower())
            if field is None:
                continue
            if _decodes_json(field.rebuild_annotation()):
                try:
                    value = json.loads(value)
                except ValueError:
                    raise ValueError(f"{name.upper()} is not valid JSON") from None
            values[name.lower()] = value
        return {**values, **given}


class Settings(EnvironmentSettings):
    """Every knob Taskline reads from the environment, with its default.

    Secrets come from one of two places. Locally (and in tests) DATABASE_URL and JWT_SECRET
    carry them directly. In AWS the environment carries only where they are: DB_HOST/DB_NAME
    and DB_SECRET_ARN (a Secrets Manager secret with `username` and `password`), and
    JWT_SECRET_ARN (a secret holding the signing key); `taskline.secret_store` reads them on
    first use and caches them for SECRETS_MAX_AGE_SECONDS. A value set directly wins.
    """

    # Errors name the variable but never echo its value: it may be a secret or a URL with one.
    model_config = ConfigDict(extra="ignore", frozen=True, hide_input_in_errors=True)

    # Database, either as a libpq-style URL: postgresql://user:password@host:port/dbname
    # (a Unix socket directory may be given as ?host=/path) ...
    database_url: SecretStr | None = None
    # ... or as a host whose credentials live in Secrets Manager (AWS: the RDS Proxy endpoint).
    db_host: str | None = None
    db_port: int = Field(default=5432, ge=1, le=65535)
    db_name: str = "taskline"
    db_secret_arn: str | None = None
    db_connect_timeout_seconds: float = Field(default=5.0, gt=0, le=30)
    db_statement_timeout_ms: int = Field(default=5000, ge=100, le=25000)
    # TLS. With DB_HOST and no DB_SSL_ROOT_CERT, the AWS CA bundle shipped in the package
    # (taskline/certs) is the only trust anchor; with DATABASE_URL, the system's trust store.
    db_ssl_mode: Literal["disable", "require", "verify-full"] = "disable"
    db_ssl_root_cert: str | None = None
    db_pool_size: int = Field(default=1, ge=1, le=50)
    # A pooled connection idle this long (e.g. in a frozen Lambda container) is pinged before
    # use; 0 pings before every use. Reads that still find their connection dead retry once.
    db_ping_after_idle_seconds: float = Field(default=30.0, ge=0, le=3600)
    # IAM database authentication (the `starter` profile, no Secrets Manager on the request
    # path): each new connection logs in as DB_USER with a token signed locally from the
    # function's own credentials (taskline.db). Requires TLS, as AWS does.
    db_iam_auth: bool = False
    db_user: str | None = None
    # Let the database pause (Aurora Serverless v2 pauses only with no user connection open,
    # and a frozen Lambda container cannot close its pooled one): the server ends a session
    # idle this long (PostgreSQL's idle_session_timeout, a role default the migrations apply,
    # so it pins no RDS Proxy session); 0 never. DB_PING_AFTER_IDLE_SECONDS stays below it, so
    # a container that wakes up finds its closed connection by the ping and opens a new one.
    db_idle_session_timeout_seconds: int = Field(default=60, ge=0, le=86400)
    # A connect that outlasts DB_CONNECT_TIMEOUT_SECONDS answers 503 with this Retry-After. In
    # the starter profile (Aurora Serverless v2 with auto-pause) that is a paused instance
    # resuming, about 15 s: the template sets 15 there.
    db_connect_retry_after_seconds: int = Field(default=2, ge=1, le=120)

    # Deploy-time migrations (the MigrationFunction): their own, longer statement timeout, and
    # the secret of the least-privileged role the API functions log in as (created if missing).
    migration_statement_timeout_ms: int = Field(default=120_000, ge=1000, le=840_000)
    # ... and their own socket timeout (pg8000's `timeout`), above that statement timeout, so
    # PostgreSQL cancels a slow step before the client gives up on the socket.
    migration_socket_timeout_seconds: float = Field(default=150.0, gt=0, le=900)
    db_app_user_secret_arn: str | None = None
    # ... or the name of that role when the API functions log in with IAM database
    # authentication (DB_IAM_AUTH on them): created without a password, granted rds_iam.
    db_app_iam_user: str | None = None

    # How long a value read from Secrets Manager is reused before it is read again.
    secrets_max_age_seconds: int = Field(default=300, ge=0, le=86400)

    # Tokens: the signing key itself (local), or the ARN of the secret that holds the keys as
    # {"current", "previous"} (AWS). JWT_SECRET signs new access tokens; JWT_PREVIOUS_SECRETS
    # (a JSON array or a comma-separated list) only verify, so keys can rotate locally
    # (docs/security.md); in AWS the secret's "previous" list plays that part (docs/deploy.md).
    jwt_secret: SecretStr | None = None
    jwt_secret_arn: str | None = None
    jwt_previous_secrets: Annotated[list[SecretStr], NoDecode] = Field(default_factory=list)
    jwt_issuer: str = "taskline"
    jwt_audience: str = "taskline-api"
    # An access token cannot be revoked before it expires: this is how long it outlives a logout.
    access_token_ttl_seconds: int = Field(default=900, ge=60, le=86400)
    jwt_leeway_seconds: int = Field(default=30, ge=0, le=60)
    # Each refresh token expires this long after it was issued (an idle session ends then) ...
    refresh_token_ttl_seconds: int = Field(default=14 * 86400, ge=300, le=365 * 86400)
    # ... and no session outlives this, however often it is refreshed.
    session_max_age_seconds: int = Field(default=90 * 86400, ge=300, le=366 * 86400)

    # Login throttling: after this many failed attempts within the window, for one account
    # (email, any case) or from one source IP, attempts are refused for the lockout period.
    login_max_failures_per_account: int = Field(default=5, ge=1, le=1000)
    login_max_failures_per_ip: int = Field(default=50, ge=1, le=100000)
    login_failure_window_seconds: int = Field(default=900, ge=1, le=86400)
    login_lockout_seconds: int = Field(default=900, ge=1, le=86400)

    # Idempotency-Key on POST /tasks: how long a key (and the first result) is kept.
    idempotency_key_ttl_seconds: int = Field(default=86400, ge=60, le=7 * 86400)

    # Passwords: bcrypt work factor (2**rounds iterations).
    bcrypt_rounds: int = Field(default=12, ge=4, le=16)

    # Deadline checks (functions/deadlines).
    # SNS topic that receives one message per task and stage; unset: log instead of publishing.
    notifications_topic_arn: str | None = None
    # Verified SES identity that emails owners; unset: no email.
    notification_email_sender: str | None = None
    # Open tasks due within this many minutes from now are "due soon".
    deadline_due_soon_minutes: int = Field(default=1440, ge=1, le=43200)
    # Tasks overdue by more than this are no longer notified (bounds the scan; see docs).
    deadline_overdue_lookback_minutes: int = Field(default=10080, ge=1, le=525600)
    # Tasks claimed per transaction (published in PublishBatch calls of 10).
    deadline_batch_size: int = Field(default=100, ge=1, le=1000)
    # The DynamoDB table holding when the check next has work (taskline.deadline_gate): the
    # check skips the database until then, so it does not wake a paused Aurora instance.
    # Unset (make run, tests by default): every run queries the database.
    deadline_gate_table: str | None = None
    # No new batch is claimed when less than this is left before the function's timeout.
    deadline_reserve_seconds: int = Field(default=30, ge=1, le=600)

    # Reminders people control (docs/deadlines.md).
    # The API's public base URL (https in AWS), for unsubscribe links and calendar feed URLs;
    # the deadline check emails only with it (every email carries an unsubscribe link).
    public_api_url: str | None = None
    # SES configuration set whose event destination reports bounces and complaints.
    email_configuration_set: str | None = None
    # How long the one-click unsubscribe link in an email keeps working.
    unsubscribe_token_ttl_seconds: int = Field(default=60 * 86400, ge=3600, le=366 * 86400)
    unsubscribe_audience: str = "taskline-unsubscribe"
    # Email ownership (docs/security.md): how long a verification link works, its audience, and
    # how many verification emails one account may cause per window (sign-up's included).
    email_verification_token_ttl_seconds: int = Field(default=86400, ge=600, le=30 * 86400)
    email_verification_audience: str = "taskline-email-verification"
    email_verification_emails_per_window: int = Field(default=5, ge=1, le=1000)
    email_verification_window_seconds: int = Field(default=3600, ge=60, le=7 * 86400)

    @field_validator(
        "notifications_topic_arn",
        "notification_email_sender",
        "public_api_url",
        "email_configuration_set",
        "deadline_gate_table",
        mode="before",
    )
    @classmethod
    def _blank_is_unset(cls, value: object) -> object:
        # Template parameters left empty arrive as "", which means "not configured".
        return None if isinstance(value, str) and not value.strip() else value

    @field_validator("public_api_url")
    @classmethod
    def _public_url(cls, value: str | None) -> str | None:
        if value is None:
            return None
        parsed = urlsplit(value)
        local = parsed.hostname in {"localhost", "127.0.0.1", "::1"}
        if parsed.scheme != "https" and not (parsed.scheme == "http" and local):
            raise ValueError("must be an https:// URL (http:// only for localhost)")
        if not parsed.hostname or parsed.query or parsed.fragment:
            raise ValueError("must be a base URL: scheme, host and optional path only")
        return value.rstrip("/")

    @field_validator("jwt_secret")
    @classmethod
    def _secret_long_enough(cls, value: SecretStr | None) -> SecretStr | None:
        if value is not None:
            check_signing_key(value)
        return value

    @field_validator("jwt_previous_secrets", mode="before")
    @classmethod
    def _split_previous(cls, value: Any) -> Any:
        # CloudFormation passes a plain string; an empty one means "no previous keys".
        if not isinstance(value, str):
            return value
        text = value.strip()
        if not text:
            return []
        if text.startswith("["):
            return json.loads(text)
        return [part.strip() for part in text.split(",") if part.strip()]

    @field_validator("jwt_previous_secrets")
    @classmethod
    def _previous_long_enough(cls, values: list[SecretStr]) -> list[SecretStr]:
        for value in values:
            check_signing_key(value)
        return values

    @model_validator(mode="after")
    def _secrets_have_a_source(self) -> Settings:
        if self.database_url is None and not (
            self.db_host and (self.db_secret_arn or (self.db_iam_auth and self.db_user))
        ):
            raise ValueError(
                "set DATABASE_URL, or DB_HOST and DB_SECRET_ARN, or DB_HOST, DB_USER and"
                " DB_IAM_AUTH=true"
            )
        if 0 < self.db_idle_session_timeout_seconds <= self.db_ping_after_idle_seconds:
            raise ValueError(
                "DB_PING_AFTER_IDLE_SECONDS must be below DB_IDLE_SESSION_TIMEOUT_SECONDS, or a"
                " connection the server closed for idleness is used without a ping"
            )
        if self.db_iam_auth and not self.db_user and self.database_url is None:
            raise ValueError("DB_IAM_AUTH needs DB_USER")
        if self.db_iam_auth and self.db_ssl_mode == "disable":
            # The token is a bearer credential for 15 minutes: AWS requires TLS with it.
            # https://docs.aws.amazon.com/AmazonRDS/latest/AuroraUserGuide/UsingWithRDS.IAMDBAuth.html
            raise ValueError("DB_IAM_AUTH needs TLS: set DB_SSL_MODE to verify-full")
        if self.jwt_secret is None and not self.jwt_secret_arn:
            raise ValueError("set JWT_SECRET or JWT_SECRET_ARN")
        # NOTIFICATION_EMAIL_SENDER without PUBLIC_API_URL is allowed: the API functions take
        # their links' host from the request (API Gateway's domain, as for calendar feeds);
        # the deadline check, which has no request, emails only when both are set
        # (notifications.mailer_for), and the template always gives it both.
        return self


def check_signing_key(value: SecretStr) -> SecretStr:
    """Signing keys shorter than HS256's block size are refused, wherever they come from."""
    if len(value.get_secret_value().encode()) < MIN_JWT_SECRET_BYTES:
        raise ValueError(f"JWT signing keys must be at least {MIN_JWT_SECRET_BYTES} bytes")
    return value


@lru_cache(maxsize=1)
def get_settings() -> Settings:
    """The container's settings; parsed on first use so tests can set the environment first."""
    return Settings()  # required fields come from the environment
