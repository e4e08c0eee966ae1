"""Counting password checks per account and per source IP (login throttling).

An account's key is the SHA-256 of `lower(email)` computed by PostgreSQL, the very function
the unique email index uses: spellings that reach one account always share one counter, and
emails that reach no account are counted the same way without being stored in clear.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass
from datetime import datetime, timedelta

from sqlalchemy import (
    ColumnElement,
    String,
    and_,
    case,
    delete,
    func,
    literal,
    or_,
    select,
    tuple_,
    update,
)
from sqlalchemy.dialects.postgresql import insert
from sqlalchemy.orm import Session

from taskline.domain import ThrottleScope
from taskline.models import LoginThrottle

PRUNE_BATCH = 20


@dataclass(frozen=True)
class ThrottlePolicy:
    max_failures_per_account: int
    max_failures_per_ip: int
    window: timedelta
    lockout: timedelta


def account_subject(email: str) -> ColumnElement[str]:
    if "\x00" in email:
        # PostgreSQL text cannot hold NUL, so no account has this email and PostgreSQL cannot
        # hash it; it is counted all the same, keyed here. The hashed bytes contain NUL, which
        # the UTF-8 of a PostgreSQL text never does, so this key cannot collide with theirs.
        return literal(hashlib.sha256(email.lower().encode()).hexdigest(), String)
    return func.encode(func.sha256(func.convert_to(func.lower(email), "UTF8")), "hex")


def register_attempt(
    session: Session, email: str, source_ip: str, now: datetime, policy: ThrottlePolicy
) -> datetime | None:
    """Count one password check, before it runs, against the account and the source IP.

    Returns when the later of the two blocks ends, or None if neither is blocked. Counting
    first (and taking back the count when the password was right) means concurrent guesses
    cannot slip past the limit: each upsert holds the row's lock until the transaction ends.
    A blocked key is left as it is; an expired window or block starts a new window.
    """
    row = LoginThrottle.__table__.c
    limit = case(
        (row.scope == ThrottleScope.ACCOUNT.value, policy.max_failures_per_account),
        else_=policy.max_failures_per_ip,
    )
    blocked = and_(row.blocked_until.is_not(None), row.blocked_until > now)
    restart = or_(row.blocked_until.is_not(None), row.window_started_at <= now - policy.window)
    inserted = insert(LoginThrottle).values(
        [
            {
                "scope": ThrottleScope.ACCOUNT.value,
                "subject": account_subject(email),
                "failures": 1,
                "window_started_at": now,
            },
            {
                "scope": ThrottleScope.IP.value,
                "subject": source_ip,
                "failures": 1,
                "window_started_at": now,
            },
        ]
    )
    statement = inserted.on_conflict_do_update(
        index_elements=[LoginThrottle.scope, LoginThrottle.subject],
        set_={
            "failures": case((blocked, row.failures), (restart, 1), else_=row.failures + 1),
            "window_started_at": case(
                (blocked, row.window_started_at), (restart, now), else_=row.window_started_at
            ),
            "blocked_until": case(
                (blocked, row.blocked_until),
                (restart, None),
                (row.failures + 1 > limit, literal(now + policy.lockout)),
                else_=None,
            ),
        },
    ).returning(LoginThrottle.blocked_until)
    ends = [until for until in session.scalars(statement) if until is not None and until > now]
    return max(ends, default=None)


def forgive(session: Session, email: str, source_ip: str) -> None:
    """The password was right: the account starts afresh and the IP's count is taken back."""
    session.execute(
        delete(LoginThrottle).where(
            LoginThrottle.scope == ThrottleScope.ACCOUNT.value,
            LoginThrottle.subject == account_subject(email),
        )
    )
    session.execute(
        update(LoginThrottle)
        .where(
            LoginThrottle.scope == ThrottleScope.IP.value,
            LoginThrottle.subject == source_ip,
            LoginThrottle.blocked_until.is_(None),
        )
        .values(failures=func.greatest(LoginThrottle.failures - 1, 0))
    )


def prune(session: Session, now: datetime, policy: ThrottlePolicy) -> None:
    """Delete a few rows too old to matter (their window and any block have long ended, so
    they mean what a missing row means); bounded, and never waits for a locked row."""
    cutoff = now - policy.window - policy.lockout
    stale = (
        select(LoginThrottle.scope, LoginThrottle.subject)
        .where(LoginThrottle.window_started_at < cutoff)
        .order_by(LoginThrottle.window_started_at)
        .limit(PRUNE_BATCH)
        .with_for_update(skip_locked=True)
    )
    session.execute(
        delete(LoginThrottle).where(tuple_(LoginThrottle.scope, LoginThrottle.subject).in_(stale))
    )
