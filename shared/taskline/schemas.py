"""Pydantic models for what goes over the wire. Requests forbid unknown fields."""

from __future__ import annotations

import re
from datetime import UTC, datetime
from typing import Annotated, Any, Literal

from pydantic import (
    AfterValidator,
    BaseModel,
    BeforeValidator,
    ConfigDict,
    EmailStr,
    Field,
    GetJsonSchemaHandler,
    StringConstraints,
    ValidationInfo,
    field_validator,
)
from pydantic.json_schema import JsonSchemaValue
from pydantic_core import CoreSchema

from taskline.models import TaskStatus

MIN_PASSWORD_CHARS = 8
MAX_PASSWORD_BYTES = 72  # bcrypt ignores anything beyond 72 bytes; we refuse instead of truncating
MAX_DESCRIPTION_CHARS = 4000
MAX_CATEGORY_CHARS = 255
MAX_JSON_SAFE_INTEGER = 2**53 - 1
MAX_IDEMPOTENCY_KEY_CHARS = 255


class WithJsonSchemaExtra:
    """Adds keywords to a type's JSON schema, for rules its validators enforce in code."""

    def __init__(self, **keywords: Any) -> None:
        self.keywords = keywords

    def __get_pydantic_json_schema__(
        self, core_schema: CoreSchema, handler: GetJsonSchemaHandler
    ) -> JsonSchemaValue:
        schema = handler(core_schema)
        schema.update(self.keywords)
        return schema


# Text fields hold no C0 control character but tab, newline and carriage return (PostgreSQL text
# cannot hold NUL, and the others are never wanted), and at least one character that is not
# whitespace as str.strip() sees it. The pattern is what the OpenAPI document publishes; the
# validators below enforce the same rule with clearer messages (tests/test_schemas.py checks that
# the two agree). It uses only \xHH and \uHHHH escapes, which ECMA-262, Python and Rust all read.
_TEXT_CHAR = r"[^\x00-\x08\x0B\x0C\x0E-\x1F]"
_VISIBLE_CHAR = r"[^\x00-\x20\x85\xA0\u1680\u2000-\u200A\u2028\u2029\u202F\u205F\u3000]"
TEXT_PATTERN = f"^{_TEXT_CHAR}*{_VISIBLE_CHAR}{_TEXT_CHAR}*$"
_RFC3339 = re.compile(
    r"[0-9]{4}-[0-9]{2}-[0-9]{2}[Tt ][0-9]{2}:[0-9]{2}:[0-9]{2}(?:\.[0-9]+)?"
    r"(?:[Zz]|[+-][0-9]{2}:[0-9]{2})?"
)
_FORBIDDEN_CONTROLS = frozenset(chr(c) for c in range(32)) - {"\t", "\n", "\r"}


def _as_utc(value: datetime) -> datetime:
    """Timestamps without an offset are UTC; everything is stored and shown in UTC."""
    if value.tzinfo is None:
        return value.replace(tzinfo=UTC)
    try:
        return value.astimezone(UTC)
    except OverflowError as error:  # e.g. 9999-12-31T23:00:00-05:00 is in the year 10000 in UTC
        raise ValueError("must fall between the years 1 and 9999 in UTC") from error


def _timestamp_text_only(value: Any) -> Any:
    # Pydantic would also take 1700000000, "0.5" or "2030-01-01" (Unix times, a bare date); the
    # contract only speaks RFC 3339, with the offset optional (then UTC).
    if isinstance(value, datetime):
        return value
    if not isinstance(value, str) or not _RFC3339.fullmatch(value):
        raise ValueError("must be an RFC 3339 timestamp string, e.g. 2030-01-15T09:00:00Z")
    return value


def _text(value: str) -> str:
    """Check the text as sent (TEXT_PATTERN's rule), then drop surrounding whitespace."""
    if not _FORBIDDEN_CONTROLS.isdisjoint(value):
        raise ValueError("must not contain control characters")
    stripped = value.strip()
    if not stripped:
        raise ValueError("must not be blank")
    return stripped


def _encodable(value: str) -> str:
    # JSON can carry lone surrogates ("\ud800"), which no UTF-8 encoder (bcrypt's, the
    # database driver's) accepts; refuse them here rather than fail later.
    try:
        value.encode()
    except UnicodeEncodeError as error:
        raise ValueError("must be valid Unicode text") from error
    return value


def _password_fits_bcrypt(value: str) -> str:
    _encodable(value)
    if len(value.encode()) > MAX_PASSWORD_BYTES:
        raise ValueError(f"must be at most {MAX_PASSWORD_BYTES} bytes in UTF-8")
    return value


Timestamp = Annotated[
    datetime,
    BeforeValidator(_timestamp_text_only),
    AfterValidator(_as_utc),
    WithJsonSchemaExtra(
        description="RFC 3339; without an offset the time is UTC. The instant must fall within "
        "the years 1 to 9999 in UTC."
    ),
]
UtcDatetime = Annotated[datetime, AfterValidator(_as_utc)]
# Lengths count the text as sent, before surrounding whitespace is dropped.
Description = Annotated[
    str,
    StringConstraints(min_length=1, max_length=MAX_DESCRIPTION_CHARS),
    WithJsonSchemaExtra(pattern=TEXT_PATTERN),
    AfterValidator(_text),
]
Category = Annotated[
    str,
    StringConstraints(min_length=1, max_length=MAX_CATEGORY_CHARS),
    WithJsonSchemaExtra(pattern=TEXT_PATTERN),
    AfterValidator(_text),
]
IdempotencyKeyValue = Annotated[
    str,
    StringConstraints(
        min_length=1, max_length=MAX_IDEMPOTENCY_KEY_CHARS, pattern=r"^[!-~](?:[ -~]*[!-~])?$"
    ),
]
NewPassword = Annotated[
    str,
    StringConstraints(min_length=MIN_PASSWORD_CHARS, max_length=MAX_PASSWORD_BYTES),
    WithJsonSchemaExtra(
        format="password",
        description=f"At least {MIN_PASSWORD_CHARS} characters and at most "
        f"{MAX_PASSWORD_BYTES} bytes in UTF-8 (bcrypt's limit).",
    ),
    AfterValidator(_password_fits_bcrypt),
]
EncodableText = Annotated[str, AfterValidator(_encodable)]
# A login email is looked up, never stored: one with NUL or other control characters is just
# an email no account has (invalid_grant after one bcrypt check); repositories keep NUL,
# which PostgreSQL text cannot hold, out of SQL.
LoginName = Annotated[str, AfterValidator(_encodable)]


# Every schema builds its validator on first use (defer_build), not at import: a function's
# cold start then pays only for the schemas its first request uses (docs/performance.md).
class RequestModel(BaseModel):
    model_config = ConfigDict(extra="forbid", defer_build=True)


class ResponseModel(BaseModel):
    model_config = ConfigDict(from_attributes=True, defer_build=True)


# Accounts and tokens


class UserCreate(RequestModel):
    # Built on first use: its EmailStr imports email-validator, which only the auth function needs.
    model_config = ConfigDict(extra="forbid", defer_build=True)

    email: EmailStr = Field(
        max_length=320,
        description="Compared case-insensitively. Special-use domains (RFC 6761: .test, .local, "
        ".localhost, .invalid, .onion, .arpa) cannot receive mail and are refused.",
    )
    password: NewPassword


class UserOut(ResponseModel):
    id: int
    email: str
    created_at: UtcDatetime


class PasswordGrant(BaseModel):
    """POST /token's password grant, from the OAuth2 form (`username`) or JSON (`email`)."""

    # Unknown form fields (scope, client_id, ...) are ignored, as RFC 6749 asks.
    model_config = ConfigDict(extra="ignore", defer_build=True)

    # No upper bounds: an over-long email or password is just a wrong one (invalid_grant, one
    # bcrypt check), and the 64 KiB body limit already bounds them.
    grant_type: Literal["password"] = "password"
    username: LoginName = Field(min_length=1)
    password: EncodableText = Field(min_length=1)


class RefreshGrant(BaseModel):
    """POST /token's refresh grant (RFC 6749 section 6): a refresh token for a new pair."""

    model_config = ConfigDict(extra="ignore", defer_build=True)

    grant_type: Literal["refresh_token"]
    refresh_token: EncodableText = Field(min_length=1, max_length=512)


class TokenOut(BaseModel):
    model_config = ConfigDict(defer_build=True)

    access_token: str
    token_type: Literal["bearer"] = "bearer"
    expires_in: int
    refresh_token: str


class TokenRevocation(BaseModel):
    """POST /token/revoke (RFC 7009). `token_type_hint` is accepted and not needed: the two
    kinds of token are told apart by their shape, as RFC 7009 section 2.1 allows."""

    model_config = ConfigDict(extra="ignore", defer_build=True)

    token: EncodableText = Field(min_length=1, max_length=4096)


class PasswordChange(RequestModel):
    current_password: EncodableText = Field(min_length=1, max_length=1024)
    new_password: NewPassword = Field(
        description="At least 8 characters and at most 72 bytes in UTF-8; not the current one."
    )

    @field_validator("new_password")
    @classmethod
    def _differs(cls, value: str, info: ValidationInfo) -> str:
        if value == info.data.get("current_password"):
            raise ValueError("must differ from current_password")
        return value


class AccountDeletion(RequestModel):
    """DELETE /users/me: the password confirms it."""

    password: EncodableText = Field(min_length=1, max_length=1024)


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


def _omit_nulls(schema: dict[str, Any]) -> None:
    """Document PATCH fields as optional but never null, as `TaskPatch._not_null` enforces."""
    for field_schema in schema.get("properties", {}).values():
        variants = [v for v in field_schema.pop("anyOf", []) if v.get("type") != "null"]
        if len(variants) == 1:
            field_schema.update(variants[0])
        elif variants:
            field_schema["anyOf"] = variants
        field_schema.pop("default", None)


class TaskPatch(RequestModel):
    """PATCH: any subset of the writable fields; none of them may be null."""

    model_config = ConfigDict(extra="forbid", json_schema_extra=_omit_nulls)

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

    model_config = ConfigDict(defer_build=True)

    status: TaskStatus | None = None
    category: str | None = None
    due_before: datetime | None = None
    due_after: datetime | None = None


class TaskPage(BaseModel):
    model_config = ConfigDict(defer_build=True)

    items: list[TaskOut]
    next_cursor: str | None


# Deadline notifications


class NotificationOwner(BaseModel):
    model_config = ConfigDict(defer_build=True)

    id: int
    email: str


class DeadlineNotice(BaseModel):
    """The JSON body of one deadline notification on the SNS topic."""

    model_config = ConfigDict(defer_build=True)

    event_type: Literal["task.due_soon", "task.overdue"]
    # Stable per task, stage and deadline: subscribers can de-duplicate on it.
    notification_id: str
    checked_at: UtcDatetime
    task: TaskOut
    owner: NotificationOwner


class ScheduledRun(BaseModel):
    """What EventBridge Scheduler sends (template.yaml's Input); every field is optional."""

    model_config = ConfigDict(extra="ignore", populate_by_name=True, defer_build=True)

    schedule_arn: str | None = Field(default=None, alias="scheduleArn")
    scheduled_time: UtcDatetime | None = Field(default=None, alias="scheduledTime")
    execution_id: str | None = Field(default=None, alias="executionId")
    attempt_number: int | None = Field(default=None, alias="attemptNumber")


class DeadlineCheckSummary(BaseModel):
    """The deadline check's result (the function's return value)."""

    model_config = ConfigDict(defer_build=True)

    checked_at: UtcDatetime
    publisher: Literal["sns", "log"]
    due_soon: int = 0  # notifications published
    overdue: int = 0
    failed: int = 0  # publishes that failed; those tasks stay unclaimed for the next run
    emails_sent: int = 0
    emails_failed: int = 0  # rejected by SES for one recipient; not retried
    batches: int = 0
    complete: bool = True  # False: stopped early to stay within the time limit; next run resumes
