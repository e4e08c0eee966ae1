"""Email ownership: verification links, and what verifying an address does.

An account proves it owns its address by opening a signed, expiring link sent to it
(`security.email_verification`). Until then no reminder or invitation email goes to the
address. Verifying also lifts the address's suppression (a recipient's unsubscribe, a bounce, a
complaint): only the address's owner, reading its mail, can undo those (docs/security.md).

Links are emailed through `notifications.email_sender_for`: SES with a sender configured, the
log otherwise (`make run`). Each account may cause EMAIL_VERIFICATION_EMAILS_PER_WINDOW such
emails per EMAIL_VERIFICATION_WINDOW_SECONDS, sign-up's included.
"""

from __future__ import annotations

import html
from dataclasses import dataclass
from datetime import datetime, timedelta
from enum import StrEnum

from aws_lambda_powertools import Logger
from sqlalchemy.orm import Session

from taskline import clock, notifications
from taskline.db import read_only, retry_if_disconnected, transaction
from taskline.domain import QuotaScope
from taskline.errors import (
    DeliveryUnavailable,
    EmailNotSent,
    EmailRejected,
    SecretsUnavailable,
    SignInEnded,
    TooManyEmails,
    VerificationLinkExpired,
    VerificationLinkInvalid,
)
from taskline.models import User
from taskline.repositories import (
    notification_preference_repository,
    send_quota_repository,
    sign_in_repository,
    user_repository,
)
from taskline.security.email_verification import (
    VerificationClaim,
    issue_verification_token,
    verify_verification_token,
)
from taskline.security.tokens import VerifiedToken
from taskline.settings import get_settings

logger = Logger(child=True)
SUBJECT = "Taskline: confirm your email address"


class LinkState(StrEnum):
    PENDING = "pending"  # following it verifies the address
    ALREADY_VERIFIED = "already_verified"  # the address was verified since it was issued


@dataclass(frozen=True)
class Recipient:
    user_id: int
    email: str


def take_quota(session: Session, user_id: int, now: datetime) -> None:
    """Count one verification email against the account; TooManyEmails past the limit."""
    settings = get_settings()
    wait = send_quota_repository.take(
        session,
        QuotaScope.EMAIL_VERIFICATION,
        str(user_id),
        settings.email_verification_emails_per_window,
        timedelta(seconds=settings.email_verification_window_seconds),
        now,
    )
    if wait is not None:
        raise TooManyEmails(wait)


def verification_email(recipient: Recipient, base_url: str) -> notifications.OutgoingEmail:
    token = issue_verification_token(recipient.user_id, recipient.email, clock.utcnow().timestamp())
    link = f"{base_url}/verify-email/{token}"
    hours = get_settings().email_verification_token_ttl_seconds // 3600
    text = (
        "Hello,\n\nSomeone (we hope you) created a Taskline account with this address, or asked "
        "to confirm it again. To confirm it is yours, open this link and press the button:\n\n"
        f"{link}\n\nThe link works for {hours} hours. If it was not you, ignore this email: "
        "Taskline sends no reminders to an address nobody confirmed.\n\n-- Taskline\n"
    )
    page = (
        "<!DOCTYPE html><html><body><p>Hello,</p><p>Someone (we hope you) created a Taskline "
        "account with this address, or asked to confirm it again.</p>"
        f"<p><a href='{html.escape(link)}'>Confirm this address</a> (the link works for "
        f"{hours} hours).</p><p>If it was not you, ignore this email: Taskline sends no "
        "reminders to an address nobody confirmed.</p><p>-- Taskline</p></body></html>"
    )
    return notifications.OutgoingEmail(
        to=recipient.email, subject=SUBJECT, text=text, html=page, links=(link,)
    )


def send(recipient: Recipient, base_url: str) -> None:
    """Email the link (or log it without a sender). EmailNotSent if SES fails or refuses."""
    sender = notifications.email_sender_for(get_settings())
    try:
        sender.send_email(verification_email(recipient, base_url))
    except (DeliveryUnavailable, EmailRejected) as error:
        logger.warning(
            "Could not send the verification email",
            extra={"user_id": recipient.user_id, "error": str(error)},
        )
        raise EmailNotSent from error


def send_after_sign_up(recipient: Recipient, base_url: str) -> None:
    """Sign-up's email: the account exists whatever happens here; a failure is logged and the
    owner can ask again (POST /users/me/email-verification)."""
    try:
        send(recipient, base_url)
    except EmailNotSent:
        pass  # already logged by send()
    except SecretsUnavailable:
        # The link cannot be signed now; sign-up needs no key otherwise, so it still succeeds.
        logger.warning("Could not sign the verification link", extra={"user_id": recipient.user_id})


def request_link(token: VerifiedToken, base_url: str) -> None:
    """POST /users/me/email-verification: a new link to the account's address, whether or not
    it is verified (verifying again is how an owner lifts a suppression). Rate-limited."""
    with transaction() as session:
        user = sign_in_repository.user_signed_in(
            session, token.user_id, token.sign_in_id, clock.utcnow()
        )
        if user is None:
            raise SignInEnded
        take_quota(session, user.id, clock.utcnow())
        recipient = Recipient(user.id, user.email)
    send(recipient, base_url)


def _state(session: Session, user: User | None, claim: VerificationClaim) -> LinkState:
    """What following the link would do, or the reason it cannot."""
    if user is None:
        raise VerificationLinkInvalid  # the account was deleted
    if claim.email != user.email.lower():
        raise VerificationLinkExpired  # sent to an address the account no longer has
    suppressed = notification_preference_repository.suppression(session, user.email)
    if suppressed is not None and claim.issued_at < int(suppressed.created_at.timestamp()):
        # Issued before the recipient unsubscribed (or SES reported the address): only a link
        # requested after that may lift it.
        raise VerificationLinkExpired
    if suppressed is not None:
        return LinkState.PENDING  # a link issued since: the owner lifts it by following it
    verified = user.email_verified_at
    # Tokens carry whole seconds: a link issued in the second the address was verified counts
    # as already used (so a replay is a no-op), never as a newer verification.
    if verified is not None and claim.issued_at <= int(verified.timestamp()):
        return LinkState.ALREADY_VERIFIED
    return LinkState.PENDING


@retry_if_disconnected
def check_link(token: str) -> LinkState:
    """For the confirmation page (GET): what the link would do; nothing changes."""
    claim = verify_verification_token(token)
    with read_only() as session:
        return _state(session, user_repository.get(session, claim.user_id), claim)


def verify(token: str) -> LinkState:
    """POST /verify-email/{token}: mark the address verified and lift its suppression.
    A link already used (the address verified since it was issued) changes nothing."""
    claim = verify_verification_token(token)
    now = clock.utcnow()
    with transaction() as session:
        user = user_repository.get_for_update(session, claim.user_id)
        state = _state(session, user, claim)
        if state is LinkState.PENDING:
            user_repository.mark_email_verified(session, claim.user_id, now)
            notification_preference_repository.lift_suppression(session, claim.user_id)
        return state
