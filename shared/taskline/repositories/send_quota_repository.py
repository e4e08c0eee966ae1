"""Send quotas: how many emails of one kind a subject (an account) caused in its current window.

Generic on purpose: verification emails and invitations (domain.QuotaScope) share it.
"""

from __future__ import annotations

import math
from datetime import datetime, timedelta

from sqlalchemy import case, literal, select
from sqlalchemy.dialects.postgresql import insert
from sqlalchemy.orm import Session

from taskline.domain import QuotaScope
from taskline.models import SendQuota


def take(
    session: Session,
    scope: QuotaScope,
    subject: str,
    limit: int,
    window: timedelta,
    now: datetime,
) -> int | None:
    """Count one email against the subject's quota: None if allowed (counted), else the whole
    seconds until its window ends (nothing counted). Fixed windows: a window starts with the
    first email after the previous one ended. One statement, so concurrent takes cannot both
    squeeze under the limit (the row is locked by the upsert)."""
    table = SendQuota
    statement = insert(table).values(
        scope=scope.value, subject=subject, window_started_at=now, sent=1
    )
    expired = table.window_started_at <= literal(now - window)
    upsert = statement.on_conflict_do_update(
        index_elements=[table.scope, table.subject],
        set_={
            "window_started_at": case((expired, now), else_=table.window_started_at),
            "sent": case((expired, 1), else_=table.sent + 1),
        },
        where=expired | (table.sent < limit),
    ).returning(table.sent)
    if session.execute(upsert).one_or_none() is not None:
        return None
    started = session.scalar(
        select(table.window_started_at).where(table.scope == scope.value, table.subject == subject)
    )
    if started is None:  # pragma: no cover - the row the upsert just saw
        return 1
    return max(1, math.ceil((started + window - now).total_seconds()))
