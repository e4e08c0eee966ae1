"""The scheduled deadline check (DeadlineCheckFunction), against the real PostgreSQL.

moto stands in for SNS, SQS and SES: notifications are read back from an SQS queue subscribed to
the topic, as a real subscriber would see them. Failures of single entries or of a whole service
are injected at the boto3 level (botocore event hooks on the client), the external boundary.
"""

from __future__ import annotations

import json
import logging
import re
import threading
from collections import Counter
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from email import message_from_string
from email.message import EmailMessage
from email.policy import default
from typing import Any

import boto3
import pytest
from botocore.exceptions import ClientError
from moto import mock_aws
from sqlalchemy import Engine, text

from localdev.gateway import LocalGateway
from localdev.template import ROOT
from taskline import notifications
from taskline.db import get_engine
from taskline.errors import DeliveryUnavailable
from taskline.services import deadline_service
from taskline.settings import get_settings
from tests.support.api import ApiClient, task_body

REGION = "us-east-1"
SENDER = "deadlines@taskline.example"
NOW = datetime(2030, 6, 1, 12, 0, tzinfo=UTC)
DAY = timedelta(hours=24)
LOOKBACK = timedelta(days=7)
EVENTS = ROOT / "events"
PUBLIC_URL = "https://api.taskline.example"


def reconfigure() -> None:
    """Re-read settings (and rebuild the engine) after the environment changed."""
    if get_engine.cache_info().currsize:
        get_engine().dispose()
    get_engine.cache_clear()
    get_settings.cache_clear()


def rfc3339(moment: datetime) -> str:
    return moment.astimezone(UTC).isoformat().replace("+00:00", "Z")


@dataclass
class Aws:
    """The mocked AWS account: the topic, a queue subscribed to it, and SES."""

    topic_arn: str
    queue_url: str
    sns: Any
    sqs: Any
    ses: Any
    seen: list[dict[str, Any]] = field(default_factory=list)

    def received(self) -> list[dict[str, Any]]:
        """Every SNS envelope delivered to the queue so far (the queue is drained as it goes)."""
        for _ in range(1000):  # bounded: 10 messages per receive
            batch = self.sqs.receive_message(
                QueueUrl=self.queue_url, MaxNumberOfMessages=10, WaitTimeSeconds=0
            ).get("Messages", [])
            if not batch:
                break
            for message in batch:
                self.seen.append(json.loads(message["Body"]))
                self.sqs.delete_message(
                    QueueUrl=self.queue_url, ReceiptHandle=message["ReceiptHandle"]
                )
        return self.seen

    def notices(self) -> list[dict[str, Any]]:
        return [json.loads(envelope["Message"]) for envelope in self.received()]

    def sent(self) -> Counter[tuple[int, str]]:
        """How many times each (task id, event type) was delivered."""
        return Counter((n["task"]["id"], n["event_type"]) for n in self.notices())

    def client(self) -> Any:
        """The SNS client the function uses (built lazily, cached per region)."""
        return notifications.sns_client(REGION)


def subscribe_queue(aws: Aws, name: str, filter_policy: dict[str, Any] | None = None) -> str:
    queue_url: str = aws.sqs.create_queue(QueueName=name)["QueueUrl"]
    queue_arn = aws.sqs.get_queue_attributes(QueueUrl=queue_url, AttributeNames=["QueueArn"])[
        "Attributes"
    ]["QueueArn"]
    attributes = {"FilterPolicy": json.dumps(filter_policy)} if filter_policy else {}
    aws.sns.subscribe(
        TopicArn=aws.topic_arn, Protocol="sqs", Endpoint=queue_arn, Attributes=attributes
    )
    return queue_url


@pytest.fixture
def aws(monkeypatch: pytest.MonkeyPatch, reload_settings: None) -> Iterator[Aws]:
    with mock_aws():
        notifications.clear_clients()
        sns = boto3.client("sns", region_name=REGION)
        sqs = boto3.client("sqs", region_name=REGION)
        ses = boto3.client("ses", region_name=REGION)
        topic_arn = sns.create_topic(Name="taskline-deadlines")["TopicArn"]
        stack = Aws(topic_arn=topic_arn, queue_url="", sns=sns, sqs=sqs, ses=ses)
        stack.queue_url = subscribe_queue(stack, "deadline-subscriber")
        monkeypatch.setenv("NOTIFICATIONS_TOPIC_ARN", topic_arn)
        reconfigure()
        yield stack
        notifications.clear_clients()


@pytest.fixture
def with_email(aws: Aws, monkeypatch: pytest.MonkeyPatch) -> Aws:
    aws.ses.verify_email_identity(EmailAddress=SENDER)
    monkeypatch.setenv("NOTIFICATION_EMAIL_SENDER", SENDER)
    monkeypatch.setenv("PUBLIC_API_URL", PUBLIC_URL)
    reconfigure()
    return aws


def add_task(user: ApiClient, deadline: datetime, **fields: Any) -> int:
    response = user.post("/tasks", json_body=task_body(deadline=rfc3339(deadline), **fields))
    assert response.status == 201, response.body
    task_id: int = response.json()["id"]
    return task_id


def records(admin_engine: Engine) -> set[tuple[int, str]]:
    with admin_engine.connect() as connection:
        rows = connection.execute(text("SELECT task_id, stage FROM task_notifications"))
        return {(row.task_id, row.stage) for row in rows}


# Selection


def test_due_soon_and_overdue_at_the_window_edges(aws: Aws, user: ApiClient) -> None:
    second = timedelta(seconds=1)
    tasks = {
        name: add_task(user, deadline)
        for name, deadline in {
            "end_of_window": NOW + DAY,
            "after_window": NOW + DAY + second,
            "just_ahead": NOW + second,
            "exactly_now": NOW,
            "just_past": NOW - second,
            "end_of_lookback": NOW - LOOKBACK,
            "inside_lookback": NOW - LOOKBACK + second,
        }.items()
    }

    summary = deadline_service.check_deadlines(now=NOW)

    assert aws.sent() == {
        (tasks["end_of_window"], "task.due_soon"): 1,
        (tasks["just_ahead"], "task.due_soon"): 1,
        (tasks["exactly_now"], "task.overdue"): 1,
        (tasks["just_past"], "task.overdue"): 1,
        (tasks["inside_lookback"], "task.overdue"): 1,
    }
    assert (summary.due_soon, summary.overdue, summary.failed) == (2, 3, 0)
    assert summary.publisher == "sns"
    assert summary.complete


def test_done_tasks_are_never_notified(aws: Aws, user: ApiClient) -> None:
    add_task(user, NOW + timedelta(hours=1), status="Done")
    add_task(user, NOW - timedelta(hours=1), status="Done")
    in_progress = add_task(user, NOW + timedelta(hours=2), status="In Progress")

    summary = deadline_service.check_deadlines(now=NOW)
    later = deadline_service.check_deadlines(now=NOW + 2 * DAY)  # everything overdue by then

    assert aws.sent() == {(in_progress, "task.due_soon"): 1, (in_progress, "task.overdue"): 1}
    assert (summary.due_soon, summary.overdue, later.due_soon, later.overdue) == (1, 0, 0, 1)


def test_a_second_run_sends_nothing_new_and_each_stage_comes_once(
    aws: Aws, user: ApiClient
) -> None:
    soon = add_task(user, NOW + timedelta(hours=3))
    late = add_task(user, NOW - timedelta(hours=3))

    first = deadline_service.check_deadlines(now=NOW)
    second = deadline_service.check_deadlines(now=NOW + timedelta(minutes=15))
    overdue_later = deadline_service.check_deadlines(now=NOW + timedelta(hours=4))
    again = deadline_service.check_deadlines(now=NOW + timedelta(hours=5))

    assert (first.due_soon, first.overdue) == (1, 1)
    assert (second.due_soon, second.overdue, second.failed) == (0, 0, 0)
    assert (overdue_later.due_soon, overdue_later.overdue) == (0, 1)
    assert (again.due_soon, again.overdue) == (0, 0)
    assert aws.sent() == {
        (soon, "task.due_soon"): 1,
        (late, "task.overdue"): 1,
        (soon, "task.overdue"): 1,
    }


def test_many_due_tasks_are_worked_through_in_batches(
    aws: Aws, user: ApiClient, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("DEADLINE_BATCH_SIZE", "4")
    reconfigure()
    ids = [add_task(user, NOW + timedelta(minutes=minute)) for minute in range(1, 12)]

    summary = deadline_service.check_deadlines(now=NOW)

    assert summary.batches == 4  # overdue: none; due soon: 4 + 4 + 3
    assert summary.due_soon == 11
    assert aws.sent() == {(task_id, "task.due_soon"): 1 for task_id in ids}


def test_a_run_short_of_time_claims_nothing_and_says_so(aws: Aws, user: ApiClient) -> None:
    add_task(user, NOW + timedelta(hours=1))

    summary = deadline_service.check_deadlines(now=NOW, time_left=lambda: 1.0)

    assert not summary.complete
    assert summary.batches == 0
    assert aws.sent() == {}
    assert deadline_service.check_deadlines(now=NOW).due_soon == 1


# Exactly once under concurrency


def test_two_runs_at_once_send_each_notification_once(
    aws: Aws, user: ApiClient, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("DB_POOL_SIZE", "2")  # one connection per run, both open at once
    monkeypatch.setenv("DEADLINE_BATCH_SIZE", "5")
    reconfigure()
    ids = [add_task(user, NOW + timedelta(minutes=minute)) for minute in range(1, 31)]

    # Each run's first PublishBatch waits for the other run's: both are then inside their claim
    # transactions at the same time. Had the second run blocked on the first run's locked rows
    # (no SKIP LOCKED), it would never get here and the barrier would break.
    barrier = threading.Barrier(2, timeout=20)
    waited: set[int] = set()

    def meet(**_: Any) -> None:
        if threading.get_ident() not in waited:
            waited.add(threading.get_ident())
            barrier.wait()

    aws.client().meta.events.register("before-call.sns.PublishBatch", meet)
    summaries: list[Any] = []
    failures: list[BaseException] = []

    def run() -> None:
        try:
            summaries.append(deadline_service.check_deadlines(now=NOW))
        except BaseException as error:
            failures.append(error)

    threads = [threading.Thread(target=run) for _ in range(2)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=90)

    assert not failures
    assert len(summaries) == 2
    assert all(summary.due_soon > 0 for summary in summaries)  # both runs did real work
    assert sum(summary.due_soon for summary in summaries) == 30
    assert aws.sent() == {(task_id, "task.due_soon"): 1 for task_id in ids}


def test_a_claim_racing_another_runs_commit_does_not_send_twice(
    aws: Aws, user: ApiClient, admin_engine: Engine
) -> None:
    """A run whose snapshot predates another run's commit selects a task that run just notified;
    the primary key on (task, stage, deadline) makes its insert wait, then skip the task.

    In a real race the other run's row lock ends at its commit, just before this run reaches
    the row. Here the other transaction inserts the record with foreign-key checks off (they
    would lock the task row until it commits, and SKIP LOCKED would pass the task by), so the
    run reaches the conflict deterministically.
    """
    contested = add_task(user, NOW + timedelta(hours=1))
    free = add_task(user, NOW + timedelta(hours=2))
    other = admin_engine.connect()
    if not other.execute(
        text("SELECT rolsuper FROM pg_roles WHERE rolname = current_user")
    ).scalar():
        other.close()
        pytest.skip("needs a superuser to switch off foreign-key triggers for one transaction")
    other.rollback()
    other_tx = other.begin()
    other.execute(text("SET LOCAL session_replication_role = replica"))
    other.execute(
        text(
            "INSERT INTO task_notifications (task_id, stage, deadline) "
            "SELECT id, 'due_soon', deadline FROM tasks WHERE id = :id"
        ),
        {"id": contested},
    )
    result: list[Any] = []
    worker = threading.Thread(
        target=lambda: result.append(deadline_service.check_deadlines(now=NOW))
    )
    worker.start()
    try:
        with admin_engine.connect() as watcher:
            for _ in range(600):  # until the run waits on the uncommitted record (bounded)
                waiting = watcher.execute(
                    text(
                        "SELECT count(*) FROM pg_stat_activity "
                        "WHERE datname = current_database() AND wait_event_type = 'Lock'"
                    )
                ).scalar_one()
                watcher.rollback()  # pg_stat_activity is a snapshot per transaction
                if waiting:
                    break
                threading.Event().wait(0.05)
            assert waiting, "the run never waited for the other transaction"
        other_tx.commit()
    finally:
        other.close()
        worker.join(timeout=60)

    assert result[0].due_soon == 1
    assert aws.sent() == {(free, "task.due_soon"): 1}


# Failures


def fail_entries(aws: Aws, task_ids: set[int]) -> Callable[[], None]:
    """Make SNS report the entries of these tasks as failed (PublishBatch's `Failed` list)."""
    dropped: list[dict[str, Any]] = []

    def drop(params: dict[str, Any], **_: Any) -> dict[str, Any]:
        entries = params["PublishBatchRequestEntries"]
        keep: list[dict[str, Any]] = []
        for entry in entries:
            task_id = json.loads(entry["Message"])["task"]["id"]
            (dropped if task_id in task_ids else keep).append(entry)
        return {**params, "PublishBatchRequestEntries": keep}

    def report(parsed: dict[str, Any], **_: Any) -> None:
        parsed.setdefault("Failed", []).extend(
            {"Id": e["Id"], "Code": "InternalError", "SenderFault": False} for e in dropped
        )
        dropped.clear()

    events = aws.client().meta.events
    events.register("provide-client-params.sns.PublishBatch", drop)
    events.register("after-call.sns.PublishBatch", report)

    def restore() -> None:
        events.unregister("provide-client-params.sns.PublishBatch", drop)
        events.unregister("after-call.sns.PublishBatch", report)

    return restore


def test_entries_sns_fails_are_published_by_the_next_run(
    aws: Aws, user: ApiClient, admin_engine: Engine
) -> None:
    ids = [add_task(user, NOW + timedelta(hours=hour)) for hour in range(1, 13)]
    unlucky = {ids[3], ids[10]}  # one in each PublishBatch call of the batch
    restore = fail_entries(aws, unlucky)

    first = deadline_service.check_deadlines(now=NOW)
    restore()
    after_first = aws.sent()
    claimed_after_first = records(admin_engine)
    second = deadline_service.check_deadlines(now=NOW + timedelta(minutes=15))

    assert (first.due_soon, first.failed) == (10, 2)
    assert set(after_first) == {(i, "task.due_soon") for i in ids if i not in unlucky}
    assert claimed_after_first == {(i, "due_soon") for i in ids if i not in unlucky}
    assert (second.due_soon, second.overdue, second.failed) == (2, 0, 0)
    assert aws.sent() == {(task_id, "task.due_soon"): 1 for task_id in ids}


def test_sns_failing_as_a_whole_raises_and_loses_nothing(
    aws: Aws, user: ApiClient, admin_engine: Engine
) -> None:
    ids = [add_task(user, NOW + timedelta(minutes=minute)) for minute in range(1, 16)]
    calls = 0

    def throttle_second_call(**_: Any) -> None:
        nonlocal calls
        calls += 1
        if calls == 2:
            raise ClientError(
                {"Error": {"Code": "Throttling", "Message": "Rate exceeded"}}, "PublishBatch"
            )

    aws.client().meta.events.register("before-call.sns.PublishBatch", throttle_second_call)

    with pytest.raises(DeliveryUnavailable) as raised:
        deadline_service.check_deadlines(now=NOW)

    aws.client().meta.events.unregister("before-call.sns.PublishBatch", throttle_second_call)
    assert raised.value.summary is not None
    assert (raised.value.summary.due_soon, raised.value.summary.failed) == (10, 5)
    assert len(records(admin_engine)) == 10  # the first call's ten went out and stay recorded
    retry = deadline_service.check_deadlines(now=NOW)
    assert retry.due_soon == 5
    assert aws.sent() == {(task_id, "task.due_soon"): 1 for task_id in ids}


def test_an_unknown_topic_raises_and_records_nothing(
    aws: Aws, user: ApiClient, admin_engine: Engine, monkeypatch: pytest.MonkeyPatch
) -> None:
    add_task(user, NOW + timedelta(hours=1))
    monkeypatch.setenv("NOTIFICATIONS_TOPIC_ARN", aws.topic_arn + "-missing")
    reconfigure()

    with pytest.raises(DeliveryUnavailable):
        deadline_service.check_deadlines(now=NOW)

    assert records(admin_engine) == set()


def sent_emails() -> list[EmailMessage]:
    """The deadline emails SES accepted (moto's record of SendRawEmail), parsed back; sign-up's
    verification emails (no List-Unsubscribe) are left out."""
    from moto.core.models import DEFAULT_ACCOUNT_ID
    from moto.ses.models import ses_backends

    backend = ses_backends[DEFAULT_ACCOUNT_ID][REGION]
    parsed = [message_from_string(m.raw_data, policy=default) for m in backend.sent_messages]
    return [message for message in parsed if "List-Unsubscribe" in message]


def test_owners_get_an_email_in_text_and_html(with_email: Aws, user: ApiClient) -> None:
    task_id = add_task(user, NOW + timedelta(hours=5), description="Pay <the> rent")

    summary = deadline_service.check_deadlines(now=NOW)

    owner = user.get("/users/me").json()["email"]
    assert (summary.emails_sent, summary.emails_failed) == (1, 0)
    [email] = sent_emails()
    assert email["From"] == SENDER
    assert email["To"] == owner
    assert "Pay <the> rent" in email["Subject"]
    text = email.get_body(("plain",))
    html = email.get_body(("html",))
    assert text is not None
    assert html is not None
    text_part = str(text.get_content())
    html_part = str(html.get_content())
    # RFC 8058 one-click unsubscribe: an HTTPS URL on the API, and the POST marker.
    [link] = re.findall(r"^<(.+)>$", email["List-Unsubscribe"])
    assert link.startswith(f"{PUBLIC_URL}/unsubscribe/")
    assert email["List-Unsubscribe-Post"] == "List-Unsubscribe=One-Click"
    assert link in text_part
    assert "is due soon" in text_part
    assert "2030-06-01 17:00 UTC" in text_part
    assert "Pay <the> rent" in text_part
    assert "Pay &lt;the&gt; rent" in html_part
    assert "<the>" not in html_part
    assert f"Task id: {task_id}" in text_part
    # One SendRawEmail (moto's quota would count To: again on top of Destinations).
    assert len(sent_emails()) == 1


def test_an_email_ses_rejects_does_not_stop_the_others(
    with_email: Aws, user: ApiClient, admin_engine: Engine
) -> None:
    good = add_task(user, NOW + timedelta(hours=1))
    with admin_engine.begin() as connection:  # an owner whose address SES refuses
        broken_owner = connection.execute(
            text(
                "INSERT INTO users (email, password_hash, email_verified_at) "
                "VALUES ('no-domain', 'x', now()) RETURNING id"
            )
        ).scalar_one()
        bad = connection.execute(
            text(
                # Written outside the API, so with the reminder times the API would store.
                "INSERT INTO tasks (user_id, description, category, deadline, due_soon_at, "
                "overdue_at) VALUES (:user_id, 'Legacy task', 'old', :deadline, "
                "CAST(:deadline AS timestamptz) - interval '1 day', :deadline) RETURNING id"
            ),
            {"user_id": broken_owner, "deadline": NOW + timedelta(minutes=30)},
        ).scalar_one()
    later = add_task(user, NOW + timedelta(hours=2))

    summary = deadline_service.check_deadlines(now=NOW)

    assert (summary.due_soon, summary.emails_sent, summary.emails_failed) == (3, 2, 1)
    assert len(sent_emails()) == 2
    # The notifications themselves all went out and are not sent again.
    assert with_email.sent() == {(i, "task.due_soon"): 1 for i in (good, bad, later)}
    assert deadline_service.check_deadlines(now=NOW).emails_failed == 0


def test_ses_failing_as_a_whole_raises_after_recording_what_sns_sent(
    with_email: Aws, user: ApiClient, admin_engine: Engine
) -> None:
    task_id = add_task(user, NOW + timedelta(hours=1))

    def deny(**_: Any) -> None:
        raise ClientError({"Error": {"Code": "AccessDenied", "Message": "no"}}, "SendEmail")

    notifications.ses_client(None).meta.events.register("before-call.ses.SendRawEmail", deny)

    with pytest.raises(DeliveryUnavailable):
        deadline_service.check_deadlines(now=NOW)

    assert records(admin_engine) == {(task_id, "due_soon")}
    assert with_email.sent() == {(task_id, "task.due_soon"): 1}


# Re-arming


def test_changing_the_deadline_or_reopening_rearms(aws: Aws, user: ApiClient) -> None:
    task_id = add_task(user, NOW + timedelta(hours=6))
    deadline_service.check_deadlines(now=NOW)

    # Other edits do not re-arm.
    assert user.patch(f"/tasks/{task_id}", json_body={"description": "Renamed"}).status == 200
    assert deadline_service.check_deadlines(now=NOW).due_soon == 0

    # A new deadline does.
    moved = NOW + timedelta(hours=8)
    assert user.patch(f"/tasks/{task_id}", json_body={"deadline": rfc3339(moved)}).status == 200
    assert deadline_service.check_deadlines(now=NOW).due_soon == 1

    # Done, then reopened: notified again.
    assert user.patch(f"/tasks/{task_id}", json_body={"status": "Done"}).status == 200
    assert deadline_service.check_deadlines(now=NOW).due_soon == 0
    assert user.patch(f"/tasks/{task_id}", json_body={"status": "To Do"}).status == 200
    assert deadline_service.check_deadlines(now=NOW).due_soon == 1

    # Moving the deadline back to the first one counts as a change too.
    first = NOW + timedelta(hours=6)
    assert (
        user.put(
            f"/tasks/{task_id}",
            json_body=task_body(deadline=rfc3339(first), status="In Progress"),
        ).status
        == 200
    )
    assert deadline_service.check_deadlines(now=NOW).due_soon == 1

    deadlines_seen = [n["task"]["deadline"] for n in aws.notices()]
    assert deadlines_seen == [rfc3339(first), rfc3339(moved), rfc3339(moved), rfc3339(first)]


def test_a_conditional_deadline_change_rearms_and_a_stale_one_changes_nothing(
    aws: Aws, user: ApiClient
) -> None:
    """If-Match and re-arming together: the write that passes its precondition re-arms in the
    same transaction; one refused with 412 neither moves the deadline nor re-arms."""
    task_id = add_task(user, NOW + timedelta(hours=6))
    deadline_service.check_deadlines(now=NOW)
    stale = user.get(f"/tasks/{task_id}").header("ETag")
    assert stale is not None

    moved = NOW + timedelta(hours=8)
    changed = user.patch(
        f"/tasks/{task_id}", json_body={"deadline": rfc3339(moved)}, headers={"If-Match": stale}
    )
    assert changed.status == 200
    refused = user.patch(
        f"/tasks/{task_id}",
        json_body={"deadline": rfc3339(NOW + timedelta(hours=10))},
        headers={"If-Match": stale},
    )
    assert refused.status == 412
    assert user.get(f"/tasks/{task_id}").json()["deadline"] == rfc3339(moved)
    assert deadline_service.check_deadlines(now=NOW).due_soon == 1  # re-armed once, for `moved`
    assert deadline_service.check_deadlines(now=NOW).due_soon == 0

    current = user.get(f"/tasks/{task_id}").header("ETag")
    assert current is not None
    done = user.patch(
        f"/tasks/{task_id}", json_body={"status": "Done"}, headers={"If-Match": current}
    )
    assert done.status == 200
    assert user.delete(f"/tasks/{task_id}", headers={"If-Match": current}).status == 412
    assert deadline_service.check_deadlines(now=NOW).due_soon == 0
    assert [n["task"]["deadline"] for n in aws.notices()] == [
        rfc3339(NOW + timedelta(hours=6)),
        rfc3339(moved),
    ]


# What subscribers receive


def test_messages_on_a_subscribed_queue_carry_the_body_and_attributes(
    aws: Aws, user: ApiClient, admin_engine: Engine
) -> None:
    overdue_only = subscribe_queue(aws, "overdue-only", {"event_type": ["task.overdue"]})
    soon = add_task(user, NOW + timedelta(hours=2), description="Renew the passport")
    late = add_task(user, NOW - timedelta(hours=2), category="admin")
    me = user.get("/users/me").json()

    deadline_service.check_deadlines(now=NOW)

    envelopes = {json.loads(e["Message"])["task"]["id"]: e for e in aws.received()}
    assert set(envelopes) == {soon, late}
    envelope = envelopes[soon]
    assert envelope["TopicArn"] == aws.topic_arn
    assert envelope["Subject"] == "Taskline: a task is due soon"
    assert envelope["MessageAttributes"] == {
        "event_type": {"Type": "String", "Value": "task.due_soon"},
        "user_id": {"Type": "String", "Value": str(me["id"])},
    }
    body = json.loads(envelope["Message"])
    assert body == {
        "event_type": "task.due_soon",
        "notification_id": f"{soon}:due_soon:{rfc3339(NOW + timedelta(hours=2))}",
        "checked_at": rfc3339(NOW),
        "task": user.get(f"/tasks/{soon}").json(),
        "owner": {"id": me["id"], "email": me["email"]},
    }
    late_attributes = envelopes[late]["MessageAttributes"]
    assert late_attributes["event_type"]["Value"] == "task.overdue"
    with admin_engine.connect() as connection:  # the record keeps SNS's MessageId
        message_ids: dict[int, str] = dict(
            connection.execute(text("SELECT task_id, message_id FROM task_notifications")).all()
        )
    assert message_ids == {soon: envelope["MessageId"], late: envelopes[late]["MessageId"]}

    # A subscriber with a filter policy on event_type only gets its kind.
    filtered = aws.sqs.receive_message(QueueUrl=overdue_only, MaxNumberOfMessages=10)
    [only] = filtered["Messages"]
    assert json.loads(json.loads(only["Body"])["Message"])["task"]["id"] == late


# The function itself


def test_the_function_runs_on_a_scheduler_event(
    aws: Aws, user: ApiClient, gateway: LocalGateway
) -> None:
    task_id = add_task(user, datetime.now(UTC) + timedelta(hours=1))
    event = json.loads((EVENTS / "deadline-check.json").read_text())

    result = gateway.invoke(gateway.template.functions["DeadlineCheckFunction"], event)

    assert result["publisher"] == "sns"
    assert (result["due_soon"], result["overdue"], result["failed"]) == (1, 0, 0)
    assert result["complete"] is True
    assert aws.sent() == {(task_id, "task.due_soon"): 1}


def test_without_a_topic_the_function_logs_what_it_would_send(
    user: ApiClient, gateway: LocalGateway, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.INFO)
    task_id = add_task(user, datetime.now(UTC) - timedelta(hours=1))
    event = json.loads((EVENTS / "deadline-check.json").read_text())
    function = gateway.template.functions["DeadlineCheckFunction"]

    result = gateway.invoke(function, event)
    again = gateway.invoke(function, event)

    assert result["publisher"] == "log"
    assert (result["overdue"], again["overdue"]) == (1, 0)
    notices = [r.notification for r in caplog.records if hasattr(r, "notification")]
    assert [(n["task"]["id"], n["event_type"]) for n in notices] == [(task_id, "task.overdue")]


def test_the_scheduled_function_has_no_http_route(gateway: LocalGateway) -> None:
    function = gateway.template.functions["DeadlineCheckFunction"]
    assert function.routes == ()
    assert all(fn.logical_id != "DeadlineCheckFunction" for _, fn in gateway.template.routes())


def test_without_a_sender_the_reminder_email_is_written_to_the_log(
    user: ApiClient, admin_engine: Engine, caplog: pytest.LogCaptureFixture
) -> None:
    """As every email is locally: its recipient and its links (one-click unsubscribe) in the log,
    so the flow can be followed under `make run`; nothing counts as sent."""
    me = user.get("/users/me").json()
    with admin_engine.begin() as connection:
        connection.execute(
            text("UPDATE users SET email_verified_at = now() WHERE id = :id"), {"id": me["id"]}
        )
    due = (datetime.now(UTC) + timedelta(hours=1)).isoformat()
    assert user.post("/tasks", json_body=task_body(deadline=due)).status == 201
    with caplog.at_level(logging.INFO):
        summary = deadline_service.check_deadlines()
    assert summary.due_soon == 1
    assert summary.emails_sent == 0
    [logged] = [r for r in caplog.records if "logging the email" in r.getMessage()]
    assert getattr(logged, "to", None) == me["email"]
    assert any("/unsubscribe/" in link for link in getattr(logged, "links", []))
