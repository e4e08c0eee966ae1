"""Shared lists as an attacker sees them: other accounts' ids (BOLA), roles overstepped,
someone else's invitation, telling accounts apart through invitations, racing hand-overs,
header injection through invitations."""

from __future__ import annotations

import statistics
import threading
import time
from collections.abc import Callable, Iterator
from email import message_from_string
from email.message import EmailMessage
from email.policy import default
from typing import Any

import boto3
import pytest
from moto import mock_aws
from sqlalchemy import Engine, text

from taskline import invitation_email, notifications
from taskline.domain import ListRole
from taskline.errors import Forbidden
from tests.http.lists_support import Account, invite, join, new_list
from tests.support.api import assert_problem

MakeAccount = Callable[..., Account]
REGION = "us-east-1"
SENDER = "reminders@taskline.example.com"


def _owners(admin_engine: Engine, list_id: int) -> tuple[list[int], int]:
    with admin_engine.begin() as connection:
        owners = (
            connection.execute(
                text("SELECT user_id FROM list_members WHERE list_id = :l AND role = 'owner'"),
                {"l": list_id},
            )
            .scalars()
            .all()
        )
        owner_id = connection.execute(
            text("SELECT owner_id FROM lists WHERE id = :l"), {"l": list_id}
        ).scalar_one()
    return list(owners), int(owner_id)


def test_another_accounts_ids_are_404_everywhere(make_account: MakeAccount) -> None:
    owner, member, stranger = make_account(), make_account(), make_account()
    created = new_list(owner)
    list_id = created["id"]
    join(owner, member, list_id)
    invitation = invite(owner, list_id, "newcomer@example.com")
    new_list(stranger, "the stranger's own")
    attempts: list[tuple[str, str, Any]] = [
        ("GET", f"/lists/{list_id}", None),
        ("PATCH", f"/lists/{list_id}", {"name": "mine"}),
        ("DELETE", f"/lists/{list_id}", None),
        ("GET", f"/lists/{list_id}/members", None),
        ("PATCH", f"/lists/{list_id}/members/{member.id}", {"role": "viewer"}),
        ("PATCH", f"/lists/{list_id}/members/{stranger.id}", {"role": "owner"}),
        ("DELETE", f"/lists/{list_id}/members/{member.id}", None),
        ("DELETE", f"/lists/{list_id}/members/{stranger.id}", None),
        ("POST", f"/lists/{list_id}/invitations", {"email": stranger.email, "role": "editor"}),
        ("GET", f"/lists/{list_id}/invitations", None),
        ("DELETE", f"/lists/{list_id}/invitations/{invitation['id']}", None),
        ("POST", f"/invitations/{invitation['id']}/accept", None),
        ("DELETE", f"/invitations/{invitation['id']}", None),
        ("GET", "/lists/999999", None),
        ("POST", "/invitations/999999/accept", None),
    ]
    for method, path, body in attempts:
        response = stranger.client.request(method, path, json_body=body)
        problem = assert_problem(response, 404)
        assert "owner" not in problem["detail"].lower(), (method, path)
    # Nothing changed.
    seen = owner.get(f"/lists/{list_id}").json()
    assert (seen["name"], seen["member_count"]) == ("Household", 2)
    assert len(owner.get(f"/lists/{list_id}/invitations").json()) == 1
    assert [item["name"] for item in stranger.get("/lists").json()] == ["the stranger's own"]


def test_an_invitation_of_another_list_cannot_be_revoked_through_mine(
    make_account: MakeAccount,
) -> None:
    owner, attacker = make_account(), make_account()
    theirs = new_list(owner)
    invitation = invite(owner, theirs["id"], "newcomer@example.com")
    mine = new_list(attacker)
    response = attacker.delete(f"/lists/{mine['id']}/invitations/{invitation['id']}")
    assert_problem(response, 404)
    assert len(owner.get(f"/lists/{theirs['id']}/invitations").json()) == 1


def test_an_editor_cannot_share_delete_or_take_over(
    make_account: MakeAccount, admin_engine: Engine
) -> None:
    owner, editor, viewer = make_account(), make_account(), make_account()
    created = new_list(owner)
    list_id = created["id"]
    join(owner, editor, list_id, "editor")
    join(owner, viewer, list_id, "viewer")
    invitation = invite(owner, list_id, "newcomer@example.com")
    for member, other in ((editor, viewer), (viewer, editor)):
        refused: list[tuple[str, str, Any]] = [
            ("POST", f"/lists/{list_id}/invitations", {"email": "x@example.com", "role": "editor"}),
            ("GET", f"/lists/{list_id}/invitations", None),
            ("DELETE", f"/lists/{list_id}/invitations/{invitation['id']}", None),
            ("DELETE", f"/lists/{list_id}", None),
            ("PATCH", f"/lists/{list_id}/members/{member.id}", {"role": "owner"}),
            ("PATCH", f"/lists/{list_id}/members/{member.id}", {"role": "editor"}),
            ("PATCH", f"/lists/{list_id}/members/{other.id}", {"role": "editor"}),
            ("PATCH", f"/lists/{list_id}/members/{owner.id}", {"role": "viewer"}),
            ("DELETE", f"/lists/{list_id}/members/{other.id}", None),
            ("DELETE", f"/lists/{list_id}/members/{owner.id}", None),
        ]
        for method, path, body in refused:
            response = member.client.request(method, path, json_body=body)
            problem = assert_problem(response, 403)
            assert problem["type"] == "urn:taskline:problem:forbidden", (method, path)
    body = assert_problem(viewer.patch(f"/lists/{list_id}", json_body={"name": "Mine"}), 403)
    assert body["type"] == "urn:taskline:problem:forbidden"
    assert _owners(admin_engine, list_id) == ([owner.id], owner.id)
    roles = {m["user_id"]: m["role"] for m in owner.get(f"/lists/{list_id}/members").json()}
    assert roles == {owner.id: "owner", editor.id: "editor", viewer.id: "viewer"}
    assert owner.get(f"/lists/{list_id}").json()["name"] == "Household"


def test_a_removed_member_loses_access_at_the_next_request(make_account: MakeAccount) -> None:
    owner, member = make_account(), make_account()
    created = new_list(owner)
    join(owner, member, created["id"], "editor")
    assert member.get(f"/lists/{created['id']}").status == 200
    assert owner.delete(f"/lists/{created['id']}/members/{member.id}").status == 204
    assert_problem(member.get(f"/lists/{created['id']}"), 404)
    assert_problem(member.patch(f"/lists/{created['id']}", json_body={"name": "x"}), 404)
    assert_problem(member.get(f"/lists/{created['id']}/members"), 404)
    assert member.get("/lists").json() == []


# Someone else's invitation, whatever the spelling of the address. Local parts are ASCII
# (taskline.emails: SES cannot send to others); domains may be internationalised.
COMPOSED = "ann@m\u00fcnchen.de"
DECOMPOSED = "ann@mu\u0308nchen.de"


@pytest.mark.parametrize(
    ("addressee", "invited_as"),
    [
        ("ada@example.com", "ADA@Example.COM"),
        (COMPOSED, DECOMPOSED),
        (DECOMPOSED, "ANN@M\u00dcNCHEN.DE"),
        (COMPOSED, "ann@xn--mnchen-3ya.de"),
    ],
    ids=ascii,
)
def test_the_addressee_accepts_under_any_spelling_of_their_address(
    make_account: MakeAccount, addressee: str, invited_as: str
) -> None:
    owner, guest = make_account(), make_account(addressee)
    created = new_list(owner)
    invitation = invite(owner, created["id"], invited_as)
    assert [item["id"] for item in guest.get("/invitations").json()] == [invitation["id"]]
    accepted = guest.post(f"/invitations/{invitation['id']}/accept")
    assert accepted.status == 200, accepted.body
    assert accepted.json()["id"] == created["id"]


@pytest.mark.parametrize(
    ("invited", "impostor"),
    [
        ("ada@example.com", "ada@exampl\u0435.com"),  # a Cyrillic "e": another domain
        ("ada@example.com", "ada@exam\u0440le.com"),  # a Cyrillic "p" in the domain
        (COMPOSED, "ann@munchen.de"),  # no umlaut
        ("ada@example.com", "ada+list@example.com"),
        ("ada@example.com", "ada@example.com.evil.io"),
    ],
    ids=ascii,
)
def test_look_alike_addresses_get_404_not_the_invitation(
    make_account: MakeAccount, invited: str, impostor: str
) -> None:
    owner, addressee, attacker = make_account(), make_account(invited), make_account(impostor)
    created = new_list(owner)
    invitation = invite(owner, created["id"], invited)
    assert attacker.get("/invitations").json() == []
    assert_problem(attacker.post(f"/invitations/{invitation['id']}/accept"), 404)
    assert_problem(attacker.delete(f"/invitations/{invitation['id']}"), 404)
    assert_problem(attacker.get(f"/lists/{created['id']}"), 404)
    # Still there for its addressee.
    assert addressee.post(f"/invitations/{invitation['id']}/accept").status == 200


def test_an_address_taken_without_verification_never_gets_the_list(
    make_account: MakeAccount,
) -> None:
    owner, squatter = make_account(), make_account("victim@example.com", verified=False)
    created = new_list(owner)
    invitation = invite(owner, created["id"], "Victim@Example.com")
    for response in (
        squatter.post(f"/invitations/{invitation['id']}/accept"),
        squatter.delete(f"/invitations/{invitation['id']}"),
        squatter.get("/invitations"),
    ):
        body = assert_problem(response, 403)
        assert body["type"] == "urn:taskline:problem:email-unverified"
        assert "Household" not in str(body)
    assert_problem(squatter.get(f"/lists/{created['id']}"), 404)
    assert len(owner.get(f"/lists/{created['id']}/invitations").json()) == 1


def _shape(value: Any) -> Any:
    """The JSON's structure: keys and types, not values."""
    if isinstance(value, dict):
        return {key: _shape(item) for key, item in value.items()}
    return type(value).__name__


def test_inviting_tells_nothing_about_who_has_an_account(
    make_account: MakeAccount, monkeypatch: pytest.MonkeyPatch
) -> None:
    from taskline.services import list_service

    monkeypatch.setattr(list_service, "MAX_INVITATION_EMAILS_PER_DAY", 1000)
    owner = make_account()
    known = make_account("known@example.com")
    created = new_list(owner)
    path = f"/lists/{created['id']}/invitations"

    def send(email: str) -> tuple[float, Any]:
        started = time.perf_counter()
        response = owner.post(path, json_body={"email": email, "role": "viewer"})
        return time.perf_counter() - started, response

    timings: dict[str, list[float]] = {"known": [], "unknown": []}
    answers: dict[str, Any] = {}
    for round_ in range(30):
        for kind, email in (("known", known.email), ("unknown", "nobody@example.com")):
            elapsed, response = send(email)
            assert response.status == 201, response.body
            if round_ >= 3:  # after warming up
                timings[kind].append(elapsed)
            answers[kind] = response
    shapes = {kind: _shape(response.json()) for kind, response in answers.items()}
    assert shapes["known"] == shapes["unknown"]
    headers = {
        kind: sorted(name.lower() for name, _ in response.headers)
        for kind, response in answers.items()
    }
    assert headers["known"] == headers["unknown"]
    assert answers["known"].header("Content-Type") == answers["unknown"].header("Content-Type")
    known_median = statistics.median(timings["known"])
    unknown_median = statistics.median(timings["unknown"])
    # Loose: the same statements run on both paths; only noise should differ.
    assert 1 / 2 < known_median / unknown_median < 2, (known_median, unknown_median)


def test_suppressed_and_unverified_addresses_get_no_email_and_the_same_answer(
    make_account: MakeAccount, admin_engine: Engine, caplog: pytest.LogCaptureFixture
) -> None:
    owner = make_account()
    make_account("unproven@example.com", verified=False)
    with admin_engine.begin() as connection:
        connection.execute(
            text(
                "INSERT INTO email_suppressions (address, reason) "
                "VALUES ('bounced@example.com', 'bounce')"
            )
        )
    created = new_list(owner)
    answers = {}
    for email in ("bounced@example.com", "unproven@example.com", "fine@example.com"):
        caplog.clear()
        answers[email] = invite(owner, created["id"], email)
        logged = [
            r
            for r in caplog.records
            if "logging the email" in r.getMessage()
            and getattr(r, "subject", None) == invitation_email.SUBJECT
        ]
        assert bool(logged) == (email == "fine@example.com"), email
    assert len({str(_shape(answer)) for answer in answers.values()}) == 1


def _hand_over(
    token: Any, list_id: int, member_id: int, barrier: threading.Barrier, outcomes: list[object]
) -> None:
    """Hand the list over as the token's account, at the same moment as another thread."""
    from taskline.services import list_service

    barrier.wait()
    try:
        outcomes.append(list_service.change_role(token, list_id, member_id, ListRole.OWNER))
    except Forbidden as error:
        outcomes.append(error)


def test_two_hand_overs_racing_leave_exactly_one_owner(
    make_account: MakeAccount, admin_engine: Engine
) -> None:
    from taskline.schemas import MemberOut
    from taskline.security.tokens import verify_access_token

    for _ in range(4):
        owner, first, second = make_account(), make_account(), make_account()
        created = new_list(owner)
        list_id = created["id"]
        join(owner, first, list_id)
        join(owner, second, list_id)
        token = verify_access_token(str(owner.client.token))
        barrier = threading.Barrier(2)
        outcomes: list[object] = []

        threads = [
            threading.Thread(target=_hand_over, args=(token, list_id, m.id, barrier, outcomes))
            for m in (first, second)
        ]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join()
        assert sorted(type(o).__name__ for o in outcomes) == ["Forbidden", "MemberOut"]
        (winner,) = [o for o in outcomes if isinstance(o, MemberOut)]
        owners, owner_id = _owners(admin_engine, list_id)
        assert owners == [winner.user_id] == [owner_id]
        roles = {m["user_id"]: m["role"] for m in owner.get(f"/lists/{list_id}/members").json()}
        assert sorted(roles.values()) == ["editor", "editor", "owner"]


def test_an_owner_handing_over_while_the_new_owner_hands_back(
    make_account: MakeAccount, admin_engine: Engine
) -> None:
    """A hands to B while B (not yet owner) tries to hand to C: B's attempt either sees B as
    owner (after A's commit) or is refused; never two owners."""
    from taskline.security.tokens import verify_access_token

    owner, b, c = make_account(), make_account(), make_account()
    created = new_list(owner)
    list_id = created["id"]
    join(owner, b, list_id)
    join(owner, c, list_id)
    barrier = threading.Barrier(2)

    outcomes: list[object] = []
    threads = [
        threading.Thread(
            target=_hand_over,
            args=(
                verify_access_token(str(actor.client.token)),
                list_id,
                target.id,
                barrier,
                outcomes,
            ),
        )
        for actor, target in ((owner, b), (b, c))
    ]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    owners, owner_id = _owners(admin_engine, list_id)
    assert len(owners) == 1
    assert owners == [owner_id]


@pytest.fixture
def ses(monkeypatch: pytest.MonkeyPatch, reload_settings: None) -> Iterator[Any]:
    with mock_aws():
        notifications.clear_clients()
        client = boto3.client("ses", region_name=REGION)
        client.verify_email_identity(EmailAddress=SENDER)
        monkeypatch.setenv("NOTIFICATION_EMAIL_SENDER", SENDER)
        monkeypatch.setenv("PUBLIC_API_URL", "https://api.taskline.example.com")
        from tests.support.caches import clear_caches

        clear_caches()
        yield client
        notifications.clear_clients()


def _sent() -> list[EmailMessage]:
    from moto.core.models import DEFAULT_ACCOUNT_ID
    from moto.ses.models import ses_backends

    backend = ses_backends[DEFAULT_ACCOUNT_ID][REGION]
    return [message_from_string(m.raw_data, policy=default) for m in backend.sent_messages]


def test_the_inviter_puts_nothing_in_a_header(ses: Any, make_account: MakeAccount) -> None:
    owner = make_account()
    # A list name cannot carry a line break at all.
    assert_problem(owner.post("/lists", json_body={"name": "Trip\r\nBcc: victim@example.com"}), 422)
    created = new_list(owner, "<b>Trip</b> & Bcc: victim@example.com")
    for address in ("a@example.com\r\nBcc: victim@example.com", "a@example.com\nSubject: x"):
        response = owner.post(
            f"/lists/{created['id']}/invitations", json_body={"email": address, "role": "viewer"}
        )
        assert_problem(response, 422)
    invite(owner, created["id"], "Guest@Example.com")
    (message,) = [m for m in _sent() if m["Subject"] == invitation_email.SUBJECT]
    assert message["To"] == "guest@example.com"
    assert message["From"] == SENDER
    assert message["Subject"] == "Taskline: you are invited to a shared list"
    assert message["Bcc"] is None
    names = {name.lower() for name in message}
    assert "bcc" not in names
    html_part = message.get_body(("html",))
    assert html_part is not None
    assert "&lt;b&gt;Trip&lt;/b&gt; &amp; Bcc" in html_part.get_content()
    assert "<b>Trip</b>" not in html_part.get_content()


def _run(outcomes: list[object], barrier: threading.Barrier, work: Callable[[], object]) -> None:
    barrier.wait()
    try:
        outcomes.append(work())
    except Exception as error:  # the test asserts which ones are allowed
        outcomes.append(error)


@pytest.mark.parametrize("owner_does", ["renew", "delete"])
def test_accepting_while_the_owner_renews_or_deletes_never_fails_the_database(
    make_account: MakeAccount, owner_does: str
) -> None:
    """Accepting locks the list, then the invitation, as inviting and deleting do: concurrent
    requests wait for each other instead of deadlocking (which would be a 500)."""
    from functools import partial

    from taskline.errors import InvitationNotFound, ListConflict, ListNotFound
    from taskline.schemas import InvitationCreate
    from taskline.security.tokens import verify_access_token
    from taskline.services import list_service

    allowed = (ListConflict, ListNotFound, InvitationNotFound)
    for _ in range(4):
        owner, guest = make_account(), make_account()
        created = new_list(owner)
        invitation = invite(owner, created["id"], guest.email)
        owner_token = verify_access_token(str(owner.client.token))
        guest_token = verify_access_token(str(guest.client.token))
        renewal = InvitationCreate(email=guest.email, role="viewer")
        owner_work = (
            partial(list_service.invite, owner_token, created["id"], renewal)
            if owner_does == "renew"
            else partial(list_service.delete, owner_token, created["id"])
        )
        accepting = partial(list_service.accept, guest_token, invitation["id"])
        barrier = threading.Barrier(2)
        outcomes: list[object] = []
        threads = [
            threading.Thread(target=_run, args=(outcomes, barrier, work))
            for work in (accepting, owner_work)
        ]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join()
        assert len(outcomes) == 2
        for outcome in outcomes:
            assert not isinstance(outcome, Exception) or isinstance(outcome, allowed), outcome


@pytest.mark.parametrize(
    ("meanwhile", "refused"),
    [
        ("DELETE FROM list_members WHERE list_id = :l AND user_id = :u", "ListNotFound"),
        (
            "UPDATE list_members SET role = 'viewer' WHERE list_id = :l AND user_id = :u",
            "Forbidden",
        ),
    ],
    ids=["removed", "demoted"],
)
def test_a_member_removed_or_demoted_mid_request_does_not_write(
    make_account: MakeAccount, admin_engine: Engine, meanwhile: str, refused: str
) -> None:
    """The role is read in the statement that writes, under a row lock: a removal or demotion
    in progress makes the rename wait, then refuses it; no check-then-act window."""
    from taskline.security.tokens import verify_access_token
    from taskline.services import list_service

    owner, editor = make_account(), make_account()
    created = new_list(owner)
    join(owner, editor, created["id"], "editor")
    token = verify_access_token(str(editor.client.token))
    outcomes: list[object] = []
    with admin_engine.connect() as connection:
        transaction = connection.begin()
        connection.execute(text(meanwhile), {"l": created["id"], "u": editor.id})
        barrier = threading.Barrier(2)
        rename = threading.Thread(
            target=_run,
            args=(outcomes, barrier, lambda: list_service.rename(token, created["id"], "Mine")),
        )
        rename.start()
        barrier.wait()
        time.sleep(0.5)
        assert rename.is_alive()  # waiting for the member's row
        transaction.commit()
    rename.join(timeout=30)
    (outcome,) = outcomes
    assert type(outcome).__name__ == refused, outcome
    assert owner.get(f"/lists/{created['id']}").json()["name"] == "Household"


def test_accepting_waits_for_the_list_before_locking_the_invitation(
    make_account: MakeAccount, admin_engine: Engine
) -> None:
    """Inviting locks the list's row, then the invitation's; accepting takes them in the same
    order, so the two can never wait for each other in a circle (a deadlock, answered 500)."""
    from taskline.security.tokens import verify_access_token
    from taskline.services import list_service

    owner, guest = make_account(), make_account()
    created = new_list(owner)
    invitation = invite(owner, created["id"], guest.email)
    token = verify_access_token(str(guest.client.token))
    outcomes: list[object] = []
    with admin_engine.connect() as connection:
        transaction = connection.begin()
        # What an owner's invite holds first: the list's row.
        connection.execute(
            text("SELECT id FROM lists WHERE id = :l FOR NO KEY UPDATE"), {"l": created["id"]}
        )
        barrier = threading.Barrier(2)
        accepting = threading.Thread(
            target=_run,
            args=(outcomes, barrier, lambda: list_service.accept(token, invitation["id"])),
        )
        accepting.start()
        barrier.wait()
        time.sleep(0.5)
        assert accepting.is_alive()  # waiting for the list
        # ... without holding the invitation the invite would lock next.
        connection.execute(
            text("SELECT id FROM list_invitations WHERE id = :i FOR UPDATE NOWAIT"),
            {"i": invitation["id"]},
        )
        transaction.rollback()
    accepting.join(timeout=30)
    (outcome,) = outcomes
    assert type(outcome).__name__ == "ListOut", outcome
