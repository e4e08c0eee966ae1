"""The one clock for state kept in the database (refresh tokens, sessions, login throttling).

Services call `clock.utcnow()` (through the module, never `from ... import utcnow`) and pass
the time to repositories, so SQL compares against the application's clock rather than the
database's `now()`. Tests replace `taskline.clock.utcnow` to let time pass without sleeping.
"""

from __future__ import annotations

from datetime import UTC, datetime


def utcnow() -> datetime:
    return datetime.now(UTC)
