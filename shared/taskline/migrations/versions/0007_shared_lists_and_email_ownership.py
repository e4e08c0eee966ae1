"""Shared lists (lists, members, invitations; tasks gain a list, an assignee, a creator and a
reminder recipient) and email ownership (verified addresses, unsubscribes that stick to the
address, send quotas).

Expand-only, safe while the previous release still serves: new tables, nullable columns, a
dropped NOT NULL, and constraints that existing rows satisfy (all of them are personal tasks).
Nothing is renamed or rewritten, and no backfill touches `tasks`. The new columns are empty, so
each new index and constraint check reads the table once without sorting; on a very large
table create the indexes CONCURRENTLY before deploying (docs/deploy.md) and this migration
skips them (`if_not_exists`).

Revision ID: 0007
Revises: 0006
Create Date: 2026-12-07
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0007"
down_revision: str | None = "0006"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.add_column("users", sa.Column("email_verified_at", sa.DateTime(timezone=True)))

    op.create_table(
        "lists",
        sa.Column("id", sa.BigInteger(), sa.Identity(always=False), nullable=False),
        sa.Column("name", sa.String(length=200), nullable=False),
        sa.Column("owner_id", sa.BigInteger(), nullable=False),
        sa.Column(
            "owner_role",
            sa.String(length=10),
            sa.Computed("'owner'", persisted=True),
            nullable=False,
        ),
        sa.Column(
            "created_at", sa.DateTime(timezone=True), server_default=sa.func.now(), nullable=False
        ),
        sa.Column(
            "updated_at", sa.DateTime(timezone=True), server_default=sa.func.now(), nullable=False
        ),
        sa.CheckConstraint(
            "char_length(name) BETWEEN 1 AND 200", name=op.f("ck_lists_name_length")
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_lists")),
    )
    op.create_table(
        "list_members",
        sa.Column("list_id", sa.BigInteger(), nullable=False),
        sa.Column("user_id", sa.BigInteger(), nullable=False),
        sa.Column("role", sa.String(length=10), nullable=False),
        sa.Column(
            "joined_at", sa.DateTime(timezone=True), server_default=sa.func.now(), nullable=False
        ),
        sa.CheckConstraint(
            "role IN ('owner', 'editor', 'viewer')", name=op.f("ck_list_members_role_valid")
        ),
        sa.ForeignKeyConstraint(
            ["list_id"],
            ["lists.id"],
            name=op.f("fk_list_members_list_id_lists"),
            ondelete="CASCADE",
        ),
        sa.ForeignKeyConstraint(
            ["user_id"],
            ["users.id"],
            name=op.f("fk_list_members_user_id_users"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("list_id", "user_id", name=op.f("pk_list_members")),
        sa.UniqueConstraint(
            "list_id", "user_id", "role", name=op.f("uq_list_members_list_id_user_id_role")
        ),
    )
    op.create_index(
        "uq_list_members_one_owner",
        "list_members",
        ["list_id"],
        unique=True,
        postgresql_where=sa.text("role = 'owner'"),
    )
    op.create_index("ix_list_members_user_id_list_id", "list_members", ["user_id", "list_id"])
    # Exactly one owner: the list names its owner's member row, role included. Deferred, so a
    # list and its owner's row are inserted, and ownership handed over, within one transaction.
    op.create_foreign_key(
        "fk_lists_owner_list_members",
        "lists",
        "list_members",
        ["id", "owner_id", "owner_role"],
        ["list_id", "user_id", "role"],
        deferrable=True,
        initially="DEFERRED",
    )

    op.create_table(
        "list_invitations",
        sa.Column("id", sa.BigInteger(), sa.Identity(always=False), nullable=False),
        sa.Column("list_id", sa.BigInteger(), nullable=False),
        sa.Column("email", sa.String(length=320), nullable=False),
        sa.Column("role", sa.String(length=10), nullable=False),
        sa.Column("invited_by", sa.BigInteger(), nullable=False),
        sa.Column(
            "created_at", sa.DateTime(timezone=True), server_default=sa.func.now(), nullable=False
        ),
        sa.Column("expires_at", sa.DateTime(timezone=True), nullable=False),
        sa.CheckConstraint(
            "role IN ('editor', 'viewer')", name=op.f("ck_list_invitations_role_valid")
        ),
        sa.ForeignKeyConstraint(
            ["list_id"],
            ["lists.id"],
            name=op.f("fk_list_invitations_list_id_lists"),
            ondelete="CASCADE",
        ),
        sa.ForeignKeyConstraint(
            ["invited_by"],
            ["users.id"],
            name=op.f("fk_list_invitations_invited_by_users"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_list_invitations")),
        sa.UniqueConstraint("list_id", "email", name=op.f("uq_list_invitations_list_id_email")),
    )
    op.create_index("ix_list_invitations_email", "list_invitations", ["email"])
    op.create_index("ix_list_invitations_invited_by", "list_invitations", ["invited_by"])

    # Tasks: a list's task has no owner (user_id NULL); dropping NOT NULL is a catalogue change.
    op.alter_column("tasks", "user_id", existing_type=sa.BigInteger(), nullable=True)
    op.add_column("tasks", sa.Column("list_id", sa.BigInteger()))
    op.add_column("tasks", sa.Column("created_by", sa.BigInteger()))
    op.add_column("tasks", sa.Column("assignee_id", sa.BigInteger()))
    op.add_column("tasks", sa.Column("recipient_id", sa.BigInteger()))
    op.create_foreign_key(
        op.f("fk_tasks_list_id_lists"), "tasks", "lists", ["list_id"], ["id"], ondelete="CASCADE"
    )
    op.create_foreign_key(
        op.f("fk_tasks_created_by_users"),
        "tasks",
        "users",
        ["created_by"],
        ["id"],
        ondelete="SET NULL",
    )
    op.create_foreign_key(
        op.f("fk_tasks_recipient_id_users"),
        "tasks",
        "users",
        ["recipient_id"],
        ["id"],
        ondelete="SET NULL",
    )
    # A list's assignee is one of its members; leaving the list clears the assignment.
    op.create_foreign_key(
        "fk_tasks_assignee_list_members",
        "tasks",
        "list_members",
        ["list_id", "assignee_id"],
        ["list_id", "user_id"],
        ondelete="SET NULL (assignee_id)",
    )
    op.create_check_constraint(
        op.f("ck_tasks_one_home"), "tasks", "(user_id IS NULL) <> (list_id IS NULL)"
    )
    op.create_check_constraint(
        op.f("ck_tasks_personal_assignee"),
        "tasks",
        "list_id IS NOT NULL OR assignee_id IS NULL OR assignee_id = user_id",
    )
    for name, columns, where in (
        ("ix_tasks_list_id_deadline_id", ["list_id", "deadline", "id"], "list_id IS NOT NULL"),
        ("ix_tasks_list_id_assignee_id", ["list_id", "assignee_id"], "assignee_id IS NOT NULL"),
        (
            "ix_tasks_recipient_id_deadline_id",
            ["recipient_id", "deadline", "id"],
            "recipient_id IS NOT NULL",
        ),
        ("ix_tasks_created_by", ["created_by"], "created_by IS NOT NULL"),
    ):
        op.create_index(name, "tasks", columns, postgresql_where=sa.text(where), if_not_exists=True)

    # An unsubscribe now sticks to the address, like a bounce or a complaint.
    op.drop_constraint(
        op.f("ck_email_suppressions_reason_valid"), "email_suppressions", type_="check"
    )
    op.create_check_constraint(
        op.f("ck_email_suppressions_reason_valid"),
        "email_suppressions",
        "reason IN ('bounce', 'complaint', 'unsubscribe')",
    )

    op.create_table(
        "send_quotas",
        sa.Column("scope", sa.String(length=32), nullable=False),
        sa.Column("subject", sa.String(length=64), nullable=False),
        sa.Column("window_started_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("sent", sa.Integer(), nullable=False),
        sa.CheckConstraint(
            "scope IN ('email_verification', 'invitation')",
            name=op.f("ck_send_quotas_scope_valid"),
        ),
        sa.PrimaryKeyConstraint("scope", "subject", name=op.f("pk_send_quotas")),
    )


def downgrade() -> None:
    op.drop_table("send_quotas")
    op.execute("DELETE FROM email_suppressions WHERE reason = 'unsubscribe'")
    op.drop_constraint(
        op.f("ck_email_suppressions_reason_valid"), "email_suppressions", type_="check"
    )
    op.create_check_constraint(
        op.f("ck_email_suppressions_reason_valid"),
        "email_suppressions",
        "reason IN ('bounce', 'complaint')",
    )
    # Lists' tasks cannot exist without lists: they go with them.
    op.execute("DELETE FROM tasks WHERE list_id IS NOT NULL")
    for name in (
        "ix_tasks_created_by",
        "ix_tasks_recipient_id_deadline_id",
        "ix_tasks_list_id_assignee_id",
        "ix_tasks_list_id_deadline_id",
    ):
        op.drop_index(name, table_name="tasks")
    op.drop_constraint(op.f("ck_tasks_personal_assignee"), "tasks", type_="check")
    op.drop_constraint(op.f("ck_tasks_one_home"), "tasks", type_="check")
    op.drop_constraint("fk_tasks_assignee_list_members", "tasks", type_="foreignkey")
    for column in ("recipient_id", "assignee_id", "created_by", "list_id"):
        op.drop_column("tasks", column)
    op.alter_column("tasks", "user_id", existing_type=sa.BigInteger(), nullable=False)
    op.drop_table("list_invitations")
    op.drop_constraint("fk_lists_owner_list_members", "lists", type_="foreignkey")
    op.drop_table("list_members")
    op.drop_table("lists")
    op.drop_column("users", "email_verified_at")
