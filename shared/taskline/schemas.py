"""Pydantic models for what goes over the wire. Requests forbid unknown fields."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Annotated, Any, Literal

from pydantic import (
    AfterValidator,
    BaseModel,
    BeforeValidator,
    ConfigDict,
    EmailStr,
    Field,
    StringConstraints,
    field_validator,
)

from taskline.models import TaskStatus

MIN_PASSWORD_CHARS = 8
MAX_PASSWORD_BYTES = 72  # bcrypt ignores anything beyond 72 bytes; we refuse instead of truncating
MAX_DESCRIPTION_CHARS = 4000
MAX_CATEGORY_CHARS = 255


def _as_utc(value: datetime) -> datetime:
    """Timestamps without an offset are UTC; everything is stored and shown in UTC."""
    if value.tzinfo is None:
        return value.replace(tzinfo=UTC)
    return value.astimezone(UTC)


def _timestamp_text_only(value: Any) -> Any:
    # Pydantic would take 1700000000 as a Unix time; the contract only speaks RFC 3339.
    if not isinstance(value, str | datetime):
        raise ValueError("must be an RFC 3339 timestamp string")
    return value


def _printable(value: str) -> str:
    # PostgreSQL text cannot hold NUL, and other control characters are never wanted here.
    if any(ord(char) < 32 and char not in "\t\n\r" for char in value):
        raise ValueError("must not contain control characters")
    return value


def _password_fits_bcrypt(value: str) -> str:
    if len(value) < MIN_PASSWORD_CHARS:
        raise ValueError(f"must be at least {MIN_PASSWORD_CHARS} characters")
    if len(value.encode()) > MAX_PASSWORD_BYTES:
        raise ValueError(f"must be at most {MAX_PASSWORD_BYTES} bytes in UTF-8")
    return value


Timestamp = Annotated[datetime, BeforeValidator(_timestamp_text_only), AfterValidator(_as_utc)]
UtcDatetime = Annotated[datetime, AfterValidator(_as_utc)]
Description = Annotated[
    str,
    StringConstraints(strip_whitespace=True, min_length=1, max_length=MAX_DESCRIPTION_CHARS),
    AfterValidator(_printable),
]
Category = Annotated[
    str,
    StringConstraints(strip_whitespace=True, min_length=1, max_length=MAX_CATEGORY_CHARS),
    AfterValidator(_printable),
]
NewPassword = Annotated[str, AfterValidator(_password_fits_bcrypt)]


class RequestModel(BaseModel):
    model_config = ConfigDict(extra="forbid")


class ResponseModel(BaseModel):
    model_config = ConfigDict(from_attributes=True)


# Accounts and tokens


class UserCreate(RequestModel):
    # Built on first use: its EmailStr imports email-validator, which only the auth function needs.
    model_config = ConfigDict(extra="forbid", defer_build=True)

    email: EmailStr = Field(max_length=320)
    password: NewPassword


class UserOut(ResponseModel):
    id: int
    email: str
    created_at: UtcDatetime


class PasswordGrant(BaseModel):
    """POST /token's input, from the OAuth2 form (`username`) or JSON (`email`)."""

    # Unknown form fields (scope, client_id, ...) are ignored, as RFC 6749 asks.
    model_config = ConfigDict(extra="ignore")

    grant_type: Literal["password"] = "password"
    username: str = Field(min_length=1, max_length=320)
    password: str = Field(min_length=1, max_length=1024)


class TokenOut(BaseModel):
    access_token: str
    token_type: Literal["bearer"] = "bearer"
    expires_in: int


# Tasks


class TaskCreate(RequestModel):
    description: Description
    category: Category
    deadline: Timestamp
    status: TaskStatus = TaskStatus.TODO


class TaskReplace(RequestModel):
    """PUT: every writable field, no defaults."""

    description: Description
    category: Category
    deadline: Timestamp
    status: TaskStatus


class TaskPatch(RequestModel):
    """PATCH: any subset of the writable fields; none of them may be null."""

    description: Description | None = None
    category: Category | None = None
    deadline: Timestamp | None = None
    status: TaskStatus | None = None

    @field_validator("*", mode="before")
    @classmethod
    def _not_null(cls, value: Any) -> Any:
        if value is None:
            raise ValueError("may be omitted but not null")
        return value

    def changes(self) -> dict[str, Any]:
        """Only the fields the client sent."""
        return {name: getattr(self, name) for name in self.model_fields_set}


class TaskOut(ResponseModel):
    id: int
    description: str
    category: str
    deadline: UtcDatetime
    status: TaskStatus
    created_at: UtcDatetime
    updated_at: UtcDatetime


class TaskFilters(BaseModel):
    """The list endpoint's filters, already validated."""

    status: TaskStatus | None = None
    category: str | None = None
    due_before: datetime | None = None
    due_after: datetime | None = None


class TaskPage(BaseModel):
    items: list[TaskOut]
    next_cursor: str | None
