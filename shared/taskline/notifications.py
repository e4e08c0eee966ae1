"""Delivering deadline notifications: to the SNS topic (PublishBatch), by SES email, or to the log.

AWS clients are built on first use (never at import time) and kept for the container; boto3 and
botocore are imported inside the functions that need them, so importing this module is cheap and
moto can patch the clients in tests.
"""

from __future__ import annotations

import html
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from email.headerregistry import Address
from email.message import EmailMessage
from email.policy import SMTP
from functools import lru_cache
from typing import Any, Literal, Protocol

from aws_lambda_powertools import Logger

from taskline.emails import mail_address
from taskline.errors import DeliveryUnavailable, EmailRejected
from taskline.schemas import DeadlineNotice
from taskline.settings import Settings

logger = Logger(child=True)

SNS_MAX_BATCH_ENTRIES = 10
SNS_MAX_BATCH_BYTES = 256 * 1024  # the whole PublishBatch request's messages and attributes
# SES error codes about one email (its recipient or content), not about SES as a whole.
PER_EMAIL_SES_ERRORS = frozenset({"MessageRejected", "InvalidParameterValue"})

SUBJECTS = {
    "task.due_soon": "Taskline: a task is due soon",
    "task.overdue": "Taskline: a task is overdue",
}


def _client_config() -> Any:
    from botocore.config import Config

    # Bounded waits: a batch's task rows stay locked while it publishes, and a stuck call must
    # not eat the function's time limit. Standard retries back off on throttling.
    return Config(
        connect_timeout=2, read_timeout=5, retries={"mode": "standard", "max_attempts": 3}
    )


@lru_cache(maxsize=4)
def sns_client(region: str | None) -> Any:
    import boto3

    return boto3.client("sns", region_name=region, config=_client_config())


@lru_cache(maxsize=4)
def ses_client(region: str | None) -> Any:
    import boto3

    return boto3.client("ses", region_name=region, config=_client_config())


def clear_clients() -> None:
    """Forget the cached clients (tests start and stop moto around them)."""
    sns_client.cache_clear()
    ses_client.cache_clear()


def topic_region(topic_arn: str) -> str | None:
    """`arn:aws:sns:eu-west-1:123456789012:name` -> `eu-west-1`: publish where the topic is."""
    parts = topic_arn.split(":")
    return parts[3] if len(parts) >= 6 and parts[3] else None


def _error_code(error: Exception) -> str:
    response = getattr(error, "response", None)
    if isinstance(response, dict):
        code = response.get("Error", {}).get("Code")
        if isinstance(code, str) and code:
            return code
    return type(error).__name__


@dataclass
class PublishResult:
    """What happened to each notification, by `notification_id`."""

    message_ids: dict[str, str | None] = field(default_factory=dict)  # None: logged, not sent
    failures: dict[str, str] = field(default_factory=dict)  # error code per failed notification
    error: DeliveryUnavailable | None = None  # set when publishing stopped: SNS failed outright


class Publisher(Protocol):
    name: Literal["sns", "log"]

    def publish(self, notices: Sequence[DeadlineNotice]) -> PublishResult: ...


def message_attributes(notice: DeadlineNotice) -> dict[str, dict[str, str]]:
    """What subscription filter policies match on."""
    return {
        "event_type": {"DataType": "String", "StringValue": notice.event_type},
        "user_id": {"DataType": "String", "StringValue": str(notice.owner.id)},
    }


def _entry(notice: DeadlineNotice) -> dict[str, Any]:
    return {
        "Message": notice.model_dump_json(),
        "Subject": SUBJECTS[notice.event_type],
        "MessageAttributes": message_attributes(notice),
    }


def _entry_bytes(entry: dict[str, Any]) -> int:
    size = len(entry["Message"].encode()) + len(entry["Subject"].encode())
    for name, attribute in entry["MessageAttributes"].items():
        size += len(name.encode()) + len(attribute["DataType"]) + len(attribute["StringValue"])
    return size


def _chunks(
    entries: list[tuple[str, dict[str, Any]]],
) -> Iterator[list[tuple[str, dict[str, Any]]]]:
    """PublishBatch takes at most 10 entries and 256 KiB in all; pack greedily within both."""
    chunk: list[tuple[str, dict[str, Any]]] = []
    size = 0
    for notification_id, entry in entries:
        entry_size = _entry_bytes(entry)
        if chunk and (
            len(chunk) == SNS_MAX_BATCH_ENTRIES or size + entry_size > SNS_MAX_BATCH_BYTES
        ):
            yield chunk
            chunk, size = [], 0
        chunk.append((notification_id, entry))
        size += entry_size
    if chunk:
        yield chunk


class SnsPublisher:
    """Publishes to the topic with PublishBatch, 10 messages per call."""

    name: Literal["sns", "log"] = "sns"

    def __init__(self, topic_arn: str, client: Any = None) -> None:
        self.topic_arn = topic_arn
        self._client = client

    def publish(self, notices: Sequence[DeadlineNotice]) -> PublishResult:
        from botocore.exceptions import BotoCoreError, ClientError

        result = PublishResult()
        if not notices:
            return result
        client = self._client or sns_client(topic_region(self.topic_arn))
        chunks = list(_chunks([(notice.notification_id, _entry(notice)) for notice in notices]))
        for position, chunk in enumerate(chunks):
            ids = {f"n{index}": notification_id for index, (notification_id, _) in enumerate(chunk)}
            entries = [{"Id": f"n{index}", **entry} for index, (_, entry) in enumerate(chunk)]
            try:
                response = client.publish_batch(
                    TopicArn=self.topic_arn, PublishBatchRequestEntries=entries
                )
            except (BotoCoreError, ClientError) as error:
                # The call itself failed (throttled past retries, denied, unreachable): nothing
                # in this chunk or the ones after it was sent.
                code = _error_code(error)
                for unsent in chunks[position:]:
                    result.failures.update({notification_id: code for notification_id, _ in unsent})
                result.error = DeliveryUnavailable(f"SNS PublishBatch failed: {code}")
                result.error.__cause__ = error
                return result
            for success in response.get("Successful", []):
                result.message_ids[ids.pop(success["Id"])] = str(success["MessageId"])
            for failure in response.get("Failed", []):
                result.failures[ids.pop(failure["Id"])] = str(failure.get("Code", "Failed"))
            # An entry SNS reported neither way is treated as failed: retried, never lost.
            result.failures.update(dict.fromkeys(ids.values(), "NoResult"))
        return result


class LogPublisher:
    """No topic configured (local development): each notification becomes a log line."""

    name: Literal["sns", "log"] = "log"

    def publish(self, notices: Sequence[DeadlineNotice]) -> PublishResult:
        result = PublishResult()
        for notice in notices:
            logger.info(
                "No topic configured: logging the notification instead of publishing it",
                extra={
                    "message_attributes": message_attributes(notice),
                    "notification": notice.model_dump(mode="json"),
                },
            )
            result.message_ids[notice.notification_id] = None
        return result


def render_email(notice: DeadlineNotice, unsubscribe_url: str = "") -> tuple[str, str, str]:
    """Subject, plain text and HTML of the email to the task's owner."""
    task = notice.task
    due = "is due soon" if notice.event_type == "task.due_soon" else "is overdue"
    deadline = task.deadline.strftime("%Y-%m-%d %H:%M UTC")
    lines = task.description.splitlines()
    title = lines[0] if lines else ""
    if len(title) > 60:
        title = title[:59] + "…"
    subject = f"Task {'due soon' if notice.event_type == 'task.due_soon' else 'overdue'}: {title}"
    text_footer = f"\nTo stop these emails, open {unsubscribe_url}\n" if unsubscribe_url else ""
    html_footer = (
        f"<p><small><a href='{html.escape(unsubscribe_url)}'>Unsubscribe</a> from Taskline "
        "deadline emails.</small></p>"
        if unsubscribe_url
        else ""
    )
    text_body = (
        f"Hello,\n\nYour task {due}. Its deadline is {deadline}.\n\n"
        f"Task: {task.description}\nCategory: {task.category}\nStatus: {task.status.value}\n"
        f"Task id: {task.id}\n\n-- Taskline\n{text_footer}"
    )
    html_body = (
        "<!DOCTYPE html><html><body>"
        f"<p>Hello,</p><p>Your task {due}. Its deadline is <strong>{deadline}</strong>.</p>"
        "<table>"
        f"<tr><th align='left'>Task</th><td>{html.escape(task.description)}</td></tr>"
        f"<tr><th align='left'>Category</th><td>{html.escape(task.category)}</td></tr>"
        f"<tr><th align='left'>Status</th><td>{html.escape(task.status.value)}</td></tr>"
        f"<tr><th align='left'>Task id</th><td>{task.id}</td></tr>"
        f"</table><p>-- Taskline</p>{html_footer}</body></html>"
    )
    return subject, text_body, html_body


def unsubscribe_url(base_url: str, user_id: int) -> str:
    """The one-click unsubscribe link of the owner's emails (an API route, no sign-in)."""
    from taskline import clock
    from taskline.security.unsubscribe import issue_unsubscribe_token

    # Issued on the clock that stamps email_enabled_at, the time the link is compared with.
    token = issue_unsubscribe_token(user_id, clock.utcnow().timestamp())
    return f"{base_url}/unsubscribe/{token}"


# SMTP line endings, and no folding: RFC 8058 needs `List-Unsubscribe: <https://...>` as is, and
# a value longer than 78 characters with no fold point is otherwise rewritten as RFC 2047
# encoded words (which mail clients then do not offer as one-click unsubscribe). Every header
# Taskline writes is bounded far below RFC 5322's 998-character line limit (subject: at most
# 60 characters of a task's first line; addresses: 320; the link: under 1,100).
WIRE_POLICY = SMTP.clone(max_line_length=None)
# The SES error code an email gets when its stored recipient is not an address Taskline may
# send to (taskline.emails): counted as one failed email, like SES's own per-email errors.
INVALID_RECIPIENT = "InvalidRecipient"


@dataclass(frozen=True)
class OutgoingEmail:
    """One email to one stored address; `unsubscribe_url` adds RFC 8058's headers."""

    to: str
    subject: str
    text: str
    html: str
    unsubscribe_url: str | None = None
    links: tuple[str, ...] = ()  # what the log shows when no sender is configured


def recipient(stored: str) -> Address:
    """The `To:` and Destinations address of a stored one; EmailRejected if it is unsafe."""
    try:
        return mail_address(stored)
    except ValueError as error:
        raise EmailRejected(INVALID_RECIPIENT) from error


def compose(sender: str, email: OutgoingEmail) -> EmailMessage:
    """The MIME message: text and HTML alternatives and, with an unsubscribe link, RFC 8058
    one-click unsubscribe headers (RFC 2369 List-Unsubscribe with an HTTPS URL, and
    List-Unsubscribe-Post). No user text becomes an address: `To:` is an Address built from
    the validated parts of the stored address."""
    message = EmailMessage()
    message["Subject"] = email.subject
    message["From"] = sender  # the operator's verified SES identity (settings), not user text
    message["To"] = recipient(email.to)
    if email.unsubscribe_url:
        message["List-Unsubscribe"] = f"<{email.unsubscribe_url}>"
        message["List-Unsubscribe-Post"] = "List-Unsubscribe=One-Click"
    message.set_content(email.text)
    message.add_alternative(email.html, subtype="html")
    return message


def deadline_email(notice: DeadlineNotice, base_url: str) -> OutgoingEmail:
    link = unsubscribe_url(base_url, notice.owner.id)
    subject, text_body, html_body = render_email(notice, link)
    return OutgoingEmail(
        to=notice.owner.email,
        subject=subject,
        text=text_body,
        html=html_body,
        unsubscribe_url=link,
        links=(link,),
    )


class EmailSender(Protocol):
    def send_email(self, email: OutgoingEmail) -> str | None: ...


class SesEmailSender:
    """Sends through SES SendRawEmail (text and HTML, unsubscribe headers).

    SendRawEmail because SendEmail cannot carry List-Unsubscribe headers:
    https://docs.aws.amazon.com/ses/latest/APIReference/API_SendRawEmail.html
    """

    def __init__(
        self, sender: str, configuration_set: str | None = None, client: Any = None
    ) -> None:
        self.sender = sender
        self.configuration_set = configuration_set
        self._client = client

    def send_email(self, email: OutgoingEmail) -> str:
        """SES's MessageId. Raises EmailRejected for this email alone (SES refused it, or the
        stored address is not one Taskline may send to), DeliveryUnavailable when SES as a
        whole fails."""
        from botocore.exceptions import BotoCoreError, ClientError

        message = compose(self.sender, email)
        to = recipient(email.to)
        raw = message.as_bytes(policy=WIRE_POLICY)
        client = self._client or ses_client(None)
        request: dict[str, Any] = {
            "Source": self.sender,
            # Explicit: without Destinations SES takes the recipients from the headers.
            "Destinations": [to.addr_spec],
            "RawMessage": {"Data": raw},
        }
        if self.configuration_set:
            # Its event destination reports bounces and complaints (docs/deadlines.md).
            request["ConfigurationSetName"] = self.configuration_set
        try:
            response = client.send_raw_email(**request)
        except ClientError as error:
            code = _error_code(error)
            if code in PER_EMAIL_SES_ERRORS:
                raise EmailRejected(code) from error
            raise DeliveryUnavailable(f"SES SendRawEmail failed: {code}") from error
        except BotoCoreError as error:
            raise DeliveryUnavailable(f"SES SendRawEmail failed: {_error_code(error)}") from error
        return str(response["MessageId"])


class LogEmailSender:
    """No sender configured (`make run`): the email is written to the log, with its recipient
    and its links, so every flow can be followed locally."""

    def send_email(self, email: OutgoingEmail) -> None:
        logger.info(
            "No email sender configured: logging the email instead of sending it",
            extra={"to": email.to, "subject": email.subject, "links": list(email.links)},
        )


def email_sender_for(settings: Settings) -> EmailSender:
    if settings.notification_email_sender:
        return SesEmailSender(settings.notification_email_sender, settings.email_configuration_set)
    return LogEmailSender()


class SesMailer:
    """Emails the task's owner through SES (SesEmailSender)."""

    def __init__(
        self,
        sender: str,
        base_url: str,
        configuration_set: str | None = None,
        client: Any = None,
    ) -> None:
        self.sender = sender
        self.base_url = base_url
        self.configuration_set = configuration_set
        self._ses = SesEmailSender(sender, configuration_set, client)

    def send(self, notice: DeadlineNotice) -> str:
        """SES's MessageId. Raises EmailRejected for this email alone, DeliveryUnavailable when
        SES as a whole fails."""
        return self._ses.send_email(deadline_email(notice, self.base_url))


def publisher_for(settings: Settings) -> Publisher:
    if settings.notifications_topic_arn:
        return SnsPublisher(settings.notifications_topic_arn)
    return LogPublisher()


def mailer_for(settings: Settings) -> SesMailer | None:
    if settings.notification_email_sender and settings.public_api_url:
        return SesMailer(
            settings.notification_email_sender,
            settings.public_api_url,
            settings.email_configuration_set,
        )
    return None
