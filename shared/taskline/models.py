"""Typed SQLAlchemy models: the database schema as Python classes."""

from __future__ import annotations

from datetime import datetime
from enum import StrEnum

from sqlalchemy import (
    BigInteger,
    CheckConstraint,
    DateTime,
    ForeignKey,
    Identity,
    Index,
    MetaData,
    String,
    Text,
    func,
    text,
)
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column

# Deterministic constraint names, so Alembic migrations can refer to them.
NAMING_CONVENTION = {
    "ix": "ix_%(table_name)s_%(column_0_N_name)s",
    "uq": "uq_%(table_name)s_%(column_0_N_name)s",
    "ck": "ck_%(table_name)s_%(constraint_name)s",
    "fk": "fk_%(table_name)s_%(column_0_name)s_%(referred_table_name)s",
    "pk": "pk_%(table_name)s",
}


class TaskStatus(StrEnum):
    TODO = "To Do"
    IN_PROGRESS = "In Progress"
    DONE = "Done"


# The one definition of "open task"; the deadline index and the deadline query must agree on it
# word for word, or PostgreSQL cannot prove the query may use the partial index.
OPEN_TASK_SQL = "status <> 'Done'"


class NotificationStage(StrEnum):
    """The deadline notifications a task can get, each at most once per deadline."""

    DUE_SOON = "due_soon"
    OVERDUE = "overdue"

    @property
    def event_type(self) -> str:
        """`task.due_soon` / `task.overdue`: the SNS `event_type` attribute."""
        return f"task.{self.value}"


class Base(DeclarativeBase):
    metadata = MetaData(naming_convention=NAMING_CONVENTION)
    type_annotation_map = {datetime: DateTime(timezone=True)}  # noqa: RUF012 - SQLAlchemy API


class User(Base):
    __tablename__ = "users"

    id: Mapped[int] = mapped_column(BigInteger, Identity(), primary_key=True)
    email: Mapped[str] = mapped_column(String(320))
    password_hash: Mapped[str] = mapped_column(String(255))
    created_at: Mapped[datetime] = mapped_column(server_default=func.now())

    __table_args__ = (
        # One account per email whatever its case: A@x.io and a@x.io collide here.
        Index("uq_users_email_lower", func.lower(email), unique=True),
    )


class Task(Base):
    __tablename__ = "tasks"

    id: Mapped[int] = mapped_column(BigInteger, Identity(), primary_key=True)
    user_id: Mapped[int] = mapped_column(BigInteger, ForeignKey(User.id, ondelete="CASCADE"))
    description: Mapped[str] = mapped_column(Text)
    category: Mapped[str] = mapped_column(String(255))
    deadline: Mapped[datetime]
    status: Mapped[str] = mapped_column(String(20), server_default=TaskStatus.TODO.value)
    created_at: Mapped[datetime] = mapped_column(server_default=func.now())
    updated_at: Mapped[datetime] = mapped_column(server_default=func.now())

    __table_args__ = (
        CheckConstraint(
            status.in_([member.value for member in TaskStatus]),
            name="status_valid",
        ),
        # Serves "my tasks ordered by deadline, then id", the list endpoint's keyset order.
        Index("ix_tasks_user_id_deadline_id", "user_id", "deadline", "id"),
        # Serves the deadline check: open tasks by (deadline, id); done tasks are not indexed.
        Index("ix_tasks_open_deadline", "deadline", "id", postgresql_where=text(OPEN_TASK_SQL)),
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
