"""Pydantic models for what goes over the wire. Requests forbid unknown fields."""

from __future__ import annotations

import copy
import functools
import operator
import re
from datetime import UTC, datetime
from types import UnionType
from typing import (
    TYPE_CHECKING,
    Annotated,
    Any,
    ClassVar,
    Literal,
    Union,
    Unpack,
    get_args,
    get_origin,
)

from pydantic import (
    AfterValidator,
    AliasChoices,
    BaseModel,
    BeforeValidator,
    ConfigDict,
    Field,
    GetJsonSchemaHandler,
    Strict,
    StringConstraints,
    ValidationInfo,
    create_model,
    field_validator,
)
from pydantic.fields import FieldInfo
from pydantic.json_schema import JsonSchemaValue
from pydantic_core import CoreSchema, PydanticUndefined

from taskline.domain import (
    MAX_LEAD_MINUTES,
    MAX_LIST_NAME_CHARS,
    MAX_PASSWORD_BYTES,
    MIN_LEAD_MINUTES,
    MIN_PASSWORD_CHARS,
    ListRole,
    TaskStatus,
)
from taskline.emails import MAX_EMAIL_CHARS, login_email, normalize_email

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


class OmittedNotNull:
    """For optional query and header parameters (`T | None = None`): the document says the
    parameter may be left out, not that it may be null (no query or header can be null)."""

    def __get_pydantic_json_schema__(
        self, core_schema: CoreSchema, handler: GetJsonSchemaHandler
    ) -> JsonSchemaValue:
        schema = handler(core_schema)
        variants = [v for v in schema.get("anyOf", []) if v.get("type") != "null"]
        if len(variants) == 1:
            del schema["anyOf"]
            schema.update(variants[0])
        return schema


# Text fields hold no C0 control character but tab, newline and carriage return (PostgreSQL text
# cannot hold NUL, and the others are never wanted), and at least one character that is not
# whitespace as str.strip() sees it. The pattern is what the OpenAPI document publishes; the
# validators below enforce the same rule with clearer messages (tests/http/test_input_edges.py
# checks that the two agree). It uses only \xHH and \uHHHH escapes, which ECMA-262, Python and
# Rust all read.
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


_CANONICAL_ID = re.compile(r"[1-9][0-9]{0,15}")


def canonical_task_id(value: Any) -> int:
    """One task, one URL: a path id is digits without a sign, leading zeros, `_` or a
    fraction (int() and pydantic would take `+7`, `07`, `7.0` and `7_0` for 7 or 70), from 1
    to 2**53 - 1."""
    if not isinstance(value, str) or not _CANONICAL_ID.fullmatch(value):
        raise ValueError("must be a positive integer written in digits, without leading zeros")
    number = int(value)
    if number > MAX_JSON_SAFE_INTEGER:
        raise ValueError(f"must be at most {MAX_JSON_SAFE_INTEGER}")
    return number


def _lone_surrogates_replaced(value: Any) -> Any:
    # JSON can carry lone surrogates, which pydantic refuses as text; in a token to revoke
    # they just make it one we never issued ("?" is in none of ours).
    if isinstance(value, str):
        try:
            value.encode()
        except UnicodeEncodeError:
            return value.encode(errors="replace").decode()
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
# An address as sign-up stores it (taskline.emails: NFC, IDNA domain, lower-case domain).
EmailAddress = Annotated[
    str,
    StringConstraints(max_length=MAX_EMAIL_CHARS),
    AfterValidator(normalize_email),
    WithJsonSchemaExtra(format="email"),
]
# A login email is looked up, never stored, and normalised as sign-up does. One with NUL or
# other control characters is just an email no account has (invalid_grant after one bcrypt
# check); repositories keep NUL, which PostgreSQL text cannot hold, out of SQL.
LoginName = Annotated[str, AfterValidator(_encodable), AfterValidator(login_email)]


def _json_integer(value: Any) -> Any:
    """What JSON Schema calls an integer: a number with no fractional part (120 or 120.0), never
    a string or a boolean (which pydantic's lax mode would take)."""
    if isinstance(value, bool) or not isinstance(value, int | float):
        raise ValueError("must be a whole number of minutes")
    if isinstance(value, float):
        if not value.is_integer():
            raise ValueError("must be a whole number of minutes")
        return int(value)
    return value


# A reminder's lead time in whole minutes.
# (Field first: after a validator, pydantic would publish ge/le as unknown JSON Schema keys.)
LeadMinutes = Annotated[
    int, Field(ge=MIN_LEAD_MINUTES, le=MAX_LEAD_MINUTES), BeforeValidator(_json_integer)
]
RemindBefore = Annotated[
    int,
    Field(
        ge=MIN_LEAD_MINUTES,
        le=MAX_LEAD_MINUTES,
        description="Optional per-task reminder: the `task.due_soon` notification (and email) "
        f"comes this many minutes before the deadline ({MIN_LEAD_MINUTES} to "
        f"{MAX_LEAD_MINUTES}, i.e. up to 7 days), instead of the account's `due_soon_minutes`, "
        "even when the account has switched due-soon reminders off. `null` or absent: the "
        "account's setting. Changing it re-arms the reminder.",
        examples=[120],
    ),
    BeforeValidator(_json_integer),
]
StrictFlag = Annotated[bool, Strict()]


def examples(*values: Any, **config: Unpack[ConfigDict]) -> ConfigDict:
    """A model's configuration with its OpenAPI examples (and any other settings)."""
    return ConfigDict(json_schema_extra={"examples": list(values)}, **config)


# Every schema builds its validator on first use (defer_build), not at import: a function's
# cold start then pays only for the schemas its first request uses (docs/performance.md).
class RequestModel(BaseModel):
    model_config = ConfigDict(extra="forbid", defer_build=True)


class ResponseModel(BaseModel):
    model_config = ConfigDict(from_attributes=True, defer_build=True)


# Realistic examples, in every schema and request body of the OpenAPI document (Swagger UI's
# "Try it out" starts from them). Each one passes its schema, and
# tests/http/test_openapi_examples.py sends every request example to a live local server.
EXAMPLE_EMAIL = "ada@example.com"
EXAMPLE_PASSWORD = "correct horse battery"
EXAMPLE_TASK: dict[str, Any] = {
    "description": "Write the quarterly report",
    "category": "work",
    "deadline": "2030-01-15T09:00:00Z",
    "status": "To Do",
}


def _json_id(value: Any) -> Any:
    """What JSON Schema calls an integer (7 or 7.0), never a string or a boolean."""
    if isinstance(value, bool) or not isinstance(value, int | float):
        raise ValueError("must be an id (a whole number)")
    if isinstance(value, float):
        if not value.is_integer():
            raise ValueError("must be an id (a whole number)")
        return int(value)
    return value


# A list or account id, as the API writes them: a positive integer within JSON's safe range.
# (Field first: after a validator, pydantic would publish ge/le as unknown JSON Schema keys.)
_ID_RANGE = Field(ge=1, le=MAX_JSON_SAFE_INTEGER)
ListId = Annotated[
    int,
    _ID_RANGE,
    BeforeValidator(_json_id),
    Field(
        description="The shared list the task is in; `null` or absent: the caller's personal "
        "task. Creating a task in a list, or moving one into or out of a list, needs the "
        "owner's or an editor's role in it (and in the list it leaves).",
        examples=[7],
    ),
]
AssigneeId = Annotated[
    int,
    _ID_RANGE,
    BeforeValidator(_json_id),
    Field(
        description="Who the task is assigned to (their reminders follow it): a member of the "
        "task's list; for a personal task only its owner. `null`: nobody. A move to another "
        "list clears an assignee who is not a member there.",
        examples=[3],
    ),
]


# Accounts and tokens


class UserCreate(RequestModel):
    # Built on first use: validating an email imports email-validator, which only the auth
    # function needs.
    model_config = examples({"email": EXAMPLE_EMAIL, "password": EXAMPLE_PASSWORD})

    email: EmailAddress = Field(
        description="Compared case-insensitively; stored normalised (Unicode NFC, the domain "
        "in Unicode and lower case), and logins normalise the same way. Special-use domains "
        "(RFC 6761: .test, .local, .localhost, .invalid, .onion, .arpa) cannot receive mail "
        "and are refused.",
    )
    password: NewPassword


class UserOut(ResponseModel):
    model_config = examples(
        {"id": 7, "email": EXAMPLE_EMAIL, "created_at": "2029-12-01T08:00:00.654321Z"}
    )

    id: int
    email: str
    created_at: UtcDatetime


class ProfileOut(UserOut):
    """GET /users/me: the account, and whether its owner has verified its address."""

    model_config = examples(
        {
            "id": 7,
            "email": EXAMPLE_EMAIL,
            "created_at": "2029-12-01T08:00:00.654321Z",
            "email_verified": True,
        }
    )

    email_verified: bool = Field(
        description="Whether the owner opened the verification link sent to this address. "
        "No reminder or invitation email goes to an address that is not verified."
    )

    @classmethod
    def of(cls, user: Any) -> ProfileOut:
        return cls(
            id=user.id,
            email=user.email,
            created_at=user.created_at,
            email_verified=user.email_verified_at is not None,
        )


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

    # No upper bound: an over-long refresh token is just one we never issued (invalid_grant,
    # decided on a bounded prefix); the 64 KiB body limit bounds it anyway.
    grant_type: Literal["refresh_token"]
    refresh_token: EncodableText = Field(min_length=1)


class TokenOut(BaseModel):
    model_config = examples(
        {
            "access_token": "eyJhbGciOiJIUzI1NiIsImtpZCI6IjNmOWMxYjJhN2U0ZDVjNjgiLCJ0eXAi"
            "OiJKV1QifQ.eyJzdWIiOiI3IiwiaWF0IjoxODkzNDU2MDAwLCJleHAiOjE4OTM0NTY5MDB9."
            "n2Jk4V9Qd3Yb8sXcM1tRzLwP0aEfGhIjKlMnOpQrStU",
            "token_type": "bearer",
            "expires_in": 900,
            "refresh_token": "qinEqv3Zk1b0fQ9m6h2Yx4Tt8pLw5sRcNdAe7uJgKoI",
        },
        defer_build=True,
    )

    access_token: str
    token_type: Literal["bearer"] = "bearer"
    expires_in: int
    refresh_token: str


class TokenRevocation(BaseModel):
    """POST /token/revoke (RFC 7009). `token_type_hint` is accepted and not needed: the two
    kinds of token are told apart by their shape, as RFC 7009 section 2.1 allows."""

    model_config = ConfigDict(extra="ignore", defer_build=True)

    # Any text: RFC 7009 section 2.2 answers 200 for any token the server does not know,
    # whatever its length or content; only a missing (or empty) one is invalid_request.
    token: Annotated[str, BeforeValidator(_lone_surrogates_replaced)] = Field(min_length=1)


class PasswordChange(RequestModel):
    model_config = examples(
        {"current_password": EXAMPLE_PASSWORD, "new_password": "a new long passphrase"}
    )

    # No upper bound: an over-long current password is a wrong one (403), as at login.
    current_password: EncodableText = Field(min_length=1)
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

    model_config = examples({"password": EXAMPLE_PASSWORD})

    password: EncodableText = Field(min_length=1)  # over-long: a wrong password (403)


# Tasks


class TaskFields(RequestModel):
    """A task's writable fields, each declared once: its type, its rules and its default on
    POST. TaskCreate is this; TaskReplace, TaskPatch and TaskOut are derived from it below, so a
    new field is one line here (and its column, migration and tests)."""

    description: Description
    category: Category
    deadline: Timestamp
    status: TaskStatus = TaskStatus.TODO
    remind_before: RemindBefore | None = None
    list_id: ListId | None = None
    assignee_id: AssigneeId | None = None


# The example task as responses show it: fields EXAMPLE_TASK leaves out at their defaults.
EXAMPLE_TASK_OUT: dict[str, Any] = {
    "id": 42,
    **{
        name: field.default
        for name, field in TaskFields.model_fields.items()
        if not field.is_required() and field.default is not None
    },
    **EXAMPLE_TASK,
    "created_at": "2029-12-01T08:30:00.123456Z",
    "updated_at": "2029-12-01T08:30:00.123456Z",
    "created_by": 7,
}


class TaskCreate(TaskFields):
    model_config = examples(
        EXAMPLE_TASK,
        {
            "description": "Renew passport",
            "category": "home",
            "deadline": "2030-03-01T17:00:00+01:00",
        },
    )


def _nullable(field: FieldInfo) -> bool:
    return field.default is None


def _replace_fields(model: type[BaseModel]) -> dict[str, Any]:
    """PUT's version of the fields: each one required, but a nullable one (absent: null)."""
    return {
        name: (field.annotation, _copy(field, None if _nullable(field) else PydanticUndefined))
        for name, field in model.model_fields.items()
    }


def _patch_fields(model: type[BaseModel]) -> dict[str, Any]:
    """PATCH's version: each one optional (None: not sent)."""
    return {
        name: (_with_metadata(field) | None, _copy(field, None, keep_metadata=False))
        for name, field in model.model_fields.items()
    }


def _shown_fields(model: type[BaseModel], **kept: Any) -> dict[str, Any]:
    """The fields as responses show them: their plain types, without the input rules (what was
    stored passed them already), timestamps in UTC. The fields every task has come first, then
    those the server keeps (`kept`), then the nullable ones."""
    always: dict[str, Any] = {}
    nullable: dict[str, Any] = {}
    for name, field in model.model_fields.items():
        description = TASK_OUT_DESCRIPTIONS.get(name)
        if _nullable(field):
            nullable[name] = (_plain(field.annotation), Field(None, description=description))
        else:
            always[name] = (_plain(field.annotation), Field(description=description))
    return {**always, **kept, **nullable}


def _plain(annotation: Any) -> Any:
    if get_origin(annotation) is Annotated:
        return _plain(get_args(annotation)[0])
    if isinstance(annotation, UnionType) or get_origin(annotation) is Union:
        return functools.reduce(operator.or_, (_plain(member) for member in get_args(annotation)))
    if annotation is datetime:
        return UtcDatetime
    return annotation


def _with_metadata(field: FieldInfo) -> Any:
    return Annotated[(field.annotation, *field.metadata)] if field.metadata else field.annotation


def _copy(field: FieldInfo, default: Any, *, keep_metadata: bool = True) -> Any:
    copied = copy.copy(field)
    copied.default = default
    if not keep_metadata:
        copied.metadata = []
    return copied


# How responses describe a field, where that is not how requests do.
TASK_OUT_DESCRIPTIONS = {
    "remind_before": "Minutes before the deadline; null: the account's setting.",
    "list_id": "The shared list the task is in; null: a personal task.",
    "assignee_id": "The member the task is assigned to; null: nobody.",
}


class PatchModel(RequestModel):
    """A PATCH body: any subset of the fields. None of them may be null, but those in
    `nullable` (where null means something: remind_before goes back to the account's)."""

    nullable: ClassVar[frozenset[str]] = frozenset()

    @field_validator("*", mode="before")
    @classmethod
    def _not_null(cls, value: Any, info: ValidationInfo) -> Any:
        if value is None and info.field_name not in cls.nullable:
            raise ValueError("may be omitted but not null")
        return value

    def changes(self) -> dict[str, Any]:
        """Only the fields the client sent."""
        return {name: getattr(self, name) for name in self.model_fields_set}


def _omit_nulls(schema: dict[str, Any], nullable: frozenset[str] = frozenset()) -> None:
    """Document PATCH fields as optional but never null, as `PatchModel._not_null` enforces."""
    for name, field_schema in schema.get("properties", {}).items():
        if name in nullable:
            field_schema.pop("default", None)
            continue
        variants = [v for v in field_schema.pop("anyOf", []) if v.get("type") != "null"]
        if len(variants) == 1:
            field_schema.update(variants[0])
        elif variants:
            field_schema["anyOf"] = variants
        field_schema.pop("default", None)


_TASK_NULLABLE = frozenset(
    name for name, field in TaskFields.model_fields.items() if _nullable(field)
)


def _task_patch_schema(schema: dict[str, Any]) -> None:
    _omit_nulls(schema, _TASK_NULLABLE)
    schema["examples"] = [{"status": "In Progress"}, {"deadline": "2030-01-22T09:00:00Z"}]


if TYPE_CHECKING:  # the static view of the derived classes (mypy cannot follow create_model)
    _TaskReplaceFields = TaskFields

    _TaskPatchFields = PatchModel

    class _TaskShownFields(TaskFields):
        id: int
        created_at: datetime
        updated_at: datetime
        created_by: int | None
else:
    _TaskReplaceFields = create_model(
        "_TaskReplaceFields", __base__=RequestModel, **_replace_fields(TaskFields)
    )
    _TaskPatchFields = create_model(
        "_TaskPatchFields", __base__=PatchModel, **_patch_fields(TaskFields)
    )
    _TaskShownFields = create_model(
        "_TaskShownFields",
        __base__=ResponseModel,
        id=(int, ...),
        **_shown_fields(
            TaskFields,
            created_at=(UtcDatetime, ...),
            updated_at=(UtcDatetime, ...),
            # Read-only. Tasks written before lists name their owner (their creator).
            created_by=(
                int | None,
                Field(
                    validation_alias=AliasChoices("creator_id", "created_by"),
                    description="Who created the task (read-only); null once their account "
                    "is deleted.",
                ),
            ),
        ),
    )


class TaskReplace(_TaskReplaceFields):
    """PUT: every writable field, no defaults (but remind_before: absent means none; list_id and
    assignee_id: absent means unchanged)."""

    # A client written before lists leaves them out: its PUT must neither move a list's task
    # into its personal tasks nor unassign it.
    kept_when_absent: ClassVar[frozenset[str]] = frozenset({"list_id", "assignee_id"})

    model_config = examples(
        {
            **EXAMPLE_TASK,
            "description": "Write the quarterly report (v2)",
            "status": "In Progress",
        },
    )

    def changes(self) -> dict[str, Any]:
        """Every field, but list_id and assignee_id only when sent."""
        return {
            name: value
            for name, value in self.model_dump().items()
            if name in self.model_fields_set or name not in self.kept_when_absent
        }


class TaskPatch(_TaskPatchFields):
    """PATCH: any subset of the writable fields; none of them may be null."""

    model_config = ConfigDict(json_schema_extra=_task_patch_schema)
    nullable = _TASK_NULLABLE

    if TYPE_CHECKING:  # any subset of TaskFields, by keyword

        def __init__(self, **changes: Any) -> None: ...


class TaskOut(_TaskShownFields):
    model_config = examples(EXAMPLE_TASK_OUT, from_attributes=True)


class TaskPage(BaseModel):
    model_config = ConfigDict(defer_build=True)

    items: list[TaskOut]
    next_cursor: str | None


# Notification preferences, unsubscribing, calendar feeds


class NotificationPreferencesOut(ResponseModel):
    email_enabled: bool = Field(description="Whether deadline emails are sent to this account.")
    due_soon_enabled: bool = Field(description="Whether `task.due_soon` reminders are sent.")
    overdue_enabled: bool = Field(description="Whether `task.overdue` notifications are sent.")
    due_soon_minutes: int = Field(
        description="How long before a deadline the due-soon reminder comes (minutes), for "
        "tasks without their own `remind_before`."
    )
    email_deliverable: bool = Field(
        description="False while the address is not verified, and after its recipient "
        "unsubscribed with one click or SES reported a permanent bounce or a complaint for it: "
        "no email is sent to it until its owner follows a verification link issued since "
        "(`email_enabled: true` does not lift it), or the address changes."
    )
    updated_at: UtcDatetime | None = Field(description="Null: never changed (the defaults).")

    model_config = examples(
        {
            "email_enabled": True,
            "due_soon_enabled": True,
            "overdue_enabled": False,
            "due_soon_minutes": 120,
            "email_deliverable": True,
            "updated_at": "2030-01-14T12:00:00Z",
        }
    )


class NotificationPreferencesReplace(RequestModel):
    """PUT: every preference."""

    model_config = examples(
        {
            "email_enabled": True,
            "due_soon_enabled": True,
            "overdue_enabled": False,
            "due_soon_minutes": 120,
        }
    )

    email_enabled: StrictFlag
    due_soon_enabled: StrictFlag
    overdue_enabled: StrictFlag
    due_soon_minutes: LeadMinutes


def _preferences_patch_schema(schema: dict[str, Any]) -> None:
    _omit_nulls(schema)
    schema["examples"] = [{"email_enabled": False}, {"due_soon_minutes": 60}]


class NotificationPreferencesPatch(PatchModel):
    """PATCH: any subset; none may be null."""

    model_config = ConfigDict(json_schema_extra=_preferences_patch_schema)

    email_enabled: StrictFlag | None = None
    due_soon_enabled: StrictFlag | None = None
    overdue_enabled: StrictFlag | None = None
    due_soon_minutes: LeadMinutes | None = None


class CalendarFeedOut(BaseModel):
    model_config = examples(
        {
            "url": "https://api.example.com/calendar/3q2-7wEXAMPLEsecretEXAMPLEsecret0000000000",
            "webcal_url": "webcal://api.example.com/calendar/3q2-7wEXAMPLEsecretEXAMPLEsecret0000000000",
            "created_at": "2030-01-08T09:00:00Z",
        },
        defer_build=True,
    )

    url: str = Field(
        description="The secret feed URL (https): anyone holding it can read the feed. "
        "Subscribe to it in a calendar app; POST again to rotate it, DELETE to revoke it.",
        examples=["https://api.example.com/calendar/3q2-7wEXAMPLEsecretEXAMPLEsecret0000000000"],
    )
    webcal_url: str = Field(
        description="The same URL with the webcal: scheme, which opens calendar apps.",
        examples=["webcal://api.example.com/calendar/3q2-7wEXAMPLEsecretEXAMPLEsecret0000000000"],
    )
    created_at: UtcDatetime


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
    # Not emailed: the owner switched email off, or SES reported the address undeliverable.
    emails_skipped: int = 0
    batches: int = 0
    complete: bool = True  # False: stopped early to stay within the time limit; next run resumes
    # True: the deadline gate said no reminder can be due yet; the database was not touched.
    skipped: bool = False
    next_due: UtcDatetime | None = None  # when the gate lets the next run in (None: never)


# Shared lists


def _one_line(value: str) -> str:
    """A list name is one line of text: no control characters at all (a name travels into
    emails and page titles, where a line break has no place), surrounding whitespace dropped."""
    if any(ord(char) < 32 or ord(char) == 127 for char in value):
        raise ValueError("must be one line without control characters")
    return _text(value)


_LINE_CHAR = r"[^\x00-\x1F\x7F]"
# One line with at least one visible character (what trimming leaves), as TEXT_PATTERN says it.
LIST_NAME_PATTERN = rf"^{_LINE_CHAR}*(?!\x7F){_VISIBLE_CHAR}{_LINE_CHAR}*$"
# Lengths count the name as sent, before surrounding whitespace is dropped (as for tasks).
ListName = Annotated[
    str,
    StringConstraints(min_length=1, max_length=MAX_LIST_NAME_CHARS),
    WithJsonSchemaExtra(pattern=LIST_NAME_PATTERN),
    AfterValidator(_encodable),
    AfterValidator(_one_line),
]
EXAMPLE_LIST_NAME = "Household"
EXAMPLE_ACCOUNT = {"id": 7, "email": EXAMPLE_EMAIL}
EXAMPLE_LIST_OUT: dict[str, Any] = {
    "id": 12,
    "name": EXAMPLE_LIST_NAME,
    "role": "owner",
    "owner": EXAMPLE_ACCOUNT,
    "member_count": 2,
    "created_at": "2029-12-01T08:00:00.123456Z",
    "updated_at": "2029-12-02T10:15:00.654321Z",
}


class ListCreate(RequestModel):
    model_config = examples({"name": EXAMPLE_LIST_NAME})

    name: ListName = Field(description="1 to 200 characters, one line; trimmed.")


class ListRename(ListCreate):
    model_config = examples({"name": "Groceries"})


class AccountRef(ResponseModel):
    model_config = examples(EXAMPLE_ACCOUNT)

    id: int
    email: str


class ListOut(ResponseModel):
    model_config = examples(EXAMPLE_LIST_OUT, from_attributes=True)

    id: int
    name: str
    role: ListRole = Field(description="The caller's role in the list.")
    owner: AccountRef
    member_count: int
    created_at: UtcDatetime
    updated_at: UtcDatetime


class ListPage(BaseModel):
    model_config = ConfigDict(defer_build=True)

    items: list[ListOut]
    next_cursor: str | None


class MemberOut(ResponseModel):
    model_config = examples(
        {
            "user_id": 9,
            "email": "grace@example.com",
            "role": "editor",
            "joined_at": "2029-12-02T10:15:00.654321Z",
        },
        from_attributes=True,
    )

    user_id: int
    email: str
    role: ListRole
    joined_at: UtcDatetime


class MemberRoleChange(RequestModel):
    model_config = examples({"role": "viewer"}, {"role": "owner"})

    role: ListRole = Field(
        description='`"owner"` hands ownership over: the current owner becomes an editor.'
    )


InvitedRole = Literal[ListRole.EDITOR, ListRole.VIEWER]


class InvitationCreate(RequestModel):
    model_config = examples({"email": "grace@example.com", "role": "editor"})

    email: EmailAddress = Field(description="The addressee, normalised as at sign-up.")
    role: InvitedRole


class ListRef(ResponseModel):
    model_config = examples({"id": 12, "name": EXAMPLE_LIST_NAME})

    id: int
    name: str


class InvitationOut(ResponseModel):
    model_config = examples(
        {
            "id": 31,
            "list": {"id": 12, "name": EXAMPLE_LIST_NAME},
            "email": "grace@example.com",
            "role": "editor",
            "invited_by": EXAMPLE_ACCOUNT,
            "created_at": "2029-12-02T10:15:00.654321Z",
            "expires_at": "2029-12-09T10:15:00.654321Z",
        },
        from_attributes=True,
    )

    id: int
    list: ListRef
    email: str = Field(description="The addressee (lower case, normalised as at sign-up).")
    role: ListRole
    invited_by: AccountRef
    created_at: UtcDatetime
    expires_at: UtcDatetime


class InvitationPage(BaseModel):
    model_config = ConfigDict(defer_build=True)

    items: list[InvitationOut]
    next_cursor: str | None


# Errors, as the OpenAPI document describes them (taskline.api.problems builds them).


class ProblemError(BaseModel):
    loc: list[str | int]
    msg: str
    type: str


class Problem(BaseModel):
    """An RFC 9457 problem (`application/problem+json`); 422s add `errors`, 500s a
    `correlation_id`."""

    model_config = examples(
        {
            "type": "urn:taskline:problem:validation-error",
            "title": "Unprocessable Content",
            "status": 422,
            "detail": "The request is invalid: body.deadline: must be an "
            "RFC 3339 timestamp string, e.g. 2030-01-15T09:00:00Z.",
            "errors": [
                {
                    "loc": ["body", "deadline"],
                    "msg": "must be an RFC 3339 timestamp string, e.g. 2030-01-15T09:00:00Z",
                    "type": "value_error",
                }
            ],
        },
        defer_build=True,
        title="Problem",
    )

    type: str
    title: str
    status: int
    detail: str
    correlation_id: str | None = None
    errors: list[ProblemError] | None = None


class OAuthError(BaseModel):
    """The token endpoints' errors (RFC 6749 section 5.2)."""

    model_config = examples(
        {
            "error": "invalid_grant",
            "error_description": "The email or password is incorrect.",
        },
        defer_build=True,
    )

    error: Literal["invalid_grant", "invalid_request", "unsupported_grant_type", "slow_down"]
    error_description: str
