"""Calendar feeds: a secret URL per account serving its open tasks as RFC 5545 iCalendar.

The secret is the credential (calendar apps cannot sign in), so it is 256 bits of randomness,
shown once, stored only as its SHA-256, rotated by issuing a new one and revoked by deleting it.
"""

from __future__ import annotations

import hashlib
import hmac
import re
import secrets
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

from taskline import clock
from taskline.db import read_only, retry_if_disconnected, transaction
from taskline.errors import CalendarFeedNotFound
from taskline.models import Task
from taskline.repositories import calendar_feed_repository, notification_preference_repository
from taskline.schemas import CalendarFeedOut
from taskline.settings import get_settings

SECRET_BYTES = 32
_SECRET = re.compile(r"[A-Za-z0-9_-]{43}")  # token_urlsafe(32)
# What a feed shows: open tasks whose deadline is at most this long past, soonest first.
FEED_LOOKBACK = timedelta(days=90)
MAX_FEED_TASKS = 1000
PRODUCT_ID = "-//Taskline//Task deadlines//EN"


@dataclass(frozen=True)
class Feed:
    body: bytes
    etag: str


def _hash(secret: str) -> bytes:
    return hashlib.sha256(secret.encode()).digest()


def issue(user_id: int, base_url: str) -> CalendarFeedOut:
    """A new secret feed URL for the account; an earlier one stops working."""
    secret = secrets.token_urlsafe(SECRET_BYTES)
    with transaction() as session:
        feed = calendar_feed_repository.save(session, user_id, _hash(secret))
        url = f"{base_url}/calendar/{secret}"
        return CalendarFeedOut(
            url=url, webcal_url="webcal://" + url.partition("://")[2], created_at=feed.created_at
        )


def revoke(user_id: int) -> None:
    with transaction() as session:
        if not calendar_feed_repository.remove(session, user_id):
            raise CalendarFeedNotFound


@retry_if_disconnected
def render(secret: str, now: datetime | None = None) -> Feed:
    """The feed behind `secret`, or CalendarFeedNotFound.

    The lookup is by the SHA-256 of the secret: what the index compares is a hash the caller
    cannot steer byte by byte, so response times reveal nothing about stored secrets; the
    match is then confirmed in constant time."""
    if not _SECRET.fullmatch(secret):
        raise CalendarFeedNotFound
    digest = _hash(secret)
    moment = now or clock.utcnow()
    with read_only() as session:
        feed = calendar_feed_repository.find(session, digest)
        if feed is None or not hmac.compare_digest(feed.secret_hash, digest):
            raise CalendarFeedNotFound
        tasks = calendar_feed_repository.open_tasks(
            session, feed.user_id, moment - FEED_LOOKBACK, MAX_FEED_TASKS
        )
        settings = notification_preference_repository.get(session, feed.user_id)
    default_lead = get_settings().deadline_due_soon_minutes
    if settings is None:
        lead, reminders_on = default_lead, True
    else:
        lead, reminders_on = settings.due_soon_minutes, settings.due_soon_enabled
    body = build_calendar(tasks, lead if reminders_on else None)
    return Feed(body=body, etag='"' + hashlib.sha256(body).hexdigest()[:32] + '"')


def build_calendar(tasks: list[Task], account_lead_minutes: int | None) -> bytes:
    """One VEVENT per task at its deadline, with a VALARM at its reminder (the task's
    remind_before, else the account's lead time when due-soon reminders are on).

    DTSTAMP is the task's last change, as RFC 5545 section 3.8.7.2 asks of a calendar without a
    METHOD, so the body (and its ETag) changes only when a task does."""
    from icalendar import Alarm, Calendar, Event, vDuration

    calendar = Calendar()
    calendar.add("prodid", PRODUCT_ID)
    calendar.add("version", "2.0")
    calendar.add("calscale", "GREGORIAN")
    calendar.add("name", "Taskline")  # RFC 7986
    calendar.add("x-wr-calname", "Taskline")
    calendar.add("refresh-interval", timedelta(minutes=15), parameters={"VALUE": "DURATION"})
    # An X- property has no registered type, so icalendar would write str(timedelta),
    # "0:15:00"; Microsoft defines it as a DURATION, "PT15M" (RFC 5545 section 3.3.6):
    # https://learn.microsoft.com/en-us/openspecs/exchange_server_protocols/ms-oxcical/1fc7b244-ecd1-4d28-ac0c-2bb4df855a1f
    calendar.add("x-published-ttl", vDuration(timedelta(minutes=15)))
    for task in tasks:
        lines = task.description.splitlines()
        event = Event()
        event.add("uid", f"task-{task.id}@taskline")
        event.add("dtstamp", _utc(task.updated_at))
        event.add("created", _utc(task.created_at))
        event.add("last-modified", _utc(task.updated_at))
        event.add("dtstart", _utc(task.deadline))
        event.add("summary", lines[0] if lines else task.description)
        event.add("description", f"{task.description}\n\nStatus: {task.status}\nTask id: {task.id}")
        event.add("categories", [task.category])
        event.add("transp", "TRANSPARENT")  # a deadline does not make anyone busy
        lead = task.remind_before if task.remind_before is not None else account_lead_minutes
        if lead is not None:
            alarm = Alarm()
            alarm.add("action", "DISPLAY")
            alarm.add("description", f"Due soon: {event['summary']}")
            alarm.add("trigger", -timedelta(minutes=lead))
            event.add_component(alarm)
        calendar.add_component(event)
    body: bytes = calendar.to_ical()
    return body


def _utc(moment: datetime) -> datetime:
    return moment.astimezone(UTC)


def matches(if_none_match: str | None, etag: str) -> bool:
    """RFC 9110 section 13.1.2: weak comparison against each listed tag, or `*`."""
    if not if_none_match:
        return False
    if if_none_match.strip() == "*":
        return True
    tags: list[Any] = [tag.strip() for tag in if_none_match.split(",")]
    return any(tag.removeprefix("W/") == etag for tag in tags)
