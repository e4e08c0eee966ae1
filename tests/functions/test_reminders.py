"""Reminders people control (issue 15): notification preferences and per-task reminders honoured
by the deadline check, one-click unsubscribe, bounce and complaint suppression.

Everything a user does goes through the local API Gateway (HTTP API 2.0 events to the real
handlers); the deadline check runs against the real PostgreSQL with moto's SNS, SQS and SES.
"""

from __future__ import annotations

import json
import re
import time
import uuid
from datetime import timedelta
from typing import Any

import jwt
import pytest
from sqlalchemy import Engine, text

from localdev.gateway import LocalGateway
from taskline.services import deadline_service
from tests.functions import test_deadlines
from tests.functions.test_deadlines import NOW, PUBLIC_URL, Aws, add_task, rfc3339, sent_emails
from tests.support.api import ApiClient, assert_problem, forge_token, valid_claims
from tests.support.environment import TEST_JWT_SECRET

# The mocked AWS account of the deadline tests (moto SNS, SQS, SES), as fixtures here too.
aws = test_deadlines.aws
with_email = test_deadlines.with_email

PREFERENCES = "/users/me/notifications"
ONE_CLICK = "List-Unsubscribe=One-Click"
FORM = {"Content-Type": "application/x-www-form-urlencoded"}


def sent(aws: Aws) -> set[tuple[int, str]]:
    return set(aws.sent())


# --- Preferences over HTTP ------------------------------------------------------------------


def test_preferences_default_to_everything_on_with_a_24_hour_lead(user: ApiClient) -> None:
    response = user.get(PREFERENCES)
    assert response.status == 200
    assert response.json() == {
        "email_enabled": True,
        "due_soon_enabled": True,
        "overdue_enabled": True,
        "due_soon_minutes": 1440,
        "email_deliverable": True,
        "updated_at": None,
    }


def test_preferences_can_be_replaced_and_patched(user: ApiClient) -> None:
    replaced = user.put(
        PREFERENCES,
        json_body={
            "email_enabled": True,
            "due_soon_enabled": True,
            "overdue_enabled": False,
            "due_soon_minutes": 120,
        },
    )
    assert replaced.status == 200, replaced.body
    assert replaced.json()["overdue_enabled"] is False
    patched = user.patch(PREFERENCES, json_body={"email_enabled": False})
    assert patched.status == 200
    body = patched.json()
    assert (body["email_enabled"], body["overdue_enabled"], body["due_soon_minutes"]) == (
        False,
        False,
        120,
    )
    assert user.get(PREFERENCES).json() == body


@pytest.mark.parametrize(
    "body",
    [
        {"due_soon_minutes": 0},
        {"due_soon_minutes": 10081},
        {"due_soon_minutes": "60"},
        {"due_soon_minutes": 60.5},
        {"email_enabled": "false"},
        {"email_enabled": 0},
        {"email_enabled": None},
        {"user_id": 1},
        {"due_soon_minutes": 2**70},
    ],
)
def test_bad_preferences_are_422_and_change_nothing(user: ApiClient, body: dict[str, Any]) -> None:
    before = user.get(PREFERENCES).json()
    assert_problem(user.patch(PREFERENCES, json_body=body), 422)
    assert user.get(PREFERENCES).json() == before


def test_put_needs_every_preference(user: ApiClient) -> None:
    assert_problem(user.put(PREFERENCES, json_body={"email_enabled": False}), 422)


def test_preferences_need_a_token(client: ApiClient) -> None:
    response = client.get(PREFERENCES)
    assert_problem(response, 401)
    assert response.header("WWW-Authenticate")


def test_preferences_are_per_account(user: ApiClient, other_user: ApiClient) -> None:
    assert user.patch(PREFERENCES, json_body={"due_soon_minutes": 30}).status == 200
    assert other_user.get(PREFERENCES).json()["due_soon_minutes"] == 1440


# --- The deadline check honours them ----------------------------------------------------------


def test_a_shorter_lead_time_delays_the_due_soon_reminder(aws: Aws, user: ApiClient) -> None:
    assert user.patch(PREFERENCES, json_body={"due_soon_minutes": 120}).status == 200
    in_three_hours = add_task(user, NOW + timedelta(hours=3))
    in_one_hour = add_task(user, NOW + timedelta(hours=1))

    assert deadline_service.check_deadlines(now=NOW).due_soon == 1
    assert sent(aws) == {(in_one_hour, "task.due_soon")}
    later = deadline_service.check_deadlines(now=NOW + timedelta(hours=1, minutes=1))
    assert (later.due_soon, later.overdue) == (1, 1)
    assert sent(aws) == {
        (in_one_hour, "task.due_soon"),
        (in_one_hour, "task.overdue"),
        (in_three_hours, "task.due_soon"),
    }


def test_a_lead_time_change_applies_to_existing_tasks(aws: Aws, user: ApiClient) -> None:
    task_id = add_task(user, NOW + timedelta(hours=30))
    assert deadline_service.check_deadlines(now=NOW).due_soon == 0  # 24 h ahead: not yet
    assert user.patch(PREFERENCES, json_body={"due_soon_minutes": 2 * 1440}).status == 200
    assert deadline_service.check_deadlines(now=NOW).due_soon == 1
    assert sent(aws) == {(task_id, "task.due_soon")}
    # Another change moves what is still to come; what was sent is not sent again.
    assert user.patch(PREFERENCES, json_body={"due_soon_minutes": 3 * 1440}).status == 200
    assert user.patch(f"/tasks/{task_id}", json_body={"description": "Renamed"}).status == 200
    assert deadline_service.check_deadlines(now=NOW).due_soon == 0
    assert aws.sent() == {(task_id, "task.due_soon"): 1}


def test_stages_switched_off_are_not_sent(aws: Aws, user: ApiClient, other_user: ApiClient) -> None:
    assert user.patch(PREFERENCES, json_body={"overdue_enabled": False}).status == 200
    late = add_task(user, NOW - timedelta(hours=1))
    soon = add_task(user, NOW + timedelta(hours=1))
    others_late = add_task(other_user, NOW - timedelta(hours=1))

    deadline_service.check_deadlines(now=NOW)
    assert sent(aws) == {(soon, "task.due_soon"), (others_late, "task.overdue")}

    assert user.patch(PREFERENCES, json_body={"due_soon_enabled": False}).status == 200
    add_task(user, NOW + timedelta(hours=2))
    assert user.patch(PREFERENCES, json_body={"overdue_enabled": True}).status == 200
    summary = deadline_service.check_deadlines(now=NOW)
    # Overdue is back on: the late task is notified now; the new one gets no due-soon reminder.
    assert (summary.overdue, summary.due_soon) == (1, 0)
    assert (late, "task.overdue") in sent(aws)


def test_email_off_still_publishes_but_sends_no_email(with_email: Aws, user: ApiClient) -> None:
    assert user.patch(PREFERENCES, json_body={"email_enabled": False}).status == 200
    task_id = add_task(user, NOW + timedelta(hours=1))

    summary = deadline_service.check_deadlines(now=NOW)

    assert (summary.due_soon, summary.emails_sent, summary.emails_skipped) == (1, 0, 1)
    assert sent(with_email) == {(task_id, "task.due_soon")}
    assert sent_emails() == []


# --- Per-task reminders -------------------------------------------------------------------------


def test_a_task_reminder_overrides_the_account_lead_time(aws: Aws, user: ApiClient) -> None:
    created = user.post(
        "/tasks",
        json_body={
            "description": "Call the bank",
            "category": "errands",
            "deadline": rfc3339(NOW + timedelta(hours=3)),
            "remind_before": 120,
        },
    )
    assert created.status == 201, created.body
    assert created.json()["remind_before"] == 120
    task_id = created.json()["id"]

    assert deadline_service.check_deadlines(now=NOW).due_soon == 0  # 3 h ahead, reminder at 2 h
    assert deadline_service.check_deadlines(now=NOW + timedelta(minutes=61)).due_soon == 1
    assert sent(aws) == {(task_id, "task.due_soon")}


def test_a_task_reminder_works_even_with_due_soon_switched_off(aws: Aws, user: ApiClient) -> None:
    assert user.patch(PREFERENCES, json_body={"due_soon_enabled": False}).status == 200
    plain = add_task(user, NOW + timedelta(minutes=30))
    reminded = add_task(user, NOW + timedelta(minutes=30), remind_before=60)
    deadline_service.check_deadlines(now=NOW)
    assert sent(aws) == {(reminded, "task.due_soon")}
    assert (plain, "task.due_soon") not in sent(aws)


def test_changing_a_reminder_rearms_it_and_other_writes_do_not(aws: Aws, user: ApiClient) -> None:
    task_id = add_task(user, NOW + timedelta(hours=10))
    assert deadline_service.check_deadlines(now=NOW).due_soon == 1  # the default 24 h lead

    # Unchanged reminder (PUT sends every field, PATCH the same value): no new reminder.
    task = user.get(f"/tasks/{task_id}").json()
    body = {k: task[k] for k in ("description", "category", "deadline", "status")}
    assert user.put(f"/tasks/{task_id}", json_body=body).status == 200
    assert user.patch(f"/tasks/{task_id}", json_body={"description": "Renamed"}).status == 200
    assert deadline_service.check_deadlines(now=NOW).due_soon == 0

    # A new reminder re-arms due soon: two hours before the deadline, it comes again.
    patched = user.patch(f"/tasks/{task_id}", json_body={"remind_before": 120})
    assert patched.status == 200
    assert patched.json()["remind_before"] == 120
    assert deadline_service.check_deadlines(now=NOW).due_soon == 0
    assert deadline_service.check_deadlines(now=NOW + timedelta(hours=8)).due_soon == 1
    same = user.patch(f"/tasks/{task_id}", json_body={"remind_before": 120})
    assert same.status == 200
    assert deadline_service.check_deadlines(now=NOW + timedelta(hours=8)).due_soon == 0

    # Back to the account's lead time (null), which is already past: reminded at once.
    cleared = user.patch(f"/tasks/{task_id}", json_body={"remind_before": None})
    assert cleared.json()["remind_before"] is None
    assert deadline_service.check_deadlines(now=NOW + timedelta(hours=8)).due_soon == 1
    assert aws.sent() == {(task_id, "task.due_soon"): 3}


@pytest.mark.parametrize("value", [0, -5, 10081, "120", 1.5, True, [120]])
def test_bad_reminders_are_422(user: ApiClient, value: Any) -> None:
    response = user.post(
        "/tasks",
        json_body={
            "description": "x",
            "category": "y",
            "deadline": "2030-01-15T09:00:00Z",
            "remind_before": value,
        },
    )
    body = assert_problem(response, 422)
    assert body["errors"][0]["loc"][-1] == "remind_before" or "remind_before" in str(body)
    assert user.get("/tasks").json() == []


def test_reminders_leave_the_list_filters_alone(user: ApiClient) -> None:
    add_task(user, NOW + timedelta(hours=1), remind_before=30, category="a")
    add_task(user, NOW + timedelta(hours=2), category="b")
    listed = user.get("/tasks", query={"category": "a"}).json()
    assert [(t["category"], t["remind_before"]) for t in listed] == [("a", 30)]
    assert len(user.get("/tasks", query={"due_after": rfc3339(NOW)}).json()) == 2


# --- One-click unsubscribe ---------------------------------------------------------------------


def unsubscribe_link(aws: Aws) -> str:
    """The List-Unsubscribe URL of the last email sent, as a path on the API."""
    email = sent_emails()[-1]
    [link] = re.findall(r"^<(.+)>$", str(email["List-Unsubscribe"]))
    assert link.startswith(PUBLIC_URL + "/unsubscribe/")
    return str(link).removeprefix(PUBLIC_URL)


def test_one_post_to_the_emails_link_unsubscribes(
    with_email: Aws, user: ApiClient, client: ApiClient
) -> None:
    add_task(user, NOW + timedelta(hours=1))
    deadline_service.check_deadlines(now=NOW)
    path = unsubscribe_link(with_email)

    page = client.get(path)  # what a link scanner or a click sees: a page, no change
    assert page.status == 200
    assert page.header("Content-Type") == "text/html; charset=utf-8"
    assert b"method='post'" in page.body
    assert "default-src 'none'" in (page.header("Content-Security-Policy") or "")
    assert user.get(PREFERENCES).json()["email_enabled"] is True

    done = client.post(path, body=ONE_CLICK, headers=FORM)  # what the mail client sends
    assert done.status == 200, done.body
    assert user.get(PREFERENCES).json()["email_enabled"] is False
    # Repeating it (a retrying mail provider) is harmless.
    assert client.post(path, body=ONE_CLICK, headers=FORM).status == 200

    add_task(user, NOW + timedelta(hours=2))
    summary = deadline_service.check_deadlines(now=NOW)
    assert (summary.due_soon, summary.emails_sent, summary.emails_skipped) == (1, 0, 1)


def test_one_click_as_multipart_form_data_works_too(with_email: Aws, user: ApiClient) -> None:
    add_task(user, NOW + timedelta(hours=1))
    deadline_service.check_deadlines(now=NOW)
    path = unsubscribe_link(with_email)
    boundary = "taskline-boundary"
    body = (
        f'--{boundary}\r\nContent-Disposition: form-data; name="List-Unsubscribe"\r\n\r\n'
        f"One-Click\r\n--{boundary}--\r\n"
    )
    headers = {"Content-Type": f"multipart/form-data; boundary={boundary}"}
    assert user.post(path, body=body, headers=headers, token="").status == 200
    assert user.get(PREFERENCES).json()["email_enabled"] is False


def test_a_replayed_link_cannot_undo_a_later_opt_in(with_email: Aws, user: ApiClient) -> None:
    add_task(user, NOW + timedelta(hours=1))
    deadline_service.check_deadlines(now=NOW)
    path = unsubscribe_link(with_email)
    assert user.post(path, body=ONE_CLICK, headers=FORM).status == 200
    time.sleep(1.1)  # tokens carry whole seconds
    assert user.patch(PREFERENCES, json_body={"email_enabled": True}).status == 200

    replayed = user.post(path, body=ONE_CLICK, headers=FORM)

    assert_problem(replayed, 410)
    assert user.get(PREFERENCES).json()["email_enabled"] is True
    assert_problem(user.get(path), 410)


def _unsubscribe_token(user_id: int, secret: str = TEST_JWT_SECRET, **overrides: Any) -> str:
    from taskline.security.tokens import key_id

    now = int(time.time())
    claims: dict[str, Any] = {
        "sub": str(user_id),
        "iat": now,
        "exp": now + 3600,
        "iss": "taskline",
        "aud": "taskline-unsubscribe",
        "jti": "x",
    }
    claims.update(overrides)
    return jwt.encode(
        claims, secret, algorithm="HS256", headers={"kid": key_id(TEST_JWT_SECRET.encode())}
    )


def test_forged_expired_and_foreign_tokens_change_nothing(
    user: ApiClient, client: ApiClient, admin_engine: Engine
) -> None:
    from tests.support.api import user_id_of

    user_id = user_id_of(user)
    genuine = _unsubscribe_token(user_id)
    header, payload, signature = genuine.split(".")
    tampered_signature = f"{header}.{payload}.{signature[:-4]}AAAA"
    other_payload = jwt.utils.base64url_encode(
        json.dumps(
            {**jwt.decode(genuine, options={"verify_signature": False}), "sub": "1"}
        ).encode()
    ).decode()
    cases = {
        "forged signature": (tampered_signature, 404),
        "other account, same signature": (f"{header}.{other_payload}.{signature}", 404),
        "signed with another key": (_unsubscribe_token(user_id, secret="y" * 40), 404),
        "expired": (
            _unsubscribe_token(user_id, iat=int(time.time()) - 7200, exp=int(time.time()) - 3600),
            410,
        ),
        "an access token": (forge_token(valid_claims(user_id)), 404),
        "alg none": (jwt.encode({"sub": str(user_id)}, "", algorithm="none"), 404),
        "garbage": ("not-a-token", 404),
        "unknown account": (_unsubscribe_token(999_999), 404),
    }
    for name, (token, status) in cases.items():
        response = client.post(f"/unsubscribe/{token}", body=ONE_CLICK, headers=FORM)
        assert response.status == status, (name, response.body)
        assert_problem(response, status)
    assert user.get(PREFERENCES).json()["email_enabled"] is True
    with admin_engine.connect() as connection:
        assert (
            connection.execute(text("SELECT count(*) FROM notification_preferences")).scalar() == 0
        )


def test_an_unsubscribe_token_is_not_an_access_token(user: ApiClient) -> None:
    from tests.support.api import user_id_of

    token = _unsubscribe_token(user_id_of(user))
    assert_problem(user.get("/tasks", token=token), 401)


def test_the_post_needs_the_one_click_body(user: ApiClient, client: ApiClient) -> None:
    from tests.support.api import user_id_of

    path = f"/unsubscribe/{_unsubscribe_token(user_id_of(user))}"
    assert_problem(client.post(path, headers=FORM), 400)
    assert_problem(client.post(path, body="List-Unsubscribe=Yes", headers=FORM), 400)
    assert_problem(client.post(path, body=f"{ONE_CLICK}&{ONE_CLICK}", headers=FORM), 400)
    assert_problem(client.post(path, json_body={"List-Unsubscribe": "One-Click"}), 415)
    assert user.get(PREFERENCES).json()["email_enabled"] is True


def _nested_multipart(depth: int) -> tuple[str, dict[str, str]]:
    """A multipart/form-data body nested `depth` times, each part opening the next (issue 19
    item 4's body bomb: `email.parser` recursed once per level, RecursionError past ~1000)."""

    def boundary(level: int) -> str:
        return format(level, "x")

    body = "".join(
        f"--{boundary(level)}\r\ncontent-type:multipart/a;boundary={boundary(level + 1)}\r\n\r\n"
        for level in range(1, depth + 1)
    )
    return body, {"Content-Type": f"multipart/form-data; boundary={boundary(1)}"}


@pytest.mark.parametrize("valid_link", [False, True], ids=["forged link", "genuine link"])
def test_a_deeply_nested_body_is_a_quick_4xx(
    user: ApiClient, client: ApiClient, valid_link: bool
) -> None:
    from tests.support.api import user_id_of

    token = _unsubscribe_token(user_id_of(user)) if valid_link else "anything"
    body, headers = _nested_multipart(1200)  # deep enough for RecursionError in email.parser
    assert 8 * 1024 < len(body) < 64 * 1024  # under the API's body limit
    started = time.process_time()
    response = client.post(f"/unsubscribe/{token}", body=body, headers=headers)
    spent = time.process_time() - started
    # A forged link is refused before the body is read; a genuine one gets a bounded parse.
    assert_problem(response, 404 if not valid_link else 413)
    assert spent < 0.5, spent
    small, small_headers = _nested_multipart(20)
    assert len(small) < 8 * 1024
    # Small enough to read, yet nested: only the top level counts, and it holds no field.
    assert_problem(
        client.post(f"/unsubscribe/{token}", body=small, headers=small_headers),
        404 if not valid_link else 400,
    )
    many_parts = (
        "".join(
            f'--p\r\nContent-Disposition: form-data; name="f{i}"\r\n\r\nx\r\n' for i in range(40)
        )
        + "--p--\r\n"
    )
    response = client.post(
        f"/unsubscribe/{token}",
        body=many_parts,
        headers={"Content-Type": "multipart/form-data; boundary=p"},
    )
    assert_problem(response, 404 if not valid_link else 400)
    assert user.get(PREFERENCES).json()["email_enabled"] is True


# --- Bounces and complaints -----------------------------------------------------------------------


def ses_record(kind: str, address: str, **detail: Any) -> dict[str, Any]:
    """An SES event record as event publishing sends it to SNS, shaped as in
    https://docs.aws.amazon.com/ses/latest/dg/event-publishing-retrieving-sns-examples.html"""
    mail = {
        "timestamp": "2030-06-01T12:00:00.000Z",
        "source": "deadlines@taskline.example",
        "sourceArn": "arn:aws:ses:us-east-1:123456789012:identity/deadlines@taskline.example",
        "sendingAccountId": "123456789012",
        "messageId": "EXAMPLE7c191be45-e9aedb9a-02f9-4d12-a87d-dd0099a07f8a-000000",
        "destination": [address],
        "headersTruncated": False,
        "tags": {"ses:configuration-set": ["taskline-deadline-email"]},
    }
    if kind == "Bounce":
        body = {
            "bounceType": detail.get("bounce_type", "Permanent"),
            "bounceSubType": "General",
            "bouncedRecipients": [
                {
                    "emailAddress": address,
                    "action": "failed",
                    "status": "5.1.1",
                    "diagnosticCode": "smtp; 550 5.1.1 user unknown",
                }
            ],
            "timestamp": "2030-06-01T12:00:01.669Z",
            "feedbackId": "01000157c44f053b-61b59c11-9236-11e6-8f96-7be8aexample-000000",
            "reportingMTA": "dsn; mta.example.com",
        }
        return {"eventType": "Bounce", "bounce": body, "mail": mail}
    body = {
        "complainedRecipients": [{"emailAddress": address}],
        "timestamp": "2030-06-01T12:05:00.000Z",
        "feedbackId": "01000157c44f053b-61b59c11-9236-11e6-8f96-7be8aexample-000001",
        "userAgent": "Mozilla/5.0",
        "complaintFeedbackType": detail.get("feedback_type", "abuse"),
        "arrivalDate": "2030-06-01T12:04:00.000Z",
    }
    return {"eventType": "Complaint", "complaint": body, "mail": mail}


def deliver_feedback(aws: Aws, gateway: LocalGateway, *messages: str) -> dict[str, Any]:
    """Publish the records on an SNS topic (moto), read the envelopes from a subscribed queue,
    and invoke EmailFeedbackFunction with the SNS event Lambda would get
    (https://docs.aws.amazon.com/lambda/latest/dg/with-sns.html)."""
    name = f"feedback-{uuid.uuid4().hex[:8]}"
    topic = aws.sns.create_topic(Name=name)["TopicArn"]
    queue = aws.sqs.create_queue(QueueName=name)["QueueUrl"]
    queue_arn = aws.sqs.get_queue_attributes(QueueUrl=queue, AttributeNames=["QueueArn"])[
        "Attributes"
    ]["QueueArn"]
    aws.sns.subscribe(TopicArn=topic, Protocol="sqs", Endpoint=queue_arn)
    for message in messages:
        aws.sns.publish(TopicArn=topic, Message=message)
    envelopes = [
        json.loads(m["Body"])
        for m in aws.sqs.receive_message(QueueUrl=queue, MaxNumberOfMessages=10)["Messages"]
    ]
    event = {
        "Records": [
            {
                "EventSource": "aws:sns",
                "EventVersion": "1.0",
                "EventSubscriptionArn": f"{topic}:0b7e4a3c-1111-2222-3333-444455556666",
                "Sns": {
                    "Type": envelope["Type"],
                    "MessageId": envelope["MessageId"],
                    "TopicArn": envelope["TopicArn"],
                    "Subject": envelope.get("Subject"),
                    "Message": envelope["Message"],
                    "Timestamp": envelope["Timestamp"],
                    "SignatureVersion": envelope["SignatureVersion"],
                    "Signature": envelope["Signature"],
                    "SigningCertUrl": envelope["SigningCertURL"],
                    "UnsubscribeUrl": envelope["UnsubscribeURL"],
                    "MessageAttributes": {},
                },
            }
            for envelope in envelopes
        ]
    }
    return gateway.invoke(gateway.template.functions["EmailFeedbackFunction"], event)


def test_a_permanent_bounce_stops_email_until_the_owner_verifies_again(
    with_email: Aws, user: ApiClient, gateway: LocalGateway
) -> None:
    from tests.support.api import verification_path

    me = user.get("/users/me").json()
    old_link = verification_path(me["id"], me["email"], time.time() - 10)
    summary = deliver_feedback(
        with_email, gateway, json.dumps(ses_record("Bounce", me["email"].upper()))
    )
    assert (summary["suppressed"], summary["malformed"]) == (1, 0)
    assert user.get(PREFERENCES).json()["email_deliverable"] is False

    add_task(user, NOW + timedelta(hours=1))
    first = deadline_service.check_deadlines(now=NOW)
    assert (first.due_soon, first.emails_sent, first.emails_skipped) == (1, 0, 1)

    # The account holder alone cannot undo it (issue 19 item 5), nor can a link sent before.
    switched_on = user.patch(PREFERENCES, json_body={"email_enabled": True})
    assert switched_on.json()["email_deliverable"] is False
    assert_problem(user.post(old_link, token=""), 410)
    assert user.get(PREFERENCES).json()["email_deliverable"] is False

    # A fresh verification by the address's owner does.
    assert user.post(verification_path(me["id"], me["email"]), token="").status == 200
    assert user.get(PREFERENCES).json()["email_deliverable"] is True
    add_task(user, NOW + timedelta(hours=2))
    second = deadline_service.check_deadlines(now=NOW)
    assert (second.due_soon, second.emails_sent) == (1, 1)


def test_a_complaint_suppresses_and_soft_feedback_does_not(
    with_email: Aws, user: ApiClient, other_user: ApiClient, gateway: LocalGateway
) -> None:
    complainer = user.get("/users/me").json()["email"]
    soft = other_user.get("/users/me").json()["email"]
    summary = deliver_feedback(
        with_email,
        gateway,
        json.dumps(ses_record("Complaint", complainer)),
        json.dumps(ses_record("Bounce", soft, bounce_type="Transient")),
        json.dumps(ses_record("Complaint", soft, feedback_type="not-spam")),
        json.dumps({"eventType": "Delivery", "mail": {}}),
        "not json at all",
        json.dumps({"eventType": "Bounce", "bounce": {"bounceType": "Permanent"}}),
    )
    assert summary == {"records": 6, "suppressed": 1, "ignored": 3, "malformed": 2}
    assert user.get(PREFERENCES).json()["email_deliverable"] is False
    assert other_user.get(PREFERENCES).json()["email_deliverable"] is True
    # The same report again (SNS delivers at least once) changes nothing.
    again = deliver_feedback(with_email, gateway, json.dumps(ses_record("Complaint", complainer)))
    assert again["suppressed"] == 0
    # A complaint sticks to the address: the account holder switching email on does not lift it.
    assert user.patch(PREFERENCES, json_body={"email_enabled": True}).status == 200
    assert user.get(PREFERENCES).json()["email_deliverable"] is False
