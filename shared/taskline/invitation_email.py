"""The email that tells an addressee about an invitation to a list: through SES when a sender
is configured, else written to the log (as every email is locally).

Nothing the inviter typed reaches a header: the subject is fixed, the recipient is the address
as normalised and validated at the API, and the list's name appears only in the body (escaped
in the HTML part). AWS clients are created on first use (taskline.notifications).
"""

from __future__ import annotations

import html
from email.message import EmailMessage
from email.policy import SMTP
from typing import Any

from aws_lambda_powertools import Logger

from taskline.settings import Settings

logger = Logger(child=True)

SUBJECT = "Taskline: you are invited to a shared list"


def render(list_name: str, inviter_email: str, role: str, days: int) -> tuple[str, str]:
    """The plain text and HTML bodies."""
    text = (
        f'Hello,\n\n{inviter_email} invited you to the Taskline list "{list_name}" as '
        f"{role}.\n\nSign in to Taskline with this address (or sign up with it) and verify it, "
        f"then accept the invitation (GET /invitations). It expires in {days} days.\n\n"
        "If you did not expect this, ignore this email.\n\n-- Taskline\n"
    )
    page = (
        "<!DOCTYPE html><html><body><p>Hello,</p>"
        f"<p>{html.escape(inviter_email)} invited you to the Taskline list "
        f"<strong>{html.escape(list_name)}</strong> as {html.escape(role)}.</p>"
        "<p>Sign in to Taskline with this address (or sign up with it) and verify it, then "
        f"accept the invitation. It expires in {days} days.</p>"
        "<p>If you did not expect this, ignore this email.</p><p>-- Taskline</p></body></html>"
    )
    return text, page


def build_message(sender: str, to: str, text: str, page: str) -> EmailMessage:
    message = EmailMessage()
    message["Subject"] = SUBJECT
    message["From"] = sender
    # EmailMessage refuses a header value with CR or LF (ValueError), a second guard behind
    # the address validation.
    message["To"] = to
    message.set_content(text)
    message.add_alternative(page, subtype="html")
    return message


def skip(to: str) -> None:
    """No email for this address (suppressed, or its account has not verified it); a log line
    as on the other path, so the two cost about the same."""
    logger.info("Invitation email not sent: the address is not deliverable", extra={"to": to})


def send(
    settings: Settings, to: str, list_name: str, inviter_email: str, role: str, days: int
) -> None:
    """Send (or log) the invitation email. A failure is logged, never raised: the API's answer
    must not depend on what happened to the email (it would tell who has an account)."""
    text, page = render(list_name, inviter_email, role, days)
    sender = settings.notification_email_sender
    if not sender:
        logger.info(
            "No sender configured: logging the invitation email instead of sending it",
            extra={"email": {"to": to, "subject": SUBJECT, "text": text}},
        )
        return
    from botocore.exceptions import BotoCoreError, ClientError

    from taskline.notifications import ses_client

    request: dict[str, Any] = {
        "Source": sender,
        "RawMessage": {"Data": build_message(sender, to, text, page).as_bytes(policy=SMTP)},
    }
    if settings.email_configuration_set:
        request["ConfigurationSetName"] = settings.email_configuration_set
    try:
        # https://docs.aws.amazon.com/ses/latest/APIReference/API_SendRawEmail.html
        ses_client(None).send_raw_email(**request)
    except (BotoCoreError, ClientError, ValueError) as error:
        logger.warning("Invitation email not sent", extra={"error": type(error).__name__})
