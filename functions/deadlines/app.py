"""DeadlineCheckFunction: run by EventBridge Scheduler (no HTTP route).

Notifies the owners of open tasks that are due soon or overdue, once per stage and deadline,
and returns a summary. Raises when SNS or SES fails as a whole, so Lambda retries the
invocation and, after that, sends it to the dead-letter queue.
"""

from __future__ import annotations

from typing import Any

from aws_lambda_powertools import Logger, Metrics
from aws_lambda_powertools.metrics import MetricUnit
from aws_lambda_powertools.utilities.typing import LambdaContext

from taskline.errors import DeliveryUnavailable
from taskline.schemas import DeadlineCheckSummary, ScheduledRun
from taskline.services import deadline_service

logger = Logger()
metrics = Metrics()


def _add_metrics(summary: DeadlineCheckSummary) -> None:
    for name, value in (
        ("DueSoonNotified", summary.due_soon),
        ("OverdueNotified", summary.overdue),
        ("NotificationsFailed", summary.failed),
        ("EmailsSent", summary.emails_sent),
        ("EmailsFailed", summary.emails_failed),
    ):
        metrics.add_metric(name=name, unit=MetricUnit.Count, value=value)


@metrics.log_metrics(raise_on_empty_metrics=False)
@logger.inject_lambda_context(correlation_id_path="executionId")
def lambda_handler(event: dict[str, Any], context: LambdaContext) -> dict[str, Any]:
    run = ScheduledRun.model_validate(event)
    scheduled = run.scheduled_time.isoformat() if run.scheduled_time else None
    logger.append_keys(scheduled_time=scheduled, attempt=run.attempt_number)
    try:
        summary = deadline_service.check_deadlines(
            time_left=lambda: context.get_remaining_time_in_millis() / 1000
        )
    except DeliveryUnavailable as error:
        if error.summary is not None:
            _add_metrics(error.summary)
        raise
    _add_metrics(summary)
    logger.info("Deadline check finished", extra={"summary": summary.model_dump(mode="json")})
    return summary.model_dump(mode="json")
