"""Email ownership with a sender configured (issue 19, item 5): sign-up emails a verification
link through SES, no reminder goes to an unverified address, and a recipient's one-click
unsubscribe sticks to the address until its owner verifies it again.

Through the local API Gateway against the real PostgreSQL; moto stands in for SES and SNS.
"""

from __future__ import annotations

import re
import time
from datetime import timedelta
from email import message_from_string
from email.policy import default

from taskline.services import deadline_service
from tests.functions import test_deadlines
from tests.functions.test_deadlines import NOW, PUBLIC_URL, REGION, Aws, add_task
from tests.functions.test_reminders import FORM, ONE_CLICK, PREFERENCES, unsubscribe_link
from tests.support.api import ApiClient, assert_problem, verification_path

aws = test_deadlines.aws
with_email = test_deadlines.with_email


def verification_links(address: str) -> list[str]:
    """The verification links SES was given for `address`, oldest first, as API paths."""
    from moto.core.models import DEFAULT_ACCOUNT_ID
    from moto.ses.models import ses_backends

    backend = ses_backends[DEFAULT_ACCOUNT_ID][REGION]
    links = []
    for message in backend.sent_messages:
        if message.destinations[0] != address:
            continue
        parsed = message_from_string(message.raw_data, policy=default)
        body = parsed.get_body(("plain",))
        assert body is not None
        found = re.search(r"(https://\S+/verify-email/[A-Za-z0-9_.-]+)", str(body.get_content()))
        if found:
            links.append(found.group(1).removeprefix(PUBLIC_URL))
    return links


def signed_up(client: ApiClient) -> ApiClient:
    email = client.sign_up()
    return ApiClient(client.gateway, client.login(email))


def test_sign_up_emails_a_link_and_no_reminder_goes_before_it_is_followed(
    with_email: Aws, client: ApiClient
) -> None:
    owner = signed_up(client)
    me = owner.get("/users/me").json()
    assert me["email_verified"] is False
    [link] = verification_links(me["email"])
    assert owner.get(PREFERENCES).json()["email_deliverable"] is False

    add_task(owner, NOW + timedelta(hours=1))
    first = deadline_service.check_deadlines(now=NOW)
    assert (first.due_soon, first.emails_sent, first.emails_skipped) == (1, 0, 1)

    page = client.get(link)  # opening the link changes nothing
    assert page.status == 200
    assert b"method='post'" in page.body
    assert owner.get("/users/me").json()["email_verified"] is False
    assert client.post(link).status == 200
    assert owner.get("/users/me").json()["email_verified"] is True
    assert owner.get(PREFERENCES).json()["email_deliverable"] is True

    add_task(owner, NOW + timedelta(hours=2))
    second = deadline_service.check_deadlines(now=NOW)
    assert (second.due_soon, second.emails_sent) == (1, 1)


def test_a_recipients_unsubscribe_sticks_until_the_owner_verifies_again(
    with_email: Aws, user: ApiClient, client: ApiClient
) -> None:
    me = user.get("/users/me").json()
    add_task(user, NOW + timedelta(hours=1))
    deadline_service.check_deadlines(now=NOW)
    unsubscribe = unsubscribe_link(with_email)
    time.sleep(1.1)  # tokens carry whole seconds
    stale_verification = verification_path(me["id"], me["email"])
    time.sleep(1.1)

    assert client.post(unsubscribe, body=ONE_CLICK, headers=FORM).status == 200

    # The account holder switching email on does not undo the recipient's choice.
    assert user.patch(PREFERENCES, json_body={"email_enabled": True}).status == 200
    assert user.get(PREFERENCES).json()["email_deliverable"] is False
    add_task(user, NOW + timedelta(hours=2))
    assert deadline_service.check_deadlines(now=NOW).emails_sent == 0
    # Nor does a verification link sent before the unsubscribe (say, kept from sign-up).
    assert_problem(client.post(stale_verification), 410)
    assert_problem(client.get(stale_verification), 410)
    assert user.get(PREFERENCES).json()["email_deliverable"] is False

    # The owner asks for a new link; following it (reading the mailbox) lifts it.
    assert user.post("/users/me/email-verification").status == 204
    fresh = verification_links(me["email"])[-1]
    assert client.post(fresh).status == 200
    assert user.get(PREFERENCES).json()["email_deliverable"] is True
    # The old unsubscribe link is superseded by the fresh verification: 410, changes nothing.
    assert_problem(client.post(unsubscribe, body=ONE_CLICK, headers=FORM), 410)
    assert user.get(PREFERENCES).json()["email_deliverable"] is True
    add_task(user, NOW + timedelta(hours=3))
    assert deadline_service.check_deadlines(now=NOW).emails_sent == 1
