"""Email safety on the wire (issue 19, items 2 and 3): no stored address can make Taskline mail
anyone else, one bad recipient fails alone, and RFC 8058's headers leave as RFC 8058 spells them.

Assertions are on the raw bytes SES was given (moto keeps them), never on a `policy=default`
parse, which would decode encoded words back and hide what a mail server sees.
"""

from __future__ import annotations

import re
from datetime import timedelta

import pytest
from sqlalchemy import Engine, text

from taskline import notifications
from taskline.services import deadline_service
from tests.functions import test_deadlines
from tests.functions.test_deadlines import NOW, PUBLIC_URL, REGION, SENDER, Aws, add_task
from tests.support.api import ApiClient

aws = test_deadlines.aws
with_email = test_deadlines.with_email

# Stored addresses the API refuses today, written straight into the database: rows from before
# the rules, or from outside the API. Each must fail alone, without reaching a header.
UNSAFE_ADDRESSES = [
    "=?utf-8?q?victim=40evil=2Eexample=2C_spam?=@example.com",  # RFC 2047 encoded word
    "=?utf-8?q?a=0D=0ABcc=3A_victim=40evil=2Eexample?=@example.com",  # encoded CR/LF
    '"victim@evil.example"@example.com',  # quoted-string local part
    "a\r\nBcc: victim@evil.example\r\n@example.com",  # raw CR/LF
    "victim@evil.example, spam@evil.example",  # two addresses in one
    "\u00fcser@example.com",  # non-ASCII local part: SES cannot send it (no SMTPUTF8)
]


def raw_messages() -> list[tuple[list[str], bytes]]:
    """(destinations, raw bytes) of every deadline email moto accepted (sign-up's verification
    emails, which carry no List-Unsubscribe, are left out)."""
    from moto.core.models import DEFAULT_ACCOUNT_ID
    from moto.ses.models import ses_backends

    backend = ses_backends[DEFAULT_ACCOUNT_ID][REGION]
    return [
        (list(m.destinations), m.raw_data.encode())
        for m in backend.sent_messages
        if "\r\nList-Unsubscribe:" in m.raw_data
    ]


def add_owner(admin_engine: Engine, email: str) -> int:
    """A verified owner with one task due in 30 minutes, written outside the API."""
    with admin_engine.begin() as connection:
        owner = connection.execute(
            text(
                "INSERT INTO users (email, password_hash, email_verified_at) "
                "VALUES (:email, 'x', now()) RETURNING id"
            ),
            {"email": email},
        ).scalar_one()
        connection.execute(
            text(
                "INSERT INTO tasks (user_id, description, category, deadline, due_soon_at, "
                "overdue_at) VALUES (:user_id, 'Legacy task', 'old', :deadline, "
                "CAST(:deadline AS timestamptz) - interval '1 day', :deadline)"
            ),
            {"user_id": owner, "deadline": NOW + timedelta(minutes=30)},
        )
    return int(owner)


def test_unsafe_stored_addresses_fail_alone_and_reach_no_header(
    with_email: Aws, user: ApiClient, admin_engine: Engine
) -> None:
    add_task(user, NOW + timedelta(hours=1))
    for address in UNSAFE_ADDRESSES:
        add_owner(admin_engine, address)
    add_task(user, NOW + timedelta(hours=2))  # after the bad ones in the batch

    summary = deadline_service.check_deadlines(now=NOW)

    owner = user.get("/users/me").json()["email"]
    assert (summary.emails_sent, summary.emails_failed) == (2, len(UNSAFE_ADDRESSES))
    sent = raw_messages()
    assert len(sent) == 2
    for destinations, raw in sent:
        # SES is told the recipient explicitly (real SES then ignores the headers' addresses;
        # moto appends them as well, so the To: header must name the same one address).
        assert destinations[0] == owner
        assert re.findall(rb"^To: (.*)\r$", raw, re.MULTILINE) == [owner.encode()]
        assert b"evil.example" not in raw
        assert b"=?utf-8?q?" not in raw.split(b"\r\n\r\n", 1)[0].lower()
    assert deadline_service.check_deadlines(now=NOW).emails_failed == 0  # not retried


def test_an_internationalised_domain_is_mailed_in_punycode(
    with_email: Aws, admin_engine: Engine
) -> None:
    add_owner(admin_engine, "ann@b\u00fccher.example")  # stored as sign-up stores it: Unicode

    summary = deadline_service.check_deadlines(now=NOW)

    assert (summary.emails_sent, summary.emails_failed) == (1, 0)
    [(destinations, raw)] = raw_messages()
    assert destinations[0] == "ann@xn--bcher-kva.example"
    assert b"\r\nTo: ann@xn--bcher-kva.example\r\n" in raw
    assert raw.isascii()


def test_one_click_headers_go_out_verbatim(with_email: Aws, user: ApiClient) -> None:
    add_task(user, NOW + timedelta(hours=1))

    deadline_service.check_deadlines(now=NOW)

    [(_, raw)] = raw_messages()
    headers = raw.split(b"\r\n\r\n", 1)[0]
    # RFC 2369 / RFC 8058: `<URL>` as is, on one line, not folded into encoded words.
    [link] = re.findall(rb"^List-Unsubscribe: <(https://[^>\r\n]+)>\r$", headers, re.MULTILINE)
    assert link.startswith(f"{PUBLIC_URL}/unsubscribe/".encode())
    assert len(link) > 78  # long enough that SMTP's default folding used to encode it
    assert b"\r\nList-Unsubscribe-Post: List-Unsubscribe=One-Click\r\n" in headers + b"\r\n"
    assert b"=?" not in headers.split(b"\r\nSubject:")[0]
    assert all(len(line) <= 998 for line in raw.split(b"\r\n"))  # RFC 5322 section 2.1.1


@pytest.mark.parametrize("address", UNSAFE_ADDRESSES)
def test_the_composer_refuses_unsafe_recipients(address: str) -> None:
    from taskline.errors import EmailRejected

    email = notifications.OutgoingEmail(to=address, subject="s", text="t", html="<p>t</p>")
    with pytest.raises(EmailRejected):
        notifications.compose(SENDER, email)


def test_feedback_about_a_punycode_address_suppresses_the_stored_one() -> None:
    """SES reports the address it was given (punycode); accounts store the domain in Unicode."""
    from taskline.services.email_feedback_service import SesEvent, undeliverable

    event = SesEvent.model_validate(
        {
            "eventType": "Complaint",
            "complaint": {"complainedRecipients": [{"emailAddress": "Ann@XN--BCHER-KVA.example"}]},
        }
    )
    assert list(undeliverable(event)) == ["ann@b\u00fccher.example"]
