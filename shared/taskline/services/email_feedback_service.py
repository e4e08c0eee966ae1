"""Bounces and complaints SES reports through SNS: addresses that must not get email again.

SES publishes one JSON record per event to the SNS topic of the configuration set's event
destination; the formats are documented at
https://docs.aws.amazon.com/ses/latest/dg/event-publishing-retrieving-sns-contents.html
(`eventType`) and, for notifications set on an identity instead,
https://docs.aws.amazon.com/ses/latest/dg/notification-contents.html (`notificationType`).

Only a permanent bounce (`bounceType` "Permanent": the address does not exist or never accepts
mail) or a complaint (the recipient marked the email as spam) suppresses an address. Transient
and undetermined bounces do not: SES already retried those, and the next email may get through.
A complaint whose `complaintFeedbackType` is "not-spam" is the opposite of a complaint.
"""

from __future__ import annotations

import json
from typing import Any

from aws_lambda_powertools import Logger
from pydantic import BaseModel, ConfigDict, Field, ValidationError

from taskline.db import transaction
from taskline.emails import normalize_email
from taskline.repositories import notification_preference_repository

logger = Logger(child=True)


class _Recipient(BaseModel):
    model_config = ConfigDict(extra="ignore")

    email_address: str = Field(alias="emailAddress", min_length=3, max_length=320)


class _Bounce(BaseModel):
    model_config = ConfigDict(extra="ignore")

    bounce_type: str = Field(alias="bounceType")
    bounced_recipients: list[_Recipient] = Field(alias="bouncedRecipients")
    feedback_id: str | None = Field(default=None, alias="feedbackId", max_length=200)


class _Complaint(BaseModel):
    model_config = ConfigDict(extra="ignore")

    complained_recipients: list[_Recipient] = Field(alias="complainedRecipients")
    feedback_type: str | None = Field(default=None, alias="complaintFeedbackType")
    feedback_id: str | None = Field(default=None, alias="feedbackId", max_length=200)


class SesEvent(BaseModel):
    """The parts of an SES event record this handler reads."""

    model_config = ConfigDict(extra="ignore")

    event_type: str | None = Field(default=None, alias="eventType")
    notification_type: str | None = Field(default=None, alias="notificationType")
    bounce: _Bounce | None = None
    complaint: _Complaint | None = None

    @property
    def kind(self) -> str | None:
        return self.event_type or self.notification_type


class FeedbackSummary(BaseModel):
    records: int = 0
    suppressed: int = 0  # addresses newly marked undeliverable
    ignored: int = 0  # records that suppress nothing (deliveries, transient bounces, ...)
    malformed: int = 0


def _key(reported: str) -> str:
    """The suppression key of an address SES reports: lower case, as accounts store it. An
    internationalised domain is mailed in punycode (notifications.recipient), so SES reports it
    that way; accounts store it in Unicode (taskline.emails)."""
    try:
        return normalize_email(reported.strip()).lower()
    except ValueError:
        return reported.strip().lower()


def undeliverable(event: SesEvent) -> dict[str, tuple[str, str | None]]:
    """{lower(address): (reason, feedback id)} the event makes undeliverable."""
    if event.kind == "Bounce" and event.bounce is not None:
        if event.bounce.bounce_type != "Permanent":
            return {}
        return {
            _key(r.email_address): ("bounce", event.bounce.feedback_id)
            for r in event.bounce.bounced_recipients
        }
    if event.kind == "Complaint" and event.complaint is not None:
        if event.complaint.feedback_type == "not-spam":
            return {}
        return {
            _key(r.email_address): ("complaint", event.complaint.feedback_id)
            for r in event.complaint.complained_recipients
        }
    return {}


def handle(messages: list[str]) -> FeedbackSummary:
    """Suppress the addresses the SNS messages (SES event records) report, in one transaction.
    A message that is not an SES record is logged and skipped: retrying it cannot help."""
    summary = FeedbackSummary(records=len(messages))
    addresses: dict[str, tuple[str, str | None]] = {}
    for message in messages:
        try:
            document: Any = json.loads(message)
            event = SesEvent.model_validate(document)
        except (ValueError, ValidationError):
            summary.malformed += 1
            logger.warning("Skipping an SNS message that is not an SES event record")
            continue
        found = undeliverable(event)
        if not found:
            summary.ignored += 1
        addresses.update(found)
    if addresses:
        with transaction() as session:
            summary.suppressed = notification_preference_repository.suppress(session, addresses)
    return summary
