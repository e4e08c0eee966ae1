"""Where "now" comes from: one source per decision, so no comparison mixes two clocks.

The application's clock, `clock.utcnow()`, is the default. Services call it (through the
module, never `from ... import utcnow`, so tests can replace `taskline.clock.utcnow` and let
time pass without sleeping) and pass the time to repositories, so SQL compares against it
rather than the database's `now()`. It decides:

- sessions and refresh tokens (issued, expired, pruned) and login throttling windows;
- the deadline check's run (`services.deadline_service`: which stages are due, `checked_at`) and the
  calendar feed's window of tasks (`services.calendar_service`);
- notification preferences' `updated_at` and `email_enabled_at`, and the `iat` of the
  unsubscribe links sent by email: a link is stale when it was issued before email was last
  switched on, so both sides of that comparison come from here.

The database's `now()` stays where a value must agree with other rows' database timestamps
in the same statement, whichever Lambda container (and host clock) writes it:

- a task's `updated_at` is its version (its ETag): `greatest(now(), updated_at + 1 µs)` moves
  it strictly forward in the statement that writes it, and it starts at `created_at`'s
  server default, the same clock;
- an idempotency key's `created_at` and its expiry (`created_at <= now() - ttl`) are written
  and compared by the one statement that claims the key, so a key is live or expired for every
  container alike;
- rows stamped only to record when they were written (server defaults: `created_at` of
  accounts, calendar feeds and email suppressions, `notified_at`) decide nothing.

Signed tokens (access tokens' `exp`, unsubscribe links' `exp`) are checked by PyJWT against
the system clock, which `utcnow()` reads too.
"""

from __future__ import annotations

from datetime import UTC, datetime


def utcnow() -> datetime:
    return datetime.now(UTC)
