"""Idempotency keys keep the first response as it was sent: status, headers and body text.

Until now the first response was kept as JSON and rebuilt (and re-validated) from today's
schema on a replay, so a deploy that changed the task schema could break replays. Rows
written before this migration keep `response` and are replayed from it as stored; the
column can go once every such row has expired (IDEMPOTENCY_KEY_TTL_SECONDS after deploy).

Revision ID: 0005
Revises: 0004
Create Date: 2026-12-01
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects import postgresql

revision: str = "0005"
down_revision: str | None = "0004"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.add_column("idempotency_keys", sa.Column("response_status", sa.SmallInteger()))
    op.add_column("idempotency_keys", sa.Column("response_headers", postgresql.JSONB()))
    op.add_column("idempotency_keys", sa.Column("response_body", sa.Text()))


def downgrade() -> None:
    op.drop_column("idempotency_keys", "response_body")
    op.drop_column("idempotency_keys", "response_headers")
    op.drop_column("idempotency_keys", "response_status")
