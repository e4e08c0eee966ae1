"""Deadline notifications: the record of what was sent, and the open-task deadline index.

Revision ID: 0002
Revises: 0001
Create Date: 2026-11-26
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0002"
down_revision: str | None = "0001"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    # On a large live table, create this index first with CREATE INDEX CONCURRENTLY (same name,
    # columns and predicate); IF NOT EXISTS then makes this step a no-op (docs/deadlines.md).
    op.create_index(
        "ix_tasks_open_deadline",
        "tasks",
        ["deadline", "id"],
        postgresql_where=sa.text("status <> 'Done'"),
        if_not_exists=True,
    )
    op.create_table(
        "task_notifications",
        sa.Column("task_id", sa.BigInteger(), nullable=False),
        sa.Column("stage", sa.String(length=20), nullable=False),
        sa.Column("deadline", sa.DateTime(timezone=True), nullable=False),
        sa.Column(
            "notified_at", sa.DateTime(timezone=True), server_default=sa.func.now(), nullable=False
        ),
        sa.Column("message_id", sa.String(length=100), nullable=True),
        sa.CheckConstraint(
            "stage IN ('due_soon', 'overdue')", name=op.f("ck_task_notifications_stage_valid")
        ),
        sa.ForeignKeyConstraint(
            ["task_id"],
            ["tasks.id"],
            name=op.f("fk_task_notifications_task_id_tasks"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("task_id", "stage", "deadline", name=op.f("pk_task_notifications")),
    )


def downgrade() -> None:
    op.drop_table("task_notifications")
    op.drop_index("ix_tasks_open_deadline", table_name="tasks")
