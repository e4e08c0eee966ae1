"""Typed SQLAlchemy models: the database schema as Python classes."""

from __future__ import annotations

import uuid
from datetime import datetime
from enum import StrEnum
from typing import Any

from sqlalchemy import (
    BigInteger,
    Boolean,
    CheckConstraint,
    Computed,
    DateTime,
    Enum,
    ForeignKey,
    ForeignKeyConstraint,
    Identity,
    Index,
    Integer,
    LargeBinary,
    MetaData,
    SmallInteger,
    String,
    Text,
    UniqueConstraint,
    Uuid,
    func,
    text,
)
from sqlalchemy.dialects.postgresql import JSONB
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column

from taskline.domain import (
    MAX_LEAD_MINUTES,
    MAX_LIST_NAME_CHARS,
    MIN_LEAD_MINUTES,
    ListRole,
    NotificationStage,
    QuotaScope,
    SuppressionReason,
    TaskStatus,
    ThrottleScope,
)

# Deterministic constraint names, so Alembic migrations can refer to them.
NAMING_CONVENTION = {
    "ix": "ix_%(table_name)s_%(column_0_N_name)s",
    "uq": "uq_%(table_name)s_%(column_0_N_name)s",
    "ck": "ck_%(table_name)s_%(constraint_name)s",
    "fk": "fk_%(table_name)s_%(column_0_name)s_%(referred_table_name)s",
    "pk": "pk_%(table_name)s",
}


# The one definition of "open task"; the deadline indexes and the deadline query must agree on it
# word for word, or PostgreSQL cannot prove the query may use the partial index.
OPEN_TASK_SQL = "status <> 'Done'"


def _stored_as_text(enum: type[StrEnum], length: int) -> Enum:
    """An enum column stored as its members' values in a VARCHAR(length), as the migrations
    created it: no PostgreSQL enum type, and no constraint of the type's own (each table
    declares its CHECK by name below)."""
    return Enum(
        enum,
        native_enum=False,
        create_constraint=False,
        length=length,
        values_callable=lambda members: [member.value for member in members],
    )


class Base(DeclarativeBase):
    metadata = MetaData(naming_convention=NAMING_CONVENTION)
    type_annotation_map = {datetime: DateTime(timezone=True)}  # noqa: RUF012 - SQLAlchemy API


class User(Base):
    __tablename__ = "users"

    id: Mapped[int] = mapped_column(BigInteger, Identity(), primary_key=True)
    email: Mapped[str] = mapped_column(String(320))
    password_hash: Mapped[str] = mapped_column(String(255))
    created_at: Mapped[datetime] = mapped_column(server_default=func.now())
    # When its owner last proved they read this address (a signed link); NULL: never. No
    # reminder or invitation email goes to an address that is not verified.
    email_verified_at: Mapped[datetime | None]

    __table_args__ = (
        # One account per email whatever its case: A@x.io and a@x.io collide here.
        Index("uq_users_email_lower", func.lower(email), unique=True),
    )


class TaskList(Base):
    """A list shared between accounts. Its owner is also a member (role "owner").

    Exactly one owner, enforced by the database: `(id, owner_id, owner_role)` must name a member
    row whose role is "owner" (a deferred foreign key, so ownership can be handed over within a
    transaction), and at most one member row per list has that role (a partial unique index).
    """

    __tablename__ = "lists"

    id: Mapped[int] = mapped_column(BigInteger, Identity(), primary_key=True)
    name: Mapped[str] = mapped_column(String(MAX_LIST_NAME_CHARS))
    owner_id: Mapped[int] = mapped_column(BigInteger)
    # Always "owner": only here so the foreign key below can require the owner's role.
    owner_role: Mapped[str] = mapped_column(String(10), Computed("'owner'", persisted=True))
    created_at: Mapped[datetime] = mapped_column(server_default=func.now())
    updated_at: Mapped[datetime] = mapped_column(server_default=func.now())

    __table_args__ = (
        CheckConstraint(
            f"char_length(name) BETWEEN 1 AND {MAX_LIST_NAME_CHARS}", name="name_length"
        ),
        ForeignKeyConstraint(
            ["id", "owner_id", "owner_role"],
            ["list_members.list_id", "list_members.user_id", "list_members.role"],
            name="fk_lists_owner_list_members",
            deferrable=True,
            initially="DEFERRED",
            use_alter=True,
        ),
    )


class ListMember(Base):
    __tablename__ = "list_members"

    list_id: Mapped[int] = mapped_column(
        BigInteger, ForeignKey(TaskList.id, ondelete="CASCADE"), primary_key=True
    )
    user_id: Mapped[int] = mapped_column(
        BigInteger, ForeignKey(User.id, ondelete="CASCADE"), primary_key=True
    )
    role: Mapped[ListRole] = mapped_column(_stored_as_text(ListRole, 10))
    joined_at: Mapped[datetime] = mapped_column(server_default=func.now())

    __table_args__ = (
        CheckConstraint(role.in_([member.value for member in ListRole]), name="role_valid"),
        # The target of the lists' owner key (the primary key plus the role).
        UniqueConstraint("list_id", "user_id", "role"),
        # At most one owner per list.
        Index(
            "uq_list_members_one_owner",
            "list_id",
            unique=True,
            postgresql_where=text("role = 'owner'"),
        ),
        # "The lists I belong to", in every visibility check.
        Index("ix_list_members_user_id_list_id", "user_id", "list_id"),
    )


class ListInvitation(Base):
    """A pending invitation to a list, addressed to an email (normalised as at sign-up)."""

    __tablename__ = "list_invitations"

    id: Mapped[int] = mapped_column(BigInteger, Identity(), primary_key=True)
    list_id: Mapped[int] = mapped_column(BigInteger, ForeignKey(TaskList.id, ondelete="CASCADE"))
    email: Mapped[str] = mapped_column(String(320))
    role: Mapped[ListRole] = mapped_column(_stored_as_text(ListRole, 10))
    invited_by: Mapped[int] = mapped_column(
        BigInteger, ForeignKey(User.id, ondelete="CASCADE"), index=True
    )
    created_at: Mapped[datetime] = mapped_column(server_default=func.now())
    expires_at: Mapped[datetime]

    __table_args__ = (
        # Invitations make members, never owners.
        CheckConstraint(
            role.in_([ListRole.EDITOR.value, ListRole.VIEWER.value]), name="role_valid"
        ),
        # A pending invitation to the same address is renewed, not duplicated.
        UniqueConstraint("list_id", "email"),
        # "The invitations addressed to me".
        Index("ix_list_invitations_email", "email"),
    )


class Task(Base):
    __tablename__ = "tasks"

    id: Mapped[int] = mapped_column(BigInteger, Identity(), primary_key=True)
    # A personal task has its owner here and no list; a list's task has a list and no owner
    # (so it outlives its creator's account, and releases that predate lists never see it).
    user_id: Mapped[int | None] = mapped_column(BigInteger, ForeignKey(User.id, ondelete="CASCADE"))
    list_id: Mapped[int | None] = mapped_column(
        BigInteger, ForeignKey(TaskList.id, ondelete="CASCADE")
    )
    description: Mapped[str] = mapped_column(Text)
    category: Mapped[str] = mapped_column(String(255))
    deadline: Mapped[datetime]
    status: Mapped[TaskStatus] = mapped_column(
        _stored_as_text(TaskStatus, 20), server_default=TaskStatus.TODO.value
    )
    created_at: Mapped[datetime] = mapped_column(server_default=func.now())
    updated_at: Mapped[datetime] = mapped_column(server_default=func.now())
    # Who created it (NULL for tasks written before lists, whose creator is user_id, and once
    # the creator's account is deleted).
    created_by: Mapped[int | None] = mapped_column(
        BigInteger, ForeignKey(User.id, ondelete="SET NULL")
    )
    # A list's task may be assigned to one of its members (the foreign key to list_members
    # clears it when the member leaves); a personal task only to its owner.
    assignee_id: Mapped[int | None] = mapped_column(BigInteger)
    # Who the reminders of a list's task go to (its assignee, else its creator while a member,
    # else the list's owner), kept up to date on every write that changes it; NULL for a
    # personal task, whose recipient is user_id.
    recipient_id: Mapped[int | None] = mapped_column(
        BigInteger, ForeignKey(User.id, ondelete="SET NULL")
    )
    # The owner's per-task reminder: minutes before the deadline; NULL: the account's lead time.
    remind_before: Mapped[int | None] = mapped_column(Integer)
    # When the deadline check sends each stage, computed on every write from the deadline, the
    # reminder and the recipient's preferences (repositories.task_repository.schedule); NULL: never.
    due_soon_at: Mapped[datetime | None]
    overdue_at: Mapped[datetime | None]

    @property
    def creator_id(self) -> int | None:
        """Who created it, as the API shows it: a task written before lists (created_by NULL,
        still personal) was created by its owner."""
        return self.user_id if self.created_by is None else self.created_by

    __table_args__ = (
        CheckConstraint(
            status.in_([member.value for member in TaskStatus]),
            name="status_valid",
        ),
        CheckConstraint(
            f"remind_before BETWEEN {MIN_LEAD_MINUTES} AND {MAX_LEAD_MINUTES}",
            name="remind_before_range",
        ),
        CheckConstraint("(user_id IS NULL) <> (list_id IS NULL)", name="one_home"),
        CheckConstraint(
            "list_id IS NOT NULL OR assignee_id IS NULL OR assignee_id = user_id",
            name="personal_assignee",
        ),
        ForeignKeyConstraint(
            ["list_id", "assignee_id"],
            ["list_members.list_id", "list_members.user_id"],
            name="fk_tasks_assignee_list_members",
            ondelete="SET NULL (assignee_id)",
        ),
        # Serves "my tasks ordered by deadline, then id", the list endpoint's keyset order.
        Index("ix_tasks_user_id_deadline_id", "user_id", "deadline", "id"),
        # The same order within each list, and the cascade when a list is deleted.
        Index(
            "ix_tasks_list_id_deadline_id",
            "list_id",
            "deadline",
            "id",
            postgresql_where=text("list_id IS NOT NULL"),
        ),
        # A member's assignments (the assignee filter, and clearing them when they leave).
        Index(
            "ix_tasks_list_id_assignee_id",
            "list_id",
            "assignee_id",
            postgresql_where=text("assignee_id IS NOT NULL"),
        ),
        # The calendar feed of a recipient's list tasks.
        Index(
            "ix_tasks_recipient_id_deadline_id",
            "recipient_id",
            "deadline",
            "id",
            postgresql_where=text("recipient_id IS NOT NULL"),
        ),
        # An account's deletion clears created_by without a scan.
        Index("ix_tasks_created_by", "created_by", postgresql_where=text("created_by IS NOT NULL")),
        # Serve the deadline check, one stage each: open tasks by the time that stage is due;
        # done tasks are not indexed, and NULLs (stage off) sort after every range scanned.
        Index(
            "ix_tasks_open_due_soon_at", "due_soon_at", "id", postgresql_where=text(OPEN_TASK_SQL)
        ),
        Index("ix_tasks_open_overdue_at", "overdue_at", "id", postgresql_where=text(OPEN_TASK_SQL)),
    )


class TaskNotification(Base):
    """A deadline notification claimed (and, once committed, sent) for a task.

    The key holds the deadline it was sent for, so a new deadline re-arms every stage.
    """

    __tablename__ = "task_notifications"

    task_id: Mapped[int] = mapped_column(
        BigInteger, ForeignKey(Task.id, ondelete="CASCADE"), primary_key=True
    )
    stage: Mapped[str] = mapped_column(String(20), primary_key=True)
    deadline: Mapped[datetime] = mapped_column(primary_key=True)
    notified_at: Mapped[datetime] = mapped_column(server_default=func.now())
    # SNS's MessageId; NULL when the notification went to the log (no topic configured).
    message_id: Mapped[str | None] = mapped_column(String(100))

    __table_args__ = (
        CheckConstraint(
            stage.in_([member.value for member in NotificationStage]), name="stage_valid"
        ),
    )


class NotificationPreference(Base):
    """What an account wants from the deadline check. No row: the defaults (everything on, the
    operator's DEADLINE_DUE_SOON_MINUTES as lead time)."""

    __tablename__ = "notification_preferences"

    user_id: Mapped[int] = mapped_column(
        BigInteger, ForeignKey(User.id, ondelete="CASCADE"), primary_key=True
    )
    email_enabled: Mapped[bool] = mapped_column(Boolean)
    due_soon_enabled: Mapped[bool] = mapped_column(Boolean)
    overdue_enabled: Mapped[bool] = mapped_column(Boolean)
    due_soon_minutes: Mapped[int] = mapped_column(Integer)
    # When email was last switched back on (NULL: never switched off and on): unsubscribe links
    # issued before it no longer switch it off, so an old email cannot undo a later opt-in.
    email_enabled_at: Mapped[datetime | None]
    updated_at: Mapped[datetime] = mapped_column(server_default=func.now())

    __table_args__ = (
        CheckConstraint(
            f"due_soon_minutes BETWEEN {MIN_LEAD_MINUTES} AND {MAX_LEAD_MINUTES}",
            name="due_soon_minutes_range",
        ),
    )


class EmailSuppression(Base):
    """An address that must get no more email: SES reported a permanent bounce or a complaint,
    or its recipient unsubscribed with one click. It sticks to the address, not to an account's
    settings: only a fresh verification of the address by its owner lifts it."""

    __tablename__ = "email_suppressions"

    # lower(email), as accounts compare emails.
    address: Mapped[str] = mapped_column(String(320), primary_key=True)
    reason: Mapped[str] = mapped_column(String(20))
    # SES's feedbackId (bounce or complaint), to trace the report.
    feedback_id: Mapped[str | None] = mapped_column(String(200))
    created_at: Mapped[datetime] = mapped_column(server_default=func.now())

    __table_args__ = (
        CheckConstraint(
            reason.in_([member.value for member in SuppressionReason]), name="reason_valid"
        ),
    )


class CalendarFeed(Base):
    """An account's secret calendar feed URL, stored only as the SHA-256 of its secret."""

    __tablename__ = "calendar_feeds"

    user_id: Mapped[int] = mapped_column(
        BigInteger, ForeignKey(User.id, ondelete="CASCADE"), primary_key=True
    )
    secret_hash: Mapped[bytes] = mapped_column(LargeBinary(32), unique=True)
    created_at: Mapped[datetime] = mapped_column(server_default=func.now())


class SignIn(Base):
    """One sign-in: a family of refresh tokens, each replacing the one before (RFC 6749 section 6).

    Access tokens name their sign-in in the `sid` claim. Ending a sign-in (logging out) deletes
    its row, and with it every refresh token of the family. The table keeps the name migration
    0003 gave it: renaming a live table would break the versions still serving during a deploy.
    """

    __tablename__ = "auth_sessions"

    id: Mapped[uuid.UUID] = mapped_column(Uuid, primary_key=True)
    user_id: Mapped[int] = mapped_column(
        BigInteger, ForeignKey(User.id, ondelete="CASCADE"), index=True
    )
    created_at: Mapped[datetime]
    expires_at: Mapped[datetime]  # the absolute end, however often the sign-in is refreshed


class RefreshToken(Base):
    """A refresh token, stored only as the SHA-256 of the opaque random string the client holds.

    `used_at` is set when it is exchanged; presenting a used token again ends its sign-in.
    """

    __tablename__ = "refresh_tokens"

    token_hash: Mapped[bytes] = mapped_column(LargeBinary(32), primary_key=True)
    sign_in_id: Mapped[uuid.UUID] = mapped_column(  # the column keeps its name from 0003
        "session_id", Uuid, ForeignKey(SignIn.id, ondelete="CASCADE"), index=True
    )
    created_at: Mapped[datetime]
    expires_at: Mapped[datetime]
    used_at: Mapped[datetime | None]


class LoginThrottle(Base):
    """Failed (or pending) password checks of one account or source IP in the current window."""

    __tablename__ = "login_throttles"

    scope: Mapped[str] = mapped_column(String(16), primary_key=True)
    subject: Mapped[str] = mapped_column(String(64), primary_key=True)
    failures: Mapped[int] = mapped_column(Integer)
    window_started_at: Mapped[datetime] = mapped_column(index=True)
    blocked_until: Mapped[datetime | None]

    __table_args__ = (
        CheckConstraint(scope.in_([member.value for member in ThrottleScope]), name="scope_valid"),
    )


class IdempotencyKey(Base):
    """A client's Idempotency-Key for POST /tasks and the first result it produced.

    The row is inserted (claiming the key) in the same transaction that creates the task and
    stores the response, so other transactions only ever see a key with its result.
    """

    __tablename__ = "idempotency_keys"

    user_id: Mapped[int] = mapped_column(
        BigInteger, ForeignKey(User.id, ondelete="CASCADE"), primary_key=True
    )
    key: Mapped[str] = mapped_column(String(255), primary_key=True)
    request_hash: Mapped[str] = mapped_column(String(64))  # SHA-256 of the validated request
    # The first response exactly as it was sent, replayed byte for byte.
    response_status: Mapped[int | None] = mapped_column(SmallInteger)
    response_headers: Mapped[dict[str, str] | None] = mapped_column(JSONB)
    response_body: Mapped[str | None] = mapped_column(Text)
    # Rows written before migration 0005 hold the first task here instead, as JSON.
    response: Mapped[dict[str, Any] | None] = mapped_column(JSONB)
    created_at: Mapped[datetime] = mapped_column(server_default=func.now())

    __table_args__ = (
        # Serves the purge of expired keys.
        Index("ix_idempotency_keys_created_at", "created_at"),
    )


class SendQuota(Base):
    """Emails an account caused in the current window (verification links, invitations)."""

    __tablename__ = "send_quotas"

    scope: Mapped[str] = mapped_column(String(32), primary_key=True)
    subject: Mapped[str] = mapped_column(String(64), primary_key=True)
    window_started_at: Mapped[datetime]
    sent: Mapped[int] = mapped_column(Integer)

    __table_args__ = (
        CheckConstraint(scope.in_([member.value for member in QuotaScope]), name="scope_valid"),
    )
