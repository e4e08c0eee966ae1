"""Domain exceptions: they say what went wrong; `taskline.api.problems` says how it is shown."""

from __future__ import annotations

from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from taskline.schemas import DeadlineCheckSummary


class TasklineError(Exception):
    """Base class of every error Taskline raises on purpose."""


class TaskNotFound(TasklineError):
    """No task with that id belongs to the caller (missing and foreign tasks look the same)."""


class Forbidden(TasklineError):
    """The caller can see this task (or list) but their role does not let them change it."""


class UnusableField(TasklineError):
    """A body field names something the caller may not use (a list they are not a member of, an
    assignee who is not a member of the task's list), said the same whether or not it exists."""

    def __init__(self, field: str, message: str) -> None:
        super().__init__(message)
        self.field = field
        self.message = message


class PreconditionFailed(TasklineError):
    """A conditional write (If-Match) found the task changed since the client last read it."""


class IdempotencyKeyReused(TasklineError):
    """The Idempotency-Key was already used by this client for a different request."""


class EmailAlreadyRegistered(TasklineError):
    """Another account already uses this email (compared case-insensitively)."""


class InvalidCredentials(TasklineError):
    """Unknown email, wrong password or an unusable password at login."""


class AuthenticationRequired(TasklineError):
    """The bearer token is missing or cannot be trusted."""

    def __init__(
        self, reason: str = "A valid bearer token is required.", *, token_presented: bool = True
    ) -> None:
        super().__init__(reason)
        self.reason = reason
        self.token_presented = token_presented


class InvalidQuery(TasklineError):
    """A query parameter has the right type but makes no sense (bad cursor, empty range)."""

    def __init__(self, parameter: str, message: str, error_type: str = "value_error") -> None:
        super().__init__(message)
        self.parameter = parameter
        self.message = message
        self.error_type = error_type


class DatabaseUnavailable(TasklineError):
    """The database could not be reached or did not answer in time."""


class SecretsUnavailable(TasklineError):
    """A secret (signing key, database credentials) could not be read from the secret store."""


class UnsubscribeLinkInvalid(TasklineError):
    """The unsubscribe link was not issued by us (forged, altered, another kind of token)."""


class UnsubscribeLinkExpired(TasklineError):
    """The unsubscribe link expired, or email was switched on again after it was issued."""


class OneClickBodyMissing(TasklineError):
    """An unsubscribe POST without the body RFC 8058 prescribes (List-Unsubscribe=One-Click)."""


class CalendarFeedNotFound(TasklineError):
    """No calendar feed has this secret (never issued, rotated or revoked)."""


# Errors in the request itself, before any use case runs.


class MalformedBody(TasklineError):
    """The body is not valid JSON (or not valid UTF-8 / base64)."""


class PayloadTooLarge(TasklineError):
    """The body is larger than the API accepts."""


class UnsupportedMediaType(TasklineError):
    """The body's Content-Type is not one this route reads."""

    def __init__(self, accepted: tuple[str, ...]) -> None:
        super().__init__(accepted)
        self.accepted = accepted


class RouteNotFound(TasklineError):
    """No route has this path."""


class MethodNotAllowed(TasklineError):
    """The path exists, but not with this method."""

    def __init__(self, allowed: list[str]) -> None:
        super().__init__(allowed)
        self.allowed = allowed


class InvalidTokenRequest(TasklineError):
    """POST /token or /token/revoke without the fields it needs (RFC 6749 invalid_request)."""

    def __init__(self, description: str) -> None:
        super().__init__(description)
        self.description = description


class UnsupportedGrantType(TasklineError):
    """POST /token with a grant_type other than `password` or `refresh_token`."""


class InvalidRefreshToken(TasklineError):
    """The refresh token is unknown, expired, already used, or its sign-in has ended."""


class SignInEnded(AuthenticationRequired):
    """The access token is genuine, but its sign-in was logged out or its account deleted."""

    def __init__(self) -> None:
        super().__init__("This session has ended; sign in again.")


class AccountGone(AuthenticationRequired):
    """A write named an account that no longer exists (a foreign-key violation on users.id):
    the access token outlived its account."""

    def __init__(self) -> None:
        super().__init__("The account behind this token no longer exists.")


class WrongPassword(TasklineError):
    """The password given to confirm a sensitive change is not the account's password."""


class TooManyAttempts(TasklineError):
    """Too many failed password checks for this account or from this address; wait and retry."""

    def __init__(self, retry_after: int) -> None:
        super().__init__(retry_after)
        self.retry_after = retry_after  # whole seconds, at least 1


class LoginThrottled(TooManyAttempts):
    """TooManyAttempts at POST /token, where errors take RFC 6749's format."""


# Deadline notifications (never reach HTTP: the scheduled function raises them to Lambda).


class DeliveryUnavailable(TasklineError):
    """SNS or SES failed as a whole (not one message): the run stops and raises, so Lambda's
    retries and the dead-letter queue take over. `summary` says what the run did before."""

    def __init__(self, reason: str, summary: DeadlineCheckSummary | None = None) -> None:
        super().__init__(reason)
        self.reason = reason
        self.summary = summary


class EmailRejected(TasklineError):
    """SES refused one email (e.g. an invalid or unverified recipient); others are unaffected."""

    def __init__(self, code: str) -> None:
        super().__init__(code)
        self.code = code
