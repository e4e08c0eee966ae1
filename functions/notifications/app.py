"""Reminders people control: /users/me/notifications, /users/me/calendar, the calendar feed
(/calendar/{feed_secret}, no sign-in: the secret is the credential) and one-click unsubscribe
(/unsubscribe/{token}, RFC 8058, no sign-in: the signed token is the credential)."""

from __future__ import annotations

import html
from email.parser import BytesParser
from email.policy import HTTP
from typing import Annotated
from urllib.parse import parse_qs

from aws_lambda_powertools import Logger, Metrics
from aws_lambda_powertools.event_handler import Response
from aws_lambda_powertools.event_handler.openapi.params import Body, Header, Path
from aws_lambda_powertools.event_handler.openapi.types import OpenAPIResponse, OpenAPIResponseHeader
from aws_lambda_powertools.metrics import MetricUnit

from taskline import snapstart
from taskline.api.auth import BEARER_SECURITY, current_user_id
from taskline.api.documentation import (
    ALWAYS,
    BODY_ERRORS,
    INVALID,
    NO_STORE,
    UNAUTHORIZED,
    no_content,
    openapi_examples,
    problem,
)
from taskline.api.resolver import FORM, JSON, TasklineResolver, lambda_entry_point, media_type
from taskline.errors import OneClickBodyMissing
from taskline.schemas import (
    CalendarFeedOut,
    NotificationPreferencesOut,
    NotificationPreferencesPatch,
    NotificationPreferencesReplace,
)
from taskline.services import calendar, notification_settings
from taskline.settings import get_settings

logger = Logger()
metrics = Metrics()
# SnapStart: warm up before the snapshot, reconnect and reseed after a restore.
snapstart.register_hooks()
app = TasklineResolver()
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
NOT_OUR_LINK = problem("Not a link we issued.")
LINK_GONE = problem("Expired, or email was switched on again since.")
PREFERENCES_OUT: OpenAPIResponse = {
    "description": "The account's notification preferences.",
    "content": {JSON: {"model": NotificationPreferencesOut}},
}
PREFERENCES_DESCRIPTION = (
    "Email on or off, which stages the deadline check sends (`task.due_soon`, `task.overdue`) "
    "and how long before a deadline the due-soon reminder comes (`due_soon_minutes`, 1 to "
    "10080; default 1440, 24 h). A task's own `remind_before` overrides the lead time. Stages "
    "switched off are neither published nor emailed; email off still publishes to the topic."
)


@app.get(
    "/users/me/notifications",
    operation_id="getNotificationPreferences",
    tags=["Notifications"],
    summary="My notification preferences",
    description=PREFERENCES_DESCRIPTION,
    security=BEARER_SECURITY,
    responses={200: PREFERENCES_OUT, 401: UNAUTHORIZED, **ALWAYS},
)
def get_preferences() -> NotificationPreferencesOut:
    return notification_settings.get(current_user_id(app))


@app.put(
    "/users/me/notifications",
    operation_id="replaceNotificationPreferences",
    tags=["Notifications"],
    summary="Replace my notification preferences",
    description=PREFERENCES_DESCRIPTION
    + " `email_enabled: true` also clears an address SES reported as undeliverable.",
    security=BEARER_SECURITY,
    responses={200: PREFERENCES_OUT, 401: UNAUTHORIZED, 422: INVALID, **BODY_ERRORS, **ALWAYS},
)
def replace_preferences(
    preferences: Annotated[
        NotificationPreferencesReplace,
        Body(openapi_examples=openapi_examples(NotificationPreferencesReplace)),
    ],
) -> NotificationPreferencesOut:
    return notification_settings.update(current_user_id(app), preferences)


@app.patch(
    "/users/me/notifications",
    operation_id="patchNotificationPreferences",
    tags=["Notifications"],
    summary="Change some notification preferences",
    description=PREFERENCES_DESCRIPTION
    + " `email_enabled: true` also clears an address SES reported as undeliverable.",
    security=BEARER_SECURITY,
    responses={200: PREFERENCES_OUT, 401: UNAUTHORIZED, 422: INVALID, **BODY_ERRORS, **ALWAYS},
)
def patch_preferences(
    changes: Annotated[
        NotificationPreferencesPatch,
        Body(openapi_examples=openapi_examples(NotificationPreferencesPatch)),
    ],
) -> NotificationPreferencesOut:
    return notification_settings.update(current_user_id(app), changes)


@app.post(
    "/users/me/calendar",
    status_code=201,
    operation_id="issueCalendarFeed",
    tags=["Notifications"],
    summary="Get a secret calendar feed URL (rotates an earlier one)",
    description="Issues a secret URL serving my open tasks as an iCalendar feed (RFC 5545) "
    "for calendar apps. The URL is shown only now; calling this again replaces it (the old "
    "one stops working). Anyone holding the URL can read the feed.",
    security=BEARER_SECURITY,
    responses={
        201: {
            "description": "The new feed URL.",
            "headers": NO_STORE,
            "content": {JSON: {"model": CalendarFeedOut}},
        },
        401: UNAUTHORIZED,
        **ALWAYS,
    },
)
def issue_calendar_feed() -> Response[CalendarFeedOut]:
    feed = calendar.issue(current_user_id(app), _base_url())
    metrics.add_metric(name="CalendarFeedIssued", unit=MetricUnit.Count, value=1)
    return Response(
        status_code=201, content_type=JSON, body=feed, headers={"Cache-Control": "no-store"}
    )


@app.delete(
    "/users/me/calendar",
    status_code=204,
    operation_id="revokeCalendarFeed",
    tags=["Notifications"],
    summary="Revoke my calendar feed URL",
    security=BEARER_SECURITY,
    responses={
        204: no_content("Revoked: the feed URL stops working."),
        401: UNAUTHORIZED,
        404: problem("No feed to revoke."),
        **ALWAYS,
    },
)
def revoke_calendar_feed() -> Response[None]:
    calendar.revoke(current_user_id(app))
    return Response(status_code=204, content_type=None, body=None)


@app.get(
    "/calendar/<feed_secret>",
    operation_id="getCalendarFeed",
    tags=["Notifications"],
    summary="Calendar feed (iCalendar)",
    description="RFC 5545 iCalendar of the account's open tasks (deadlines up to 90 days past, "
    "at most 1000): one VEVENT per task at its deadline, with a stable UID and a VALARM at its "
    "reminder. No bearer token: the secret in the URL is the credential. Poll with "
    "If-None-Match: 304 while nothing changed. Unknown, rotated or revoked secrets are 404.",
    responses={
        200: {
            "description": "The feed.",
            "headers": FEED_HEADERS,
            "content": {
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
        },
        304: {
            "description": "Not modified since the ETag sent in If-None-Match.",
            "headers": FEED_HEADERS,
            "content": {},
        },
        404: problem("No such feed (unknown, rotated or revoked)."),
        422: INVALID,
        **ALWAYS,
    },
)
def calendar_feed(
    feed_secret: FeedSecret,
    if_none_match: Annotated[
        str | None,
        Header(alias="If-None-Match", max_length=2048, description="An ETag of the feed."),
    ] = None,
) -> Response[str]:
    feed = calendar.render(feed_secret)
    headers = {
        "ETag": feed.etag,
        # Only the subscriber's own client may keep it, and must check back each time.
        "Cache-Control": "private, no-cache",
        "Referrer-Policy": "no-referrer",
    }
    if calendar.matches(if_none_match, feed.etag):
        return Response(status_code=304, content_type=None, body="", headers=headers)
    return Response(
        status_code=200, content_type=CALENDAR, body=feed.body.decode(), headers=headers
    )


@app.get(
    "/unsubscribe/<token>",
    operation_id="getUnsubscribePage",
    tags=["Notifications"],
    summary="Unsubscribe confirmation page",
    description="The page an email's unsubscribe link opens: a button that POSTs to the same "
    "URL. Opening it changes nothing (link scanners open links too).",
    responses={
        200: {"description": "The page.", "content": {"text/html": {"schema": {"type": "string"}}}},
        404: NOT_OUR_LINK,
        410: LINK_GONE,
        422: INVALID,
        **ALWAYS,
    },
)
def unsubscribe_page(token: UnsubscribeToken) -> Response[str]:
    notification_settings.check_unsubscribe_link(token)
    page = _page(
        "Unsubscribe from Taskline emails?",
        "You will no longer get emails about your task deadlines. You can switch them on again "
        "in your notification settings.",
        form=True,
    )
    return Response(status_code=200, content_type=HTML, body=page, headers=PAGE_HEADERS)


@app.post(
    "/unsubscribe/<token>",
    operation_id="unsubscribe",
    tags=["Notifications"],
    summary="Unsubscribe with one click (RFC 8058)",
    description="What a mail client's unsubscribe button sends (RFC 8058): the body "
    "`List-Unsubscribe=One-Click`, as a form or multipart/form-data. Switches email off for "
    "the account; repeating it is harmless. A link sent before email was switched on again is "
    "410 and changes nothing.",
    responses={
        200: {
            "description": "Unsubscribed.",
            "content": {"text/html": {"schema": {"type": "string"}}},
        },
        400: problem("No `List-Unsubscribe=One-Click` in the body."),
        404: NOT_OUR_LINK,
        410: LINK_GONE,
        413: problem("The body is larger than 64 KiB."),
        415: problem("Unsupported Content-Type."),
        422: INVALID,
        **ALWAYS,
    },
    # multipart/form-data, which RFC 8058 also allows, is accepted as well
    # (tests/test_reminders.py) but left out here: see docs/deadlines.md.
    openapi_extensions={"requestBody": ONE_CLICK_BODY},
)
def unsubscribe(token: UnsubscribeToken) -> Response[str]:
    _require_one_click()
    notification_settings.unsubscribe(token)
    metrics.add_metric(name="Unsubscribed", unit=MetricUnit.Count, value=1)
    page = _page(
        "You are unsubscribed",
        "Taskline will not email you about deadlines any more. Switch emails on again in your "
        "notification settings whenever you like.",
        form=False,
    )
    return Response(status_code=200, content_type=HTML, body=page, headers=PAGE_HEADERS)


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


def _page(title: str, message: str, *, form: bool) -> str:
    button = (
        "<form method='post'><input type='hidden' name='List-Unsubscribe' value='One-Click'>"
        "<button type='submit'>Unsubscribe</button></form>"
        if form
        else ""
    )
    return (
        "<!DOCTYPE html><html lang='en'><head><meta charset='utf-8'>"
        "<meta name='viewport' content='width=device-width, initial-scale=1'>"
        f"<title>{html.escape(title)}</title></head><body>"
        f"<h1>{html.escape(title)}</h1><p>{html.escape(message)}</p>{button}</body></html>"
    )


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
