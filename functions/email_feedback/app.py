"""EmailFeedbackFunction: SES bounces and complaints, delivered by SNS (no HTTP route).

Marks permanently bouncing and complaining addresses undeliverable, so the deadline check stops
emailing them until their owners switch email on again. Raises when the database is
unavailable, so Lambda retries the SNS delivery (asynchronous invocation).
"""

from __future__ import annotations

from typing import Any

from aws_lambda_powertools import Logger, Metrics
from aws_lambda_powertools.metrics import MetricUnit
from aws_lambda_powertools.utilities.data_classes import SNSEvent
from aws_lambda_powertools.utilities.typing import LambdaContext

from taskline.services import email_feedback_service

logger = Logger()
metrics = Metrics()


@metrics.log_metrics(raise_on_empty_metrics=False)
@logger.inject_lambda_context
def lambda_handler(event: dict[str, Any], context: LambdaContext) -> dict[str, Any]:  # noqa: ARG001
    records = SNSEvent(event)
    summary = email_feedback_service.handle([record.sns.message for record in records.records])
    metrics.add_metric(name="EmailsSuppressed", unit=MetricUnit.Count, value=summary.suppressed)
    logger.info("Email feedback handled", extra={"summary": summary.model_dump()})
    return summary.model_dump()
