"""The deadline check: notify owners of open tasks that are due soon or overdue.

Each task is notified at most once per stage (`task.due_soon`, `task.overdue`) and deadline.
The run works in bounded batches; each batch is one transaction that claims up to
`deadline_batch_size` tasks (locking them, skipping tasks another run holds), publishes their
notifications, forgets the claims of publishes that failed, and commits. Emails follow the
commit. docs/deadlines.md explains the reasoning.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from datetime import UTC, datetime, timedelta

from aws_lambda_powertools import Logger

from taskline import clock, deadline_gate, notifications
from taskline.db import read_only, transaction
from taskline.domain import MAX_LEAD_MINUTES, NotificationStage
from taskline.errors import DeliveryUnavailable, EmailRejected
from taskline.notifications import Publisher, SesMailer
from taskline.repositories import deadline_notification_repository, task_repository
from taskline.repositories.deadline_notification_repository import (
    ClaimedBatch,
    DueTask,
    DueWindow,
    NotificationKey,
)
from taskline.schemas import DeadlineCheckSummary, DeadlineNotice, NotificationOwner, TaskOut
from taskline.settings import Settings, get_settings

logger = Logger(child=True)


# Tasks re-planned per transaction when the default lead time changes (short locks, bounded work).
REPLAN_SLICE = 5000


def replan_default_lead(default_lead_minutes: int, time_left: Callable[[], float]) -> int:
    """Move the due-soon reminders still to come to a new default lead time (the deploy changed
    DueSoonWindowMinutes), a slice of tasks per transaction, while `time_left()` (seconds) allows.
    Tasks with a lead time of their own or of their recipient's account keep their times.
    Returns how many moved; raises TimeoutError if time ran out first (the deploy then fails,
    and the next one that carries the new window runs this again: it is idempotent)."""
    moved, after = 0, 0
    while True:
        if time_left() <= 0:
            raise TimeoutError(f"re-planned {moved} reminders before running out of time")
        with transaction() as session:
            count, last = task_repository.replan_due_soon(
                session, default_lead_minutes, after, REPLAN_SLICE
            )
        moved += count
        if last is None:
            logger.info("Reminders re-planned", extra={"moved": moved})
            return moved
        after = last


def due_window(now: datetime, settings: Settings) -> DueWindow:
    # A reminder can be due at most the longest lead time before its deadline, and the
    # deadline must still be ahead: that bounds how far back the due-soon scan looks.
    longest_lead = max(MAX_LEAD_MINUTES, settings.deadline_due_soon_minutes)
    return DueWindow(
        now=now,
        overdue_since=now - timedelta(minutes=settings.deadline_overdue_lookback_minutes),
        due_soon_since=now - timedelta(minutes=longest_lead),
    )


def notification_id(key: NotificationKey) -> str:
    """`42:due_soon:2030-01-15T09:00:00Z`: the same for every attempt at one notification."""
    deadline = key.deadline.astimezone(UTC).isoformat().replace("+00:00", "Z")
    return f"{key.task_id}:{key.stage.value}:{deadline}"


def _notice(due: DueTask, checked_at: datetime) -> DeadlineNotice:
    return DeadlineNotice(
        event_type="task.due_soon" if due.stage is NotificationStage.DUE_SOON else "task.overdue",
        notification_id=notification_id(due.key),
        checked_at=checked_at,
        task=TaskOut.model_validate(due.task),
        owner=NotificationOwner(id=due.recipient_id, email=due.owner_email),
    )


def check_deadlines(
    *,
    now: datetime | None = None,
    time_left: Callable[[], float] | None = None,
    publisher: Publisher | None = None,
    mailer: SesMailer | None = None,
) -> DeadlineCheckSummary:
    """The scheduled run: with a deadline gate (DEADLINE_GATE_TABLE), first ask it whether a
    reminder can be due yet, and skip the database (a paused Aurora instance stays paused)
    when none can; after a run, tell it when the next one has work. Without a gate, every run
    checks the database (`run_check`)."""
    table = get_settings().deadline_gate_table
    moment = now or clock.utcnow()
    if table is None:
        return run_check(now=moment, time_left=time_left, publisher=publisher, mailer=mailer)
    gate = deadline_gate.read(table)
    if gate is not None and gate.closed_at(moment):
        name = (publisher or notifications.publisher_for(get_settings())).name
        return DeadlineCheckSummary(
            checked_at=moment, publisher=name, skipped=True, next_due=gate.next_due
        )
    summary = run_check(now=moment, time_left=time_left, publisher=publisher, mailer=mailer)
    if not summary.complete or summary.failed:
        next_due: datetime | None = moment  # work is left over: the next run must come in
    else:
        with read_only() as session:
            next_due = deadline_notification_repository.next_due_after(session, moment)
    deadline_gate.settle(table, next_due, gate, moment)
    summary.next_due = next_due
    return summary


def run_check(
    *,
    now: datetime | None = None,
    time_left: Callable[[], float] | None = None,
    publisher: Publisher | None = None,
    mailer: SesMailer | None = None,
) -> DeadlineCheckSummary:
    """Notify every due task not yet notified for its stage; return what was done.

    `time_left()` (seconds) stops the run before the function's time limit; the next run carries
    on. Raises DeliveryUnavailable when SNS or SES fails as a whole (after committing what was
    sent), so the invocation fails and Lambda's retries and dead-letter queue take over.
    """
    settings = get_settings()
    window = due_window(now or clock.utcnow(), settings)
    publisher = publisher or notifications.publisher_for(settings)
    mailer = mailer or notifications.mailer_for(settings)
    summary = DeadlineCheckSummary(checked_at=window.now, publisher=publisher.name)
    # One stage after the other, each through its own index; overdue first, so a run short of
    # time sends what is most pressing.
    for stage in (NotificationStage.OVERDUE, NotificationStage.DUE_SOON):
        after: tuple[datetime, int] | None = None
        while True:
            if time_left is not None and time_left() < settings.deadline_reserve_seconds:
                summary.complete = False
                logger.warning("Stopping early to stay within the time limit; the next run resumes")
                return summary
            batch, sent, error = _claim_and_publish(
                window, stage, after, settings.deadline_batch_size, publisher, summary
            )
            if mailer is not None:
                _email_owners(mailer, sent, summary)
            else:
                _log_emails(sent, settings)
            if error is not None:
                error.summary = summary
                logger.error(
                    "Publishing failed as a whole", extra={"summary": summary.model_dump()}
                )
                raise error
            if len(batch.tasks) < settings.deadline_batch_size:
                break  # this stage is exhausted
            after = batch.last_key
    return summary


def _claim_and_publish(
    window: DueWindow,
    stage: NotificationStage,
    after: tuple[datetime, int] | None,
    limit: int,
    publisher: Publisher,
    summary: DeadlineCheckSummary,
) -> tuple[ClaimedBatch, list[DeadlineNotice], DeliveryUnavailable | None]:
    """One batch, one transaction: claim, publish, release the failed claims, commit.

    Returns what to email after the commit: sent notifications whose owners may get email."""
    published: list[str] = []
    try:
        with transaction() as session:
            batch = deadline_notification_repository.claim_due(session, window, stage, after, limit)
            claimed = {notification_id(due.key): due for due in batch.tasks if due.claimed}
            notices = [_notice(due, window.now) for due in claimed.values()]
            result = publisher.publish(notices)
            published = list(result.message_ids)
            deadline_notification_repository.release(
                session,
                [claimed[nid].key for nid in result.failures],
                get_settings().deadline_due_soon_minutes,
            )
            deadline_notification_repository.record_message_ids(
                session,
                {claimed[nid].key: mid for nid, mid in result.message_ids.items() if mid},
            )
    except Exception:
        if published:
            # Sent, but the commit that records them failed: a later run sends these again.
            logger.exception(
                "Could not record published notifications", extra={"notifications": published}
            )
        raise
    summary.batches += 1
    summary.failed += len(result.failures)
    for nid, code in result.failures.items():
        due = claimed[nid]
        logger.warning(
            "Publish failed; the next run retries it",
            extra={"task_id": due.task.id, "stage": due.stage.value, "error_code": code},
        )
    sent = [notice for notice in notices if notice.notification_id in result.message_ids]
    summary.due_soon += sum(notice.event_type == "task.due_soon" for notice in sent)
    summary.overdue += sum(notice.event_type == "task.overdue" for notice in sent)
    emails = [notice for notice in sent if claimed[notice.notification_id].email_allowed]
    summary.emails_skipped += len(sent) - len(emails)
    return batch, emails, result.error


def _log_emails(notices: Sequence[DeadlineNotice], settings: Settings) -> None:
    """No sender configured (`make run`): each email the owners would get is written to the log
    with its recipient and links instead (its one-click unsubscribe link too), so the whole
    flow can be followed locally. Not counted as sent."""
    sender = notifications.LogEmailSender()
    for notice in notices:
        sender.send_email(notifications.deadline_email(notice, settings.public_api_url or ""))


def _email_owners(
    mailer: SesMailer, notices: Sequence[DeadlineNotice], summary: DeadlineCheckSummary
) -> None:
    """One email per notification; a rejected address does not stop the others."""
    for position, notice in enumerate(notices):
        try:
            mailer.send(notice)
        except EmailRejected as rejected:
            summary.emails_failed += 1
            logger.warning(
                "SES rejected the email to this owner",
                extra={
                    "task_id": notice.task.id,
                    "user_id": notice.owner.id,
                    "error_code": rejected.code,
                },
            )
        except DeliveryUnavailable as error:
            error.summary = summary
            logger.error(
                "SES failed as a whole; emails of already published notifications are not sent",
                extra={"unsent": [n.notification_id for n in notices[position:]]},
            )
            raise
        else:
            summary.emails_sent += 1
