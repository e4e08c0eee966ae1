"""Typed configuration, parsed once per container from environment variables."""

from __future__ import annotations

from functools import lru_cache
from typing import Literal

from pydantic import Field, SecretStr, field_validator
from pydantic_settings import BaseSettings, SettingsConfigDict

MIN_JWT_SECRET_BYTES = 32


class Settings(BaseSettings):
    """Every knob Taskline reads from the environment, with its default."""

    model_config = SettingsConfigDict(case_sensitive=False, extra="ignore", frozen=True)

    # Database. A libpq-style URL: postgresql://user:password@host:port/dbname
    # (a Unix socket directory may be given as ?host=/path).
    database_url: SecretStr
    db_connect_timeout_seconds: float = Field(default=5.0, gt=0, le=30)
    db_statement_timeout_ms: int = Field(default=5000, ge=100, le=25000)
    db_ssl_mode: Literal["disable", "require", "verify-full"] = "disable"
    db_ssl_root_cert: str | None = None
    db_pool_size: int = Field(default=1, ge=1, le=50)
    # A pooled connection idle this long (e.g. in a frozen Lambda container) is pinged before
    # use; 0 pings before every use. Reads that still find their connection dead retry once.
    db_ping_after_idle_seconds: float = Field(default=30.0, ge=0, le=3600)

    # Tokens.
    jwt_secret: SecretStr
    jwt_previous_secrets: list[SecretStr] = Field(default_factory=list)
    jwt_issuer: str = "taskline"
    jwt_audience: str = "taskline-api"
    access_token_ttl_seconds: int = Field(default=3600, ge=60, le=86400)
    jwt_leeway_seconds: int = Field(default=30, ge=0, le=60)

    # Passwords: bcrypt work factor (2**rounds iterations).
    bcrypt_rounds: int = Field(default=12, ge=4, le=16)

    @field_validator("jwt_secret")
    @classmethod
    def _secret_long_enough(cls, value: SecretStr) -> SecretStr:
        if len(value.get_secret_value().encode()) < MIN_JWT_SECRET_BYTES:
            raise ValueError(f"JWT_SECRET must be at least {MIN_JWT_SECRET_BYTES} bytes")
        return value

    @field_validator("jwt_previous_secrets")
    @classmethod
    def _previous_long_enough(cls, values: list[SecretStr]) -> list[SecretStr]:
        for value in values:
            cls._secret_long_enough(value)
        return values


@lru_cache(maxsize=1)
def get_settings() -> Settings:
    """The container's settings; parsed on first use so tests can set the environment first."""
    return Settings()  # required fields come from the environment
