"""The email that tells an addressee about an invitation to a list: through SES when a sender
is configured, else written to the log (as every email is locally).

Nothing the inviter typed reaches a header: the subject is fixed, the recipient goes through the
same address checks as every email (taskline.notifications.recipient), and the list's name
appears only in the body (escaped in the HTML part). The sender is the one every email uses.
"""

from __future__ import annotations

import html

from aws_lambda_powertools import Logger

from taskline.errors import DeliveryUnavailable, EmailRejected
from taskline.notifications import OutgoingEmail, email_sender_for
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
    email = OutgoingEmail(to=to, subject=SUBJECT, text=text, html=page)
    try:
        email_sender_for(settings).send_email(email)
    except (EmailRejected, DeliveryUnavailable) as error:
        logger.warning("Invitation email not sent", extra={"error": type(error).__name__})
