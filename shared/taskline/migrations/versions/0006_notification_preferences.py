"""Reminders people control: notification preferences, per-task reminders with the time each
stage is due stored on the task, suppressed email addresses, and calendar feeds.

Revision ID: 0006
Revises: 0005
Create Date: 2026-12-01
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0006"
down_revision: str | None = "0005"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

OPEN_TASK = sa.text("status <> 'Done'")


def upgrade() -> None:
    op.add_column("tasks", sa.Column("remind_before", sa.Integer(), nullable=True))
    op.add_column("tasks", sa.Column("due_soon_at", sa.DateTime(timezone=True), nullable=True))
    op.add_column("tasks", sa.Column("overdue_at", sa.DateTime(timezone=True), nullable=True))
    op.create_check_constraint(
        op.f("ck_tasks_remind_before_range"), "tasks", "remind_before BETWEEN 1 AND 10080"
    )
    # Existing tasks: no account has preferences yet, so every stage is on with the default
    # 24-hour lead time (DEADLINE_DUE_SOON_MINUTES's default). On a large table run this
    # backfill in slices before deploying (docs/deadlines.md); it then updates nothing.
    op.execute(
        "UPDATE tasks SET due_soon_at = deadline - interval '1440 minutes', overdue_at = deadline "
        "WHERE overdue_at IS NULL"
    )
    op.create_index(
        "ix_tasks_open_due_soon_at",
        "tasks",
        ["due_soon_at", "id"],
        postgresql_where=OPEN_TASK,
        if_not_exists=True,
    )
    op.create_index(
        "ix_tasks_open_overdue_at",
        "tasks",
        ["overdue_at", "id"],
        postgresql_where=OPEN_TASK,
        if_not_exists=True,
    )
    # The selection now reads the two indexes above; (deadline, id) over open tasks is unused.
    op.drop_index("ix_tasks_open_deadline", table_name="tasks")

    op.create_table(
        "notification_preferences",
        sa.Column("user_id", sa.BigInteger(), nullable=False),
        sa.Column("email_enabled", sa.Boolean(), nullable=False),
        sa.Column("due_soon_enabled", sa.Boolean(), nullable=False),
        sa.Column("overdue_enabled", sa.Boolean(), nullable=False),
        sa.Column("due_soon_minutes", sa.Integer(), nullable=False),
        sa.Column("email_enabled_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column(
            "updated_at", sa.DateTime(timezone=True), server_default=sa.func.now(), nullable=False
        ),
        sa.CheckConstraint(
            "due_soon_minutes BETWEEN 1 AND 10080",
            name=op.f("ck_notification_preferences_due_soon_minutes_range"),
        ),
        sa.ForeignKeyConstraint(
            ["user_id"],
            ["users.id"],
            name=op.f("fk_notification_preferences_user_id_users"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("user_id", name=op.f("pk_notification_preferences")),
    )
    op.create_table(
        "email_suppressions",
        sa.Column("address", sa.String(length=320), nullable=False),
        sa.Column("reason", sa.String(length=20), nullable=False),
        sa.Column("feedback_id", sa.String(length=200), nullable=True),
        sa.Column(
            "created_at", sa.DateTime(timezone=True), server_default=sa.func.now(), nullable=False
        ),
        sa.CheckConstraint(
            "reason IN ('bounce', 'complaint')", name=op.f("ck_email_suppressions_reason_valid")
        ),
        sa.PrimaryKeyConstraint("address", name=op.f("pk_email_suppressions")),
    )
    op.create_table(
        "calendar_feeds",
        sa.Column("user_id", sa.BigInteger(), nullable=False),
        sa.Column("secret_hash", sa.LargeBinary(length=32), nullable=False),
        sa.Column(
            "created_at", sa.DateTime(timezone=True), server_default=sa.func.now(), nullable=False
        ),
        sa.ForeignKeyConstraint(
            ["user_id"],
            ["users.id"],
            name=op.f("fk_calendar_feeds_user_id_users"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("user_id", name=op.f("pk_calendar_feeds")),
        sa.UniqueConstraint("secret_hash", name=op.f("uq_calendar_feeds_secret_hash")),
    )


def downgrade() -> None:
    op.drop_table("calendar_feeds")
    op.drop_table("email_suppressions")
    op.drop_table("notification_preferences")
    op.create_index(
        "ix_tasks_open_deadline", "tasks", ["deadline", "id"], postgresql_where=OPEN_TASK
    )
    op.drop_index("ix_tasks_open_overdue_at", table_name="tasks")
    op.drop_index("ix_tasks_open_due_soon_at", table_name="tasks")
    op.drop_constraint(op.f("ck_tasks_remind_before_range"), "tasks", type_="check")
    op.drop_column("tasks", "overdue_at")
    op.drop_column("tasks", "due_soon_at")
    op.drop_column("tasks", "remind_before")
