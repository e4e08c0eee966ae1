"""The one place where exceptions become HTTP responses.

Everything but the token endpoints' own errors is RFC 9457 problem+json; those (POST /token,
POST /token/revoke) follow RFC 6749 section 5.2, throttling included. Unexpected errors become
a generic 500 with the correlation id.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from aws_lambda_powertools import Logger
from aws_lambda_powertools.event_handler import APIGatewayHttpResolver, Response
from aws_lambda_powertools.event_handler.openapi.exceptions import (
    RequestUnsupportedContentType,
    RequestValidationError,
)
from aws_lambda_powertools.logging.exceptions import OrphanedChildLoggerError

from taskline import errors

PROBLEM_JSON = "application/problem+json"
PROBLEM_TYPE_PREFIX = "urn:taskline:problem:"
BEARER_CHALLENGE = 'Bearer realm="taskline"'

logger = Logger(child=True)


@dataclass(frozen=True)
class Problem:
    status: int
    slug: str
    title: str
    detail: Callable[[Any], str]
    headers: Callable[[Any], dict[str, str]] = field(default=lambda _: {})
    extra: Callable[[Any], dict[str, Any]] = field(default=lambda _: {})


def _bearer_challenge(error: errors.AuthenticationRequired) -> dict[str, str]:
    if not error.token_presented:
        return {"WWW-Authenticate": BEARER_CHALLENGE}
    description = error.reason.replace('"', "'")
    challenge = f'{BEARER_CHALLENGE}, error="invalid_token", error_description="{description}"'
    return {"WWW-Authenticate": challenge}


def _retry_after(error: errors.TooManyAttempts) -> dict[str, str]:
    return {"Retry-After": str(error.retry_after)}


def _too_many_attempts(error: errors.TooManyAttempts) -> str:
    return f"Too many failed password attempts; try again in {error.retry_after} seconds."


PROBLEMS: dict[type[errors.TasklineError], Problem] = {
    errors.TaskNotFound: Problem(404, "task-not-found", "Not Found", lambda _: "No such task."),
    errors.UnusableField: Problem(
        422,
        "validation-error",
        "Unprocessable Content",
        lambda e: e.message,
        extra=lambda e: {
            "errors": [{"loc": ["body", e.field], "msg": e.message, "type": "value_error"}]
        },
    ),
    errors.PreconditionFailed: Problem(
        412,
        "precondition-failed",
        "Precondition Failed",
        lambda _: (
            "The task has changed since you read it: If-Match names none of its current "
            "entity tags. Fetch it again (GET returns the current ETag) and retry on that version."
        ),
    ),
    errors.IdempotencyKeyReused: Problem(
        422,
        "idempotency-key-reused",
        "Unprocessable Content",
        lambda _: (
            "This Idempotency-Key was already used with a different request; "
            "send a new key for a new task."
        ),
        extra=lambda _: {
            "errors": [
                {
                    "loc": ["header", "idempotency-key"],  # as validation errors name it
                    "msg": "already used with a different request",
                    "type": "idempotency_key_reused",
                }
            ]
        },
    ),
    errors.EmailAlreadyRegistered: Problem(
        409, "email-taken", "Conflict", lambda _: "An account with this email already exists."
    ),
    errors.AuthenticationRequired: Problem(
        401, "unauthorized", "Unauthorized", lambda e: e.reason, headers=_bearer_challenge
    ),
    errors.InvalidQuery: Problem(
        422,
        "validation-error",
        "Unprocessable Content",
        lambda e: e.message,
        extra=lambda e: {
            "errors": [{"loc": ["query", e.parameter], "msg": e.message, "type": e.error_type}]
        },
    ),
    errors.DatabaseUnavailable: Problem(
        503,
        "database-unavailable",
        "Service Unavailable",
        lambda _: "The database is unavailable; try again shortly.",
        headers=lambda _: {"Retry-After": "2"},
    ),
    # A connect that ran out of time: the same problem, with the Retry-After the deployment
    # expects (Aurora Serverless v2 resuming from a pause takes about 15 s).
    errors.DatabaseResuming: Problem(
        503,
        "database-unavailable",
        "Service Unavailable",
        lambda e: (
            "The database did not answer in time (it may be resuming after a pause); "
            f"try again in {e.retry_after} seconds."
        ),
        headers=lambda e: {"Retry-After": str(e.retry_after)},
    ),
    errors.DeadlineGateUnavailable: Problem(
        503,
        "service-unavailable",
        "Service Unavailable",
        lambda _: "The service is temporarily unavailable; try again shortly.",
        headers=lambda _: {"Retry-After": "2"},
    ),
    errors.SecretsUnavailable: Problem(
        503,
        "service-unavailable",
        "Service Unavailable",
        lambda _: "The service is temporarily unavailable; try again shortly.",
        headers=lambda _: {"Retry-After": "5"},
    ),
    errors.MalformedBody: Problem(
        400, "malformed-body", "Bad Request", lambda _: "The request body is not valid JSON."
    ),
    errors.MalformedForm: Problem(400, "malformed-form", "Bad Request", lambda e: str(e)),
    errors.PayloadTooLarge: Problem(
        413, "payload-too-large", "Content Too Large", lambda e: str(e)
    ),
    errors.UnsupportedMediaType: Problem(
        415,
        "unsupported-media-type",
        "Unsupported Media Type",
        lambda e: f"Send the body as {' or '.join(e.accepted)}.",
        headers=lambda e: {"Accept-Post": ", ".join(e.accepted)},
    ),
    errors.WrongPassword: Problem(
        403, "wrong-password", "Forbidden", lambda _: "The password is incorrect."
    ),
    errors.TooManyAttempts: Problem(
        429, "too-many-attempts", "Too Many Requests", _too_many_attempts, headers=_retry_after
    ),
    errors.RouteNotFound: Problem(
        404, "route-not-found", "Not Found", lambda _: "No route matches this path."
    ),
    errors.MethodNotAllowed: Problem(
        405,
        "method-not-allowed",
        "Method Not Allowed",
        lambda e: f"This path accepts {', '.join(e.allowed)}.",
        headers=lambda e: {"Allow": ", ".join(e.allowed)},
    ),
    errors.UnsubscribeLinkInvalid: Problem(
        404,
        "unsubscribe-link-invalid",
        "Not Found",
        lambda _: "This unsubscribe link is not valid. Sign in to change your email settings.",
    ),
    errors.UnsubscribeLinkExpired: Problem(
        410,
        "unsubscribe-link-expired",
        "Gone",
        lambda _: (
            "This unsubscribe link has expired, or email was switched on again since it was "
            "sent. Use the link in a newer email, or sign in to change your email settings."
        ),
    ),
    errors.VerificationLinkInvalid: Problem(
        404,
        "verification-link-invalid",
        "Not Found",
        lambda _: "This verification link is not valid. Sign in to request a new one.",
    ),
    errors.VerificationLinkExpired: Problem(
        410,
        "verification-link-expired",
        "Gone",
        lambda _: (
            "This verification link has expired or was superseded (the address changed, or "
            "stopped taking email, since it was sent). Sign in to request a new one."
        ),
    ),
    errors.TooManyEmails: Problem(
        429,
        "too-many-emails",
        "Too Many Requests",
        lambda e: f"Too many emails of this kind; try again in {e.retry_after} seconds.",
        headers=lambda e: {"Retry-After": str(e.retry_after)},
    ),
    errors.EmailNotSent: Problem(
        503,
        "email-not-sent",
        "Service Unavailable",
        lambda _: "The email could not be sent now; try again later.",
        headers=lambda _: {"Retry-After": "60"},
    ),
    errors.OneClickBodyMissing: Problem(
        400,
        "one-click-body-missing",
        "Bad Request",
        lambda _: "Send the form field List-Unsubscribe=One-Click (RFC 8058) to unsubscribe.",
    ),
    errors.CalendarFeedNotFound: Problem(
        404, "calendar-feed-not-found", "Not Found", lambda _: "No such calendar feed."
    ),
    errors.ListNotFound: Problem(404, "list-not-found", "Not Found", lambda _: "No such list."),
    errors.MemberNotFound: Problem(
        404, "member-not-found", "Not Found", lambda _: "The list has no such member."
    ),
    errors.InvitationNotFound: Problem(
        404, "invitation-not-found", "Not Found", lambda _: "No such invitation."
    ),
    errors.InvitationExpired: Problem(
        410,
        "invitation-expired",
        "Gone",
        lambda _: "This invitation has expired; ask the list's owner to invite you again.",
    ),
    errors.Forbidden: Problem(403, "forbidden", "Forbidden", lambda e: e.reason),
    errors.EmailUnverified: Problem(
        403,
        "email-unverified",
        "Forbidden",
        lambda _: "Verify your email address first (POST /users/me/email-verification).",
    ),
    errors.ListConflict: Problem(409, "list-conflict", "Conflict", lambda e: e.reason),
    errors.SendQuotaExceeded: Problem(
        429,
        "send-quota-exceeded",
        "Too Many Requests",
        lambda e: f"Too many invitations today; try again in {e.retry_after} seconds.",
        headers=lambda e: {"Retry-After": str(e.retry_after)},
    ),
}


@dataclass(frozen=True)
class OAuthError:
    code: str
    description: Callable[[Any], str]
    status: int = 400
    headers: Callable[[Any], dict[str, str]] = field(default=lambda _: {})


# Errors in RFC 6749 section 5.2's format, raised only by the token endpoints.
OAUTH_ERRORS: dict[type[errors.TasklineError], OAuthError] = {
    errors.InvalidCredentials: OAuthError(
        "invalid_grant", lambda _: "The email or password is incorrect."
    ),
    errors.InvalidRefreshToken: OAuthError(
        "invalid_grant", lambda _: "The refresh token is invalid, expired or revoked."
    ),
    errors.InvalidTokenRequest: OAuthError("invalid_request", lambda e: e.description),
    errors.UnsupportedGrantType: OAuthError(
        "unsupported_grant_type",
        lambda _: "grant_type must be password or refresh_token.",
    ),
    # `slow_down` is the registered OAuth error code for "too many requests, wait" (RFC 8628).
    errors.LoginThrottled: OAuthError(
        "slow_down", _too_many_attempts, status=429, headers=_retry_after
    ),
}


def problem_response(
    status: int,
    slug: str,
    title: str,
    detail: str,
    headers: dict[str, str] | None = None,
    **extra: Any,
) -> Response[str]:
    body = {"type": PROBLEM_TYPE_PREFIX + slug, "title": title, "status": status, "detail": detail}
    return Response(
        status_code=status,
        content_type=PROBLEM_JSON,
        body=json.dumps({**body, **extra}),
        headers=headers,
    )


def response_for(error: errors.TasklineError) -> Response[str]:
    for cls in type(error).__mro__:
        if cls in OAUTH_ERRORS:
            oauth = OAUTH_ERRORS[cls]
            body = {"error": oauth.code, "error_description": oauth.description(error)}
            return Response(
                status_code=oauth.status,
                content_type="application/json",
                body=json.dumps(body),
                headers={"Cache-Control": "no-store", "Pragma": "no-cache", **oauth.headers(error)},
            )
        if cls in PROBLEMS:
            spec = PROBLEMS[cls]
            return problem_response(
                spec.status,
                spec.slug,
                spec.title,
                spec.detail(error),
                spec.headers(error),
                **spec.extra(error),
            )
    return internal_error_response()


# pydantic prefixes the message of a ValueError raised in a validator with this; the message
# after it is written for people (schemas.py), the prefix is not.
_VALUE_ERROR_PREFIX = "Value error, "


def _message(failure: dict[str, Any]) -> str:
    message = str(failure["msg"])
    if failure["type"] == "value_error":
        return message.removeprefix(_VALUE_ERROR_PREFIX)
    return message


def validation_problem(failures: list[dict[str, Any]]) -> Response[str]:
    listed = [
        {"loc": list(failure["loc"]), "msg": _message(failure), "type": failure["type"]}
        for failure in failures
    ]
    summary = "; ".join(f"{'.'.join(map(str, e['loc']))}: {e['msg']}" for e in listed[:5])
    return problem_response(
        422,
        "validation-error",
        "Unprocessable Content",
        f"The request is invalid: {summary}.",
        errors=listed,
    )


def _correlation_id() -> str:
    try:
        return logger.get_correlation_id() or "unknown"
    except OrphanedChildLoggerError:  # no service logger configured: still answer the contract
        return "unknown"


def internal_error_response() -> Response[str]:
    correlation_id = _correlation_id()
    return problem_response(
        500,
        "internal-error",
        "Internal Server Error",
        f"Something went wrong on our side; quote correlation id {correlation_id} to report it.",
        correlation_id=correlation_id,
    )


def _domain(error: errors.TasklineError) -> Response[str]:
    return response_for(error)


def _invalid(error: RequestValidationError) -> Response[str]:
    failures = list(error.errors())
    if any(failure.get("type") == "json_invalid" for failure in failures):
        return response_for(errors.MalformedBody())
    return validation_problem(failures)


def _unsupported(_: RequestUnsupportedContentType) -> Response[str]:
    return response_for(errors.UnsupportedMediaType(("application/json",)))


def _unexpected(error: Exception) -> Response[str]:
    logger.exception("Unhandled error", exc_info=error)
    return internal_error_response()


def register(app: APIGatewayHttpResolver) -> None:
    """Install the handlers that turn every exception into the contract's format."""
    app.exception_handler_manager.update_exception_handlers(
        {
            errors.TasklineError: _domain,
            RequestValidationError: _invalid,
            RequestUnsupportedContentType: _unsupported,
            Exception: _unexpected,
        }
    )
