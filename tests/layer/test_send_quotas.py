"""The generic send quota (send_quota_repository.take): fixed windows per scope and subject,
against the real PostgreSQL. Verification emails use it now; invitations will."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from taskline.db import transaction
from taskline.domain import QuotaScope
from taskline.repositories import send_quota_repository

START = datetime(2030, 1, 1, 12, 0, tzinfo=UTC)
WINDOW = timedelta(hours=1)


def take(
    subject: str, at: datetime, scope: QuotaScope = QuotaScope.EMAIL_VERIFICATION
) -> int | None:
    with transaction() as session:
        return send_quota_repository.take(session, scope, subject, 3, WINDOW, at)


def test_a_window_allows_the_limit_then_says_how_long_to_wait() -> None:
    assert [take("7", START + timedelta(minutes=m)) for m in range(3)] == [None, None, None]
    assert take("7", START + timedelta(minutes=10)) == 50 * 60  # counted from the window's start
    assert take("7", START + timedelta(minutes=59, seconds=59, microseconds=1)) == 1
    # Refusals count nothing: the next window starts fresh with a full allowance.
    assert [take("7", START + WINDOW + timedelta(seconds=s)) for s in range(3)] == [None] * 3
    assert take("7", START + WINDOW + timedelta(seconds=3)) is not None


def test_scopes_and_subjects_have_their_own_quotas() -> None:
    for _ in range(3):
        assert take("7", START) is None
    assert take("7", START) is not None
    assert take("8", START) is None
    assert take("7", START, QuotaScope.INVITATION) is None
