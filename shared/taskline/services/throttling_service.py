"""Login throttling shared by every use case that checks a password (not a use case itself).

Each password check is counted against the account and the source IP before bcrypt runs;
a right password takes the count back. Past the limit, checks are refused until the lockout
ends, the same way whether or not the account exists.
"""

from __future__ import annotations

import math
from datetime import datetime, timedelta

from sqlalchemy.orm import Session

from taskline.repositories import login_throttle_repository
from taskline.repositories.login_throttle_repository import ThrottlePolicy
from taskline.settings import get_settings

MAX_SOURCE_IP_CHARS = 64
UNKNOWN_SOURCE = "unknown"


def policy() -> ThrottlePolicy:
    settings = get_settings()
    return ThrottlePolicy(
        max_failures_per_account=settings.login_max_failures_per_account,
        max_failures_per_ip=settings.login_max_failures_per_ip,
        window=timedelta(seconds=settings.login_failure_window_seconds),
        lockout=timedelta(seconds=settings.login_lockout_seconds),
    )


def source_key(source_ip: str | None) -> str:
    """API Gateway always sends requestContext.http.sourceIp; anything odd shares one key."""
    if not source_ip or len(source_ip) > MAX_SOURCE_IP_CHARS or not source_ip.isprintable():
        return UNKNOWN_SOURCE
    return source_ip


def register_attempt(session: Session, email: str, source_ip: str, now: datetime) -> int | None:
    """Count a password check about to run. None when it may run, else the seconds to wait:
    the caller raises TooManyAttempts after the transaction commits, so the count sticks."""
    rules = policy()
    login_throttle_repository.prune(session, now, rules)
    blocked_until = login_throttle_repository.register_attempt(
        session, email, source_ip, now, rules
    )
    if blocked_until is None:
        return None
    return max(1, math.ceil((blocked_until - now).total_seconds()))


def forgive(session: Session, email: str, source_ip: str) -> None:
    login_throttle_repository.forgive(session, email, source_ip)
