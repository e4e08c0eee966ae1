"""The calendar feed (issue 15): a secret URL serving the account's open tasks as RFC 5545
iCalendar, read back with the icalendar library as a calendar app would."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from icalendar import Calendar
from sqlalchemy import Engine, text

from localdev.gateway import GatewayResponse
from tests.support.api import ApiClient, assert_problem

SOON = datetime.now(UTC).replace(microsecond=0) + timedelta(days=2)


def rfc3339(moment: datetime) -> str:
    return moment.isoformat().replace("+00:00", "Z")


def add_task(user: ApiClient, **fields: Any) -> dict[str, Any]:
    body = {"description": "Renew passport", "category": "admin", "deadline": rfc3339(SOON)}
    body.update(fields)
    response = user.post("/tasks", json_body=body)
    assert response.status == 201, response.body
    task: dict[str, Any] = response.json()
    return task


def issue(user: ApiClient) -> dict[str, Any]:
    response = user.post("/users/me/calendar")
    assert response.status == 201, response.body
    assert response.header("Cache-Control") == "no-store"
    feed: dict[str, Any] = response.json()
    return feed


def fetch(client: ApiClient, url: str, **headers: str) -> GatewayResponse:
    path = "/" + url.split("://", 1)[1].split("/", 1)[1]
    return client.get(path, headers=headers)


def parse(response: GatewayResponse) -> Calendar:
    assert response.status == 200, response.body
    assert response.header("Content-Type") == "text/calendar; charset=utf-8"
    return Calendar.from_ical(response.body)


def events(calendar: Calendar) -> dict[str, Any]:
    return {str(event["uid"]): event for event in calendar.walk("VEVENT")}


def test_a_calendar_app_reads_the_open_tasks_with_alarms(
    user: ApiClient, other_user: ApiClient, client: ApiClient
) -> None:
    reminded = add_task(user, description="Pay rent\nBank transfer", remind_before=120)
    plain = add_task(user, category="home", deadline=rfc3339(SOON + timedelta(hours=5)))
    add_task(user, status="Done")
    add_task(other_user, description="Someone else's")
    feed = issue(user)
    assert feed["url"].startswith("http://localhost/calendar/")  # local: the request's host
    assert feed["webcal_url"] == "webcal://" + feed["url"].split("://", 1)[1]

    calendar = parse(fetch(client, feed["url"]))  # no bearer token: the URL is the credential

    assert str(calendar["version"]) == "2.0"
    assert "Taskline" in str(calendar["prodid"])
    found = events(calendar)
    assert set(found) == {f"task-{reminded['id']}@taskline", f"task-{plain['id']}@taskline"}
    first = found[f"task-{reminded['id']}@taskline"]
    assert str(first["summary"]) == "Pay rent"
    assert "Bank transfer" in str(first["description"])
    assert first.decoded("dtstart") == SOON
    updated = datetime.fromisoformat(reminded["updated_at"].replace("Z", "+00:00"))
    assert first.decoded("dtstamp") == updated.replace(microsecond=0)
    assert first.decoded("last-modified") == updated.replace(microsecond=0)
    [alarm] = first.walk("VALARM")
    assert alarm.decoded("trigger") == -timedelta(minutes=120)
    assert str(alarm["action"]) == "DISPLAY"
    [default_alarm] = found[f"task-{plain['id']}@taskline"].walk("VALARM")
    assert default_alarm.decoded("trigger") == -timedelta(hours=24)  # the account's lead
    assert [str(c) for c in found[f"task-{plain['id']}@taskline"]["categories"].cats] == ["home"]


def test_the_alarm_follows_the_preferences(user: ApiClient, client: ApiClient) -> None:
    task = add_task(user)
    feed = issue(user)
    assert user.patch("/users/me/notifications", json_body={"due_soon_minutes": 45}).status == 200
    [alarm] = events(parse(fetch(client, feed["url"])))[f"task-{task['id']}@taskline"].walk(
        "VALARM"
    )
    assert alarm.decoded("trigger") == -timedelta(minutes=45)
    assert (
        user.patch("/users/me/notifications", json_body={"due_soon_enabled": False}).status == 200
    )
    event = events(parse(fetch(client, feed["url"])))[f"task-{task['id']}@taskline"]
    assert event.walk("VALARM") == []


def test_polling_with_the_etag_is_304_until_a_task_changes(
    user: ApiClient, client: ApiClient
) -> None:
    task = add_task(user)
    feed = issue(user)
    first = fetch(client, feed["url"])
    etag = first.header("ETag")
    assert etag is not None
    assert etag.startswith('"')
    assert first.header("Cache-Control") == "private, no-cache"

    again = fetch(client, feed["url"])
    assert again.header("ETag") == etag  # nothing changed: the same bytes
    assert again.body == first.body
    unchanged = fetch(client, feed["url"], **{"If-None-Match": etag})
    assert unchanged.status == 304
    assert unchanged.body == b""
    assert unchanged.header("ETag") == etag
    assert fetch(client, feed["url"], **{"If-None-Match": f'"other", W/{etag}'}).status == 304
    assert fetch(client, feed["url"], **{"If-None-Match": '"other"'}).status == 200

    assert user.patch(f"/tasks/{task['id']}", json_body={"description": "Moved"}).status == 200
    changed = fetch(client, feed["url"], **{"If-None-Match": etag})
    assert changed.status == 200
    assert changed.header("ETag") != etag
    assert str(events(parse(changed))[f"task-{task['id']}@taskline"]["summary"]) == "Moved"


def test_rotating_and_revoking_the_secret(
    user: ApiClient, client: ApiClient, admin_engine: Engine
) -> None:
    add_task(user)
    first = issue(user)
    second = issue(user)  # rotates
    assert first["url"] != second["url"]
    assert_problem(fetch(client, first["url"]), 404)
    parse(fetch(client, second["url"]))
    with admin_engine.connect() as connection:  # only a hash of the secret is stored
        stored = connection.execute(text("SELECT secret_hash FROM calendar_feeds")).scalar_one()
    assert second["url"].rsplit("/", 1)[1].encode() not in bytes(stored)
    assert len(bytes(stored)) == 32

    assert user.delete("/users/me/calendar").status == 204
    revoked = fetch(client, second["url"])
    body = assert_problem(revoked, 404)
    assert body["detail"] == "No such calendar feed."
    assert_problem(user.delete("/users/me/calendar"), 404)


@pytest.mark.parametrize(
    "secret",
    [
        "x" * 43,
        "a" * 42,
        "a" * 44,
        "%2e%2e",
        "a" * 100,
        "AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA=",
    ],
)
def test_unknown_or_malformed_secrets_are_404(client: ApiClient, secret: str) -> None:
    body = assert_problem(client.get(f"/calendar/{secret}"), 404)
    assert body["detail"] == "No such calendar feed."


def test_the_feed_routes_need_a_token(client: ApiClient) -> None:
    assert_problem(client.post("/users/me/calendar"), 401)
    assert_problem(client.delete("/users/me/calendar"), 401)


def test_an_account_without_tasks_gets_an_empty_calendar(
    user: ApiClient, client: ApiClient
) -> None:
    calendar = parse(fetch(client, issue(user)["url"]))
    assert list(calendar.walk("VEVENT")) == []


def test_the_refresh_hints_are_rfc_5545_durations(user: ApiClient, client: ApiClient) -> None:
    """Both hints say 15 minutes as a DURATION value (RFC 5545 section 3.3.6), read on the
    wire: a parser that reads "0:15:00" leniently would hide the mistake (issue 19)."""
    lines = fetch(client, issue(user)["url"]).body.decode().split("\r\n")
    assert "REFRESH-INTERVAL;VALUE=DURATION:PT15M" in lines
    assert "X-PUBLISHED-TTL:PT15M" in lines
