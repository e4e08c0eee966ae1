"""Domain exceptions: they say what went wrong; `taskline.api.problems` says how it is shown."""

from __future__ import annotations

from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from taskline.schemas import DeadlineCheckSummary


class TasklineError(Exception):
    """Base class of every error Taskline raises on purpose."""


class TaskNotFound(TasklineError):
    """No task with that id belongs to the caller (missing and foreign tasks look the same)."""


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


class DatabaseResuming(DatabaseUnavailable):
    """Connecting ran out of time (DB_CONNECT_TIMEOUT_SECONDS), as when a paused Aurora
    Serverless v2 instance is resuming: nothing was sent, retry after `retry_after` seconds."""

    def __init__(self, retry_after: int) -> None:
        super().__init__(retry_after)
        self.retry_after = retry_after


class DeadlineGateUnavailable(TasklineError):
    """The deadline gate (a DynamoDB item: when the deadline check next has work) could not be
    read or written; a write that schedules a reminder is refused rather than risk missing it."""


class SecretsUnavailable(TasklineError):
    """A secret (signing key, database credentials) could not be read from the secret store."""


class UnsubscribeLinkInvalid(TasklineError):
    """The unsubscribe link was not issued by us (forged, altered, another kind of token)."""


class UnsubscribeLinkExpired(TasklineError):
    """The unsubscribe link expired, or email was switched on again after it was issued."""


class VerificationLinkInvalid(TasklineError):
    """The email verification link was not issued by us (forged, altered, another kind of
    token, an account that no longer exists)."""


class VerificationLinkExpired(TasklineError):
    """The verification link expired, or was superseded: the account's address changed, or the
    address was unsubscribed, bounced or complained about after the link was issued."""


class TooManyEmails(TasklineError):
    """The account has caused as many emails of this kind as its window allows."""

    def __init__(self, retry_after: int) -> None:
        super().__init__(retry_after)
        self.retry_after = retry_after  # whole seconds, at least 1


class EmailNotSent(TasklineError):
    """The email could not be sent now (SES failed, or refused the address)."""


class OneClickBodyMissing(TasklineError):
    """An unsubscribe POST without the body RFC 8058 prescribes (List-Unsubscribe=One-Click)."""


class CalendarFeedNotFound(TasklineError):
    """No calendar feed has this secret (never issued, rotated or revoked)."""


# Errors in the request itself, before any use case runs.


class MalformedBody(TasklineError):
    """The body is not valid JSON (or not valid UTF-8 / base64)."""


class PayloadTooLarge(TasklineError):
    """The body is larger than the API accepts."""


class MalformedForm(TasklineError):
    """A form body this API will not read (no multipart boundary, too many parts)."""


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


# Shared lists


class ListNotFound(TasklineError):
    """No such list, or the caller is not a member (the two look the same)."""


class MemberNotFound(TasklineError):
    """The list has no such member."""


class InvitationNotFound(TasklineError):
    """No such invitation for the caller (missing, revoked, or addressed to someone else)."""


class InvitationExpired(TasklineError):
    """The invitation is the caller's, but its 7 days are over."""


class Forbidden(TasklineError):
    """The caller can see this task or list, but their role in the list does not allow this."""

    def __init__(self, reason: str = "Your role in this list does not allow this change.") -> None:
        super().__init__(reason)
        self.reason = reason


class EmailUnverified(TasklineError):
    """The invitation is addressed to the caller's email, which they have not verified yet."""


class ListConflict(TasklineError):
    """The change would break a rule of lists (a limit, the one owner, an existing member)."""

    def __init__(self, reason: str) -> None:
        super().__init__(reason)
        self.reason = reason


class SendQuotaExceeded(TasklineError):
    """The account caused as many emails of this kind as a day allows; wait and retry."""

    def __init__(self, retry_after: int) -> None:
        super().__init__(retry_after)
        self.retry_after = retry_after  # whole seconds, at least 1
