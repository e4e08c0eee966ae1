"""Reminders people control: /users/me/notifications, /users/me/calendar, the calendar feed
(/calendar/{feed_secret}, no sign-in: the secret is the credential) and one-click unsubscribe
(/unsubscribe/{token}, RFC 8058, no sign-in: the signed token is the credential)."""

from __future__ import annotations

import html
from email.parser import BytesParser
from email.policy import HTTP
from typing import Annotated, Any
from urllib.parse import parse_qs

from aws_lambda_powertools.event_handler import Response
from aws_lambda_powertools.event_handler.openapi.params import Header, Path
from aws_lambda_powertools.event_handler.openapi.types import OpenAPIResponseHeader
from aws_lambda_powertools.metrics import MetricUnit

from taskline.api.auth import SignedIn, current_user_id
from taskline.api.documentation import (
    NO_STORE,
    RouteOptions,
    Routes,
    example_body,
    problem,
    returns,
    text,
)
from taskline.api.function import http_function
from taskline.api.resolver import FORM, JSON, lambda_entry_point, media_type
from taskline.errors import OneClickBodyMissing
from taskline.schemas import (
    CalendarFeedOut,
    NotificationPreferencesOut,
    NotificationPreferencesPatch,
    NotificationPreferencesReplace,
)
from taskline.services import calendar_service, notification_settings_service
from taskline.settings import get_settings

app, logger, metrics = http_function()
MULTIPART = "multipart/form-data"
# RFC 8058 section 3.1: mail receivers POST this, as a form or as multipart/form-data.
app.accepts("POST", "/unsubscribe/<token>", FORM, MULTIPART)

CALENDAR = "text/calendar; charset=utf-8"
HTML = "text/html; charset=utf-8"
# The pages need no script, style sheet or frame; their one form posts back to the same URL.
PAGE_HEADERS = {
    "Content-Security-Policy": "default-src 'none'; form-action 'self'; frame-ancestors 'none'",
    "Referrer-Policy": "no-referrer",  # the URL carries the token
    "X-Content-Type-Options": "nosniff",
    "Cache-Control": "no-store",
}
FEED_HEADERS: dict[str, OpenAPIResponseHeader] = {
    "ETag": {
        "description": "The feed's entity tag; send it back in If-None-Match to get 304 while "
        "nothing changed.",
        "schema": {"type": "string"},
    },
    "Cache-Control": {"schema": {"type": "string"}},
}
# No length bound here: whatever the path holds, a value that is not a secret or a link we
# issued is 404 (the services check the shape first, before any database lookup).
FeedSecret = Annotated[
    str, Path(min_length=1, description="The secret from POST /users/me/calendar.")
]
UnsubscribeToken = Annotated[
    str, Path(min_length=1, description="The signed token of the email's link.")
]
ONE_CLICK_BODY = {
    "required": True,
    "content": {
        FORM: {
            "schema": {
                "type": "object",
                "required": ["List-Unsubscribe"],
                "properties": {"List-Unsubscribe": {"type": "string", "enum": ["One-Click"]}},
            },
            "examples": {"default": {"value": {"List-Unsubscribe": "One-Click"}}},
        }
    },
}


def _html_page(description: str) -> Any:
    return returns(description, content=text("text/html"))


# What an unsubscribe link can be besides good: not ours at all, or no longer good.
LINK_ERRORS = {
    404: problem("Not a link we issued."),
    410: problem("Expired, or email was switched on again since."),
}
PREFERENCES_OUT = returns("The account's notification preferences.", NotificationPreferencesOut)
PREFERENCES_DESCRIPTION = (
    "Email on or off, which stages the deadline check sends (`task.due_soon`, `task.overdue`) "
    "and how long before a deadline the due-soon reminder comes (`due_soon_minutes`, 1 to "
    "10080; default 1440, 24 h). A task's own `remind_before` overrides the lead time. Stages "
    "switched off are neither published nor emailed; email off still publishes to the topic."
)
# PUT and PATCH: the same answers, the same note; they differ only in the body they take.
CHANGE_DESCRIPTION = (
    PREFERENCES_DESCRIPTION
    + " `email_enabled: true` also clears an address SES reported as undeliverable."
)
PREFERENCES_CHANGE: RouteOptions = {
    "invalid": True,
    "body": "json",
}


my_notifications = Routes(app, "Notifications", signed_in=SignedIn.LIVE)
# The calendar feed and the unsubscribe links: no sign-in, the secret in the URL is the credential.
links = Routes(app, "Notifications")


@my_notifications.route(
    "GET",
    "/users/me/notifications",
    "getNotificationPreferences",
    "My notification preferences",
    {200: PREFERENCES_OUT},
    description=PREFERENCES_DESCRIPTION,
)
def get_preferences() -> NotificationPreferencesOut:
    return notification_settings_service.get(current_user_id(app))


@my_notifications.route(
    "PUT",
    "/users/me/notifications",
    "replaceNotificationPreferences",
    "Replace my notification preferences",
    {200: PREFERENCES_OUT},
    description=CHANGE_DESCRIPTION,
    **PREFERENCES_CHANGE,
)
def replace_preferences(
    preferences: Annotated[
        NotificationPreferencesReplace, example_body(NotificationPreferencesReplace)
    ],
) -> NotificationPreferencesOut:
    return notification_settings_service.update(current_user_id(app), preferences)


@my_notifications.route(
    "PATCH",
    "/users/me/notifications",
    "patchNotificationPreferences",
    "Change some notification preferences",
    {200: PREFERENCES_OUT},
    description=CHANGE_DESCRIPTION,
    **PREFERENCES_CHANGE,
)
def patch_preferences(
    changes: Annotated[NotificationPreferencesPatch, example_body(NotificationPreferencesPatch)],
) -> NotificationPreferencesOut:
    return notification_settings_service.update(current_user_id(app), changes)


@my_notifications.route(
    "POST",
    "/users/me/calendar",
    "issueCalendarFeed",
    "Get a secret calendar feed URL (rotates an earlier one)",
    {201: returns("The new feed URL.", CalendarFeedOut, headers=NO_STORE)},
    description="Issues a secret URL serving my open tasks as an iCalendar feed (RFC 5545) "
    "for calendar apps. The URL is shown only now; calling this again replaces it (the old "
    "one stops working). Anyone holding the URL can read the feed.",
)
def issue_calendar_feed() -> Response[CalendarFeedOut]:
    feed = calendar_service.issue(current_user_id(app), _base_url())
    metrics.add_metric(name="CalendarFeedIssued", unit=MetricUnit.Count, value=1)
    return Response(
        status_code=201, content_type=JSON, body=feed, headers={"Cache-Control": "no-store"}
    )


@my_notifications.route(
    "DELETE",
    "/users/me/calendar",
    "revokeCalendarFeed",
    "Revoke my calendar feed URL",
    {204: returns("Revoked: the feed URL stops working.")},
    errors={404: problem("No feed to revoke.")},
)
def revoke_calendar_feed() -> Response[None]:
    calendar_service.revoke(current_user_id(app))
    return Response(status_code=204, content_type=None, body=None)


@links.route(
    "GET",
    "/calendar/<feed_secret>",
    "getCalendarFeed",
    "Calendar feed (iCalendar)",
    {
        200: returns(
            "The feed.",
            content={
                "text/calendar": {
                    "schema": {"type": "string"},
                    "examples": {
                        "one task": {
                            "value": "BEGIN:VCALENDAR\r\nPRODID:-//Taskline//Task deadlines//EN"
                            "\r\nVERSION:2.0\r\nBEGIN:VEVENT\r\nUID:task-42@taskline\r\n"
                            "DTSTART:20300115T090000Z\r\nSUMMARY:Write the quarterly report\r\n"
                            "BEGIN:VALARM\r\nACTION:DISPLAY\r\nTRIGGER:-PT2H\r\nEND:VALARM"
                            "\r\nEND:VEVENT\r\nEND:VCALENDAR\r\n"
                        }
                    },
                }
            },
            headers=FEED_HEADERS,
        )
    },
    description="RFC 5545 iCalendar of the account's open tasks (deadlines up to 90 days past, "
    "at most 1000): one VEVENT per task at its deadline, with a stable UID and a VALARM at its "
    "reminder. No bearer token: the secret in the URL is the credential. Poll with "
    "If-None-Match: 304 while nothing changed. Unknown, rotated or revoked secrets are 404.",
    errors={
        304: returns("Not modified since the ETag sent in If-None-Match.", headers=FEED_HEADERS),
        404: problem("No such feed (unknown, rotated or revoked)."),
    },
    invalid=True,
)
def calendar_feed(
    feed_secret: FeedSecret,
    if_none_match: Annotated[
        str | None,
        Header(alias="If-None-Match", max_length=2048, description="An ETag of the feed."),
    ] = None,
) -> Response[str]:
    feed = calendar_service.render(feed_secret)
    headers = {
        "ETag": feed.etag,
        # Only the subscriber's own client may keep it, and must check back each time.
        "Cache-Control": "private, no-cache",
        "Referrer-Policy": "no-referrer",
    }
    if calendar_service.matches(if_none_match, feed.etag):
        return Response(status_code=304, content_type=None, body="", headers=headers)
    return Response(
        status_code=200, content_type=CALENDAR, body=feed.body.decode(), headers=headers
    )


@links.route(
    "GET",
    "/unsubscribe/<token>",
    "getUnsubscribePage",
    "Unsubscribe confirmation page",
    {200: _html_page("The page.")},
    description="The page an email's unsubscribe link opens: a button that POSTs to the same "
    "URL. Opening it changes nothing (link scanners open links too).",
    errors=LINK_ERRORS,
    invalid=True,
)
def unsubscribe_page(token: UnsubscribeToken) -> Response[str]:
    notification_settings_service.check_unsubscribe_link(token)
    return _page(
        "Unsubscribe from Taskline emails?",
        "You will no longer get emails about your task deadlines. You can switch them on again "
        "in your notification settings.",
        form=True,
    )


@links.route(
    "POST",
    "/unsubscribe/<token>",
    "unsubscribe",
    "Unsubscribe with one click (RFC 8058)",
    {200: _html_page("Unsubscribed.")},
    description="What a mail client's unsubscribe button sends (RFC 8058): the body "
    "`List-Unsubscribe=One-Click`, as a form or multipart/form-data. Switches email off for "
    "the account; repeating it is harmless. A link sent before email was switched on again is "
    "410 and changes nothing.",
    errors={400: problem("No `List-Unsubscribe=One-Click` in the body."), **LINK_ERRORS},
    invalid=True,
    body="own",
    # multipart/form-data, which RFC 8058 also allows, is accepted as well
    # (tests/functions/test_reminders.py) but left out here: see docs/deadlines.md.
    request_body=ONE_CLICK_BODY,
)
def unsubscribe(token: UnsubscribeToken) -> Response[str]:
    _require_one_click()
    notification_settings_service.unsubscribe(token)
    metrics.add_metric(name="Unsubscribed", unit=MetricUnit.Count, value=1)
    return _page(
        "You are unsubscribed",
        "Taskline will not email you about deadlines any more. Switch emails on again in your "
        "notification settings whenever you like.",
        form=False,
    )


def _require_one_click() -> None:
    """RFC 8058 section 3.2: the POST carries `List-Unsubscribe=One-Click`."""
    event = app.current_event
    body = event.decoded_body or ""
    content_type = event.headers.get("content-type") or ""
    values: list[str] = []
    if media_type(content_type) == MULTIPART:
        parsed = BytesParser(policy=HTTP).parsebytes(
            f"Content-Type: {content_type}\r\n\r\n".encode() + body.encode()
        )
        for part in parsed.iter_parts() if parsed.is_multipart() else ():
            if part.get_param("name", header="content-disposition") == "List-Unsubscribe":
                # Whatever the part's own Content-Type (text/plain, octet-stream), its bytes.
                payload = part.get_payload(decode=True)
                text = payload.decode("utf-8", "replace") if isinstance(payload, bytes) else ""
                values.append(text.strip())
    else:
        values = parse_qs(body, keep_blank_values=True).get("List-Unsubscribe", [])
    if values != ["One-Click"]:
        raise OneClickBodyMissing


def _page(title: str, message: str, *, form: bool) -> Response[str]:
    """One of the unsubscribe pages: a title, a line of text and, with `form`, the button."""
    button = (
        "<form method='post'><input type='hidden' name='List-Unsubscribe' value='One-Click'>"
        "<button type='submit'>Unsubscribe</button></form>"
        if form
        else ""
    )
    page = (
        "<!DOCTYPE html><html lang='en'><head><meta charset='utf-8'>"
        "<meta name='viewport' content='width=device-width, initial-scale=1'>"
        f"<title>{html.escape(title)}</title></head><body>"
        f"<h1>{html.escape(title)}</h1><p>{html.escape(message)}</p>{button}</body></html>"
    )
    return Response(status_code=200, content_type=HTML, body=page, headers=PAGE_HEADERS)


def _base_url() -> str:
    """The API's public URL (PUBLIC_API_URL), else the host this request came to."""
    configured = get_settings().public_api_url
    if configured:
        return configured
    # API Gateway's domain name, never the client's Host header.
    host = app.current_event.request_context.domain_name
    local = host.split(":", 1)[0] in {"localhost", "127.0.0.1"}
    return f"{'http' if local else 'https'}://{host}"


lambda_handler = lambda_entry_point(app, logger, metrics)
