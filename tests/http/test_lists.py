"""Shared lists through the HTTP API: the contract's routes, fields, status codes and rules."""

from __future__ import annotations

from collections.abc import Callable
from urllib.parse import urlsplit

import pytest
from sqlalchemy import Engine, text

from tests.http.lists_support import (
    INVITATION_FIELDS,
    LIST_FIELDS,
    MEMBER_FIELDS,
    Account,
    invite,
    join,
    new_list,
)
from tests.support.api import ApiClient, assert_problem
from tests.support.clock import FrozenClock

MakeAccount = Callable[..., Account]


def test_a_new_list_has_its_creator_as_owner(make_account: MakeAccount) -> None:
    owner = make_account()
    response = owner.post("/lists", json_body={"name": "  Household  "})
    assert response.status == 201, response.body
    created = response.json()
    assert set(created) == LIST_FIELDS
    assert response.header("Location") == f"/lists/{created['id']}"
    assert created["name"] == "Household"
    assert created["role"] == "owner"
    assert created["owner"] == {"id": owner.id, "email": owner.email}
    assert created["member_count"] == 1
    assert owner.get(f"/lists/{created['id']}").json() == created


@pytest.mark.parametrize(
    "name",
    ["", "   ", "\u3000", "x" * 201, "two\nlines", "tab\there", "del\x7f", None, 5, ["x"]],
    ids=ascii,
)
def test_a_bad_name_is_422(make_account: MakeAccount, name: object) -> None:
    owner = make_account()
    assert_problem(owner.post("/lists", json_body={"name": name}), 422)


def test_names_of_200_characters_are_taken(make_account: MakeAccount) -> None:
    owner = make_account()
    assert new_list(owner, "é" * 200)["name"] == "é" * 200


def test_unknown_fields_are_422(make_account: MakeAccount) -> None:
    owner = make_account()
    assert_problem(owner.post("/lists", json_body={"name": "a", "owner_id": 1}), 422)
    created = new_list(owner)
    path = f"/lists/{created['id']}"
    assert_problem(owner.patch(path, json_body={"name": "b", "role": "viewer"}), 422)
    assert_problem(
        owner.post(
            f"{path}/invitations",
            json_body={"email": "a@example.com", "role": "editor", "list_id": 3},
        ),
        422,
    )
    assert_problem(
        owner.patch(f"{path}/members/{owner.id}", json_body={"role": "owner", "x": 1}), 422
    )


@pytest.mark.parametrize("bad", ["0", "07", "+7", "7.0", "1e3", "-1", "9007199254740992", "x"])
def test_non_canonical_ids_are_422(make_account: MakeAccount, bad: str) -> None:
    owner = make_account()
    for path in (f"/lists/{bad}", f"/lists/{bad}/members", f"/lists/{bad}/invitations"):
        assert_problem(owner.get(path), 422)
    assert_problem(owner.post(f"/invitations/{bad}/accept"), 422)
    assert_problem(owner.delete(f"/invitations/{bad}"), 422)
    created = new_list(owner)
    assert_problem(owner.delete(f"/lists/{created['id']}/members/{bad}"), 422)
    assert_problem(owner.delete(f"/lists/{created['id']}/invitations/{bad}"), 422)


def test_lists_page_with_limit_cursor_and_link(make_account: MakeAccount) -> None:
    owner = make_account()
    ids = [new_list(owner, f"list {n}")["id"] for n in range(5)]
    seen: list[int] = []
    response = owner.get("/lists", query={"limit": 2})
    while True:
        assert response.status == 200, response.body
        seen += [item["id"] for item in response.json()]
        link = response.header("Link")
        if not link:
            break
        url = urlsplit(link.split(";")[0].strip("<>"))
        assert "limit=2" in url.query
        response = owner.get(f"{url.path}?{url.query}")
    assert seen == ids


def test_a_cursor_is_the_callers_only(make_account: MakeAccount) -> None:
    owner, other = make_account(), make_account()
    for n in range(3):
        new_list(owner, f"list {n}")
    link = owner.get("/lists", query={"limit": 1}).header("Link")
    assert link
    cursor = link.split("cursor=")[1].split("&")[0].split(">")[0]
    assert_problem(other.get("/lists", query={"cursor": cursor}), 422)
    assert_problem(owner.get("/invitations", query={"cursor": cursor}), 422)
    assert_problem(owner.get("/lists", query={"cursor": "forged"}), 422)
    assert_problem(owner.get("/lists", query={"limit": 0}), 422)
    assert_problem(owner.get("/lists", query={"limit": 101}), 422)


def test_invite_accept_and_share(make_account: MakeAccount) -> None:
    owner, guest = make_account(), make_account()
    created = new_list(owner)
    invitation = invite(owner, created["id"], guest.email, "viewer")
    assert set(invitation) == INVITATION_FIELDS
    assert invitation["list"] == {"id": created["id"], "name": "Household"}
    assert invitation["invited_by"] == {"id": owner.id, "email": owner.email}
    assert invitation["role"] == "viewer"
    assert invitation["email"] == guest.email.lower()
    mine = guest.get("/invitations")
    assert mine.status == 200
    assert [item["id"] for item in mine.json()] == [invitation["id"]]
    pending = owner.get(f"/lists/{created['id']}/invitations")
    assert [item["id"] for item in pending.json()] == [invitation["id"]]

    accepted = guest.post(f"/invitations/{invitation['id']}/accept")
    assert accepted.status == 200, accepted.body
    assert accepted.json()["role"] == "viewer"
    assert accepted.json()["member_count"] == 2
    assert guest.get("/invitations").json() == []
    assert owner.get(f"/lists/{created['id']}/invitations").json() == []
    members = owner.get(f"/lists/{created['id']}/members").json()
    assert all(set(member) == MEMBER_FIELDS for member in members)
    assert [(m["user_id"], m["role"]) for m in members] == [
        (owner.id, "owner"),
        (guest.id, "viewer"),
    ]
    assert guest.get(f"/lists/{created['id']}/members").json() == members
    assert [item["id"] for item in guest.get("/lists").json()] == [created["id"]]
    # Used up: a second accept finds nothing.
    assert_problem(guest.post(f"/invitations/{invitation['id']}/accept"), 404)


def test_a_pending_invitation_is_renewed_not_duplicated(
    make_account: MakeAccount, frozen_clock: FrozenClock
) -> None:
    owner = make_account()
    created = new_list(owner)
    first = invite(owner, created["id"], "Newcomer@Example.com", "viewer")
    frozen_clock.advance(3 * 86400)
    second = invite(owner, created["id"], "newcomer@example.COM", "editor")
    assert second["id"] == first["id"]
    assert second["role"] == "editor"
    assert second["expires_at"] > first["expires_at"]
    assert len(owner.get(f"/lists/{created['id']}/invitations").json()) == 1


def test_inviting_a_member_is_409(make_account: MakeAccount) -> None:
    owner, guest = make_account(), make_account()
    created = new_list(owner)
    join(owner, guest, created["id"])
    for address in (guest.email, guest.email.upper(), owner.email):
        response = owner.post(
            f"/lists/{created['id']}/invitations", json_body={"email": address, "role": "viewer"}
        )
        assert_problem(response, 409)


def test_invitations_expire_after_7_days(
    make_account: MakeAccount, frozen_clock: FrozenClock
) -> None:
    owner, guest = make_account(), make_account()
    created = new_list(owner)
    invitation = invite(owner, created["id"], guest.email)
    frozen_clock.advance(7 * 86400 + 1)
    assert guest.get("/invitations").json() == []
    assert owner.get(f"/lists/{created['id']}/invitations").json() == []
    assert_problem(guest.post(f"/invitations/{invitation['id']}/accept"), 410)
    assert_problem(guest.delete(f"/invitations/{invitation['id']}"), 410)


def test_declining(make_account: MakeAccount) -> None:
    owner, guest = make_account(), make_account()
    created = new_list(owner)
    invitation = invite(owner, created["id"], guest.email)
    assert guest.delete(f"/invitations/{invitation['id']}").status == 204
    assert owner.get(f"/lists/{created['id']}/invitations").json() == []
    assert_problem(guest.post(f"/invitations/{invitation['id']}/accept"), 404)


def test_revoking(make_account: MakeAccount) -> None:
    owner, guest = make_account(), make_account()
    created = new_list(owner)
    invitation = invite(owner, created["id"], guest.email)
    path = f"/lists/{created['id']}/invitations/{invitation['id']}"
    assert owner.delete(path).status == 204
    assert_problem(owner.delete(path), 404)
    assert_problem(guest.post(f"/invitations/{invitation['id']}/accept"), 404)


def test_rename_by_owner_and_editor_not_viewer(make_account: MakeAccount) -> None:
    owner, editor, viewer = make_account(), make_account(), make_account()
    created = new_list(owner)
    join(owner, editor, created["id"], "editor")
    join(owner, viewer, created["id"], "viewer")
    path = f"/lists/{created['id']}"
    renamed = editor.patch(path, json_body={"name": " Groceries "})
    assert renamed.status == 200, renamed.body
    assert renamed.json()["name"] == "Groceries"
    assert renamed.json()["role"] == "editor"
    assert renamed.json()["updated_at"] > created["updated_at"]
    body = assert_problem(viewer.patch(path, json_body={"name": "Mine"}), 403)
    assert body["type"] == "urn:taskline:problem:forbidden"
    assert owner.get(path).json()["name"] == "Groceries"


def test_delete_takes_tasks_members_and_invitations(
    make_account: MakeAccount, admin_engine: Engine
) -> None:
    owner, editor = make_account(), make_account()
    created = new_list(owner)
    join(owner, editor, created["id"])
    invite(owner, created["id"], "someone@example.com")
    with admin_engine.begin() as connection:
        connection.execute(
            text(
                "INSERT INTO tasks (list_id, description, category, deadline, created_by) "
                "VALUES (:l, 'a', 'b', now(), :u)"
            ),
            {"l": created["id"], "u": owner.id},
        )
    path = f"/lists/{created['id']}"
    assert_problem(editor.delete(path), 403)
    assert owner.delete(path).status == 204
    assert_problem(owner.get(path), 404)
    assert_problem(editor.get(path), 404)
    with admin_engine.begin() as connection:
        for table in ("tasks", "list_members", "list_invitations"):
            count = connection.execute(
                text(f"SELECT count(*) FROM {table} WHERE list_id = :l"), {"l": created["id"]}
            ).scalar_one()
            assert count == 0, table


def test_roles_and_hand_over(make_account: MakeAccount, admin_engine: Engine) -> None:
    owner, member = make_account(), make_account()
    created = new_list(owner)
    join(owner, member, created["id"], "viewer")
    path = f"/lists/{created['id']}/members"
    changed = owner.patch(f"{path}/{member.id}", json_body={"role": "editor"})
    assert changed.status == 200, changed.body
    assert changed.json()["role"] == "editor"
    assert set(changed.json()) == MEMBER_FIELDS
    # The owner steps down only by handing over.
    assert_problem(owner.patch(f"{path}/{owner.id}", json_body={"role": "editor"}), 409)
    handed = owner.patch(f"{path}/{member.id}", json_body={"role": "owner"})
    assert handed.status == 200, handed.body
    assert handed.json()["role"] == "owner"
    seen = owner.get(f"/lists/{created['id']}").json()
    assert seen["role"] == "editor"
    assert seen["owner"] == {"id": member.id, "email": member.email}
    assert_problem(owner.patch(f"{path}/{member.id}", json_body={"role": "viewer"}), 403)
    with admin_engine.begin() as connection:
        owners = (
            connection.execute(
                text("SELECT user_id FROM list_members WHERE list_id = :l AND role = 'owner'"),
                {"l": created["id"]},
            )
            .scalars()
            .all()
        )
    assert owners == [member.id]


def test_leaving_and_removing(make_account: MakeAccount) -> None:
    owner, a, b = make_account(), make_account(), make_account()
    created = new_list(owner)
    join(owner, a, created["id"])
    join(owner, b, created["id"], "viewer")
    path = f"/lists/{created['id']}/members"
    assert_problem(a.delete(f"{path}/{b.id}"), 403)  # an editor removes no one else
    assert b.delete(f"{path}/{b.id}").status == 204  # anyone leaves
    assert_problem(b.get(f"/lists/{created['id']}"), 404)
    assert owner.delete(f"{path}/{a.id}").status == 204
    assert_problem(a.get(f"/lists/{created['id']}"), 404)
    body = assert_problem(owner.delete(f"{path}/{owner.id}"), 409)
    assert "hand ownership over" in body["detail"]
    assert_problem(owner.delete(f"{path}/{a.id}"), 404)
    assert owner.get(f"/lists/{created['id']}").json()["member_count"] == 1


def test_removal_clears_assignments_and_moves_reminders(
    make_account: MakeAccount, admin_engine: Engine
) -> None:
    owner, member = make_account(), make_account()
    created = new_list(owner)
    join(owner, member, created["id"])
    with admin_engine.begin() as connection:
        task_id = connection.execute(
            text(
                "INSERT INTO tasks (list_id, description, category, deadline, created_by, "
                "assignee_id, recipient_id) VALUES (:l, 'a', 'b', now() + interval '2 days', "
                ":u, :u, :u) RETURNING id"
            ),
            {"l": created["id"], "u": member.id},
        ).scalar_one()
    assert member.delete(f"/lists/{created['id']}/members/{member.id}").status == 204
    with admin_engine.begin() as connection:
        assignee, recipient = connection.execute(
            text("SELECT assignee_id, recipient_id FROM tasks WHERE id = :t"), {"t": task_id}
        ).one()
    assert assignee is None
    assert recipient == owner.id


def test_unverified_addressee_gets_403_never_the_list(make_account: MakeAccount) -> None:
    owner, unverified = make_account(), make_account(verified=False)
    created = new_list(owner)
    invitation = invite(owner, created["id"], unverified.email)
    body = assert_problem(unverified.post(f"/invitations/{invitation['id']}/accept"), 403)
    assert body["type"] == "urn:taskline:problem:email-unverified"
    assert created["name"] not in str(body)
    assert_problem(unverified.get("/invitations"), 403)
    assert_problem(unverified.delete(f"/invitations/{invitation['id']}"), 403)
    assert_problem(unverified.get(f"/lists/{created['id']}"), 404)


def test_limits_members_and_pending_invitations(
    make_account: MakeAccount, admin_engine: Engine
) -> None:
    owner, guest = make_account(), make_account()
    created = new_list(owner)
    list_id = created["id"]
    with admin_engine.begin() as connection:
        # 99 other pending invitations (plus the guest's: 100).
        connection.execute(
            text(
                "INSERT INTO list_invitations (list_id, email, role, invited_by, expires_at) "
                "SELECT :l, 'x' || n || '@example.com', 'viewer', :u, now() + interval '1 day' "
                "FROM generate_series(1, 99) AS n"
            ),
            {"l": list_id, "u": owner.id},
        )
    invitation = invite(owner, list_id, guest.email)
    response = owner.post(
        f"/lists/{list_id}/invitations", json_body={"email": "y@example.com", "role": "viewer"}
    )
    assert_problem(response, 409)
    invite(owner, list_id, guest.email)  # renewing one is not adding one
    with admin_engine.begin() as connection:
        # 99 members besides the owner: the list is full.
        connection.execute(
            text(
                "WITH u AS (INSERT INTO users (email, password_hash) SELECT 'm' || n || "
                "'@example.com', 'x' FROM generate_series(1, 99) AS n RETURNING id) "
                "INSERT INTO list_members (list_id, user_id, role) SELECT :l, id, 'viewer' FROM u"
            ),
            {"l": list_id},
        )
    assert_problem(guest.post(f"/invitations/{invitation['id']}/accept"), 409)


def test_limit_of_500_lists(make_account: MakeAccount, admin_engine: Engine) -> None:
    owner = make_account()
    with admin_engine.begin() as connection:
        connection.execute(
            text(
                "WITH l AS (INSERT INTO lists (name, owner_id) SELECT 'l' || n, :u "
                "FROM generate_series(1, 499) AS n RETURNING id) "
                "INSERT INTO list_members (list_id, user_id, role) SELECT id, :u, 'owner' FROM l"
            ),
            {"u": owner.id},
        )
    new_list(owner, "the 500th")
    assert_problem(owner.post("/lists", json_body={"name": "one too many"}), 409)


def test_invitations_per_day_are_rate_limited(
    make_account: MakeAccount, frozen_clock: FrozenClock
) -> None:
    from taskline.domain import MAX_INVITATION_EMAILS_PER_DAY

    owner = make_account()
    created = new_list(owner)
    for n in range(MAX_INVITATION_EMAILS_PER_DAY):
        invite(owner, created["id"], f"guest{n}@example.com")
    response = owner.post(
        f"/lists/{created['id']}/invitations",
        json_body={"email": "late@example.com", "role": "viewer"},
    )
    assert_problem(response, 429)
    retry_after = int(response.header("Retry-After") or "0")
    assert 0 < retry_after <= 86401
    frozen_clock.advance(retry_after)
    invite(owner, created["id"], "late@example.com")


def test_an_ended_sign_in_is_401_on_every_route(make_account: MakeAccount) -> None:
    owner, guest = make_account(), make_account()
    created = new_list(owner)
    list_id = created["id"]
    invitation = invite(owner, list_id, guest.email)
    for account in (owner, guest):
        assert account.post("/users/me/logout-all").status in (200, 204)
    member_path = f"/lists/{list_id}/members/{guest.id}"
    attempts: list[tuple[Account, str, str, object]] = [
        (owner, "POST", "/lists", {"name": "x"}),
        (owner, "GET", "/lists", None),
        (owner, "GET", f"/lists/{list_id}", None),
        (owner, "PATCH", f"/lists/{list_id}", {"name": "x"}),
        (owner, "DELETE", f"/lists/{list_id}", None),
        (owner, "GET", f"/lists/{list_id}/members", None),
        (owner, "PATCH", member_path, {"role": "viewer"}),
        (owner, "DELETE", member_path, None),
        (
            owner,
            "POST",
            f"/lists/{list_id}/invitations",
            {"email": "a@example.com", "role": "editor"},
        ),
        (owner, "GET", f"/lists/{list_id}/invitations", None),
        (owner, "DELETE", f"/lists/{list_id}/invitations/{invitation['id']}", None),
        (guest, "GET", "/invitations", None),
        (guest, "POST", f"/invitations/{invitation['id']}/accept", None),
        (guest, "DELETE", f"/invitations/{invitation['id']}", None),
    ]
    for account, method, path, body in attempts:
        response = account.client.request(method, path, json_body=body)
        assert_problem(response, 401)
        assert response.header("WWW-Authenticate"), (method, path)
    # Nothing happened.
    again = ApiClient(owner.client.gateway, owner.client.login(owner.email))
    seen = again.get(f"/lists/{list_id}").json()
    assert (seen["name"], seen["member_count"]) == ("Household", 1)
    assert len(again.get(f"/lists/{list_id}/invitations").json()) == 1


def test_an_invitation_never_makes_an_owner(make_account: MakeAccount) -> None:
    owner = make_account()
    created = new_list(owner)
    for role in ("owner", "OWNER", "admin", None):
        response = owner.post(
            f"/lists/{created['id']}/invitations",
            json_body={"email": "a@example.com", "role": role},
        )
        assert_problem(response, 422)
    for email in ("not an address", "a@example.test", "", "a" * 321 + "@example.com"):
        response = owner.post(
            f"/lists/{created['id']}/invitations", json_body={"email": email, "role": "viewer"}
        )
        assert_problem(response, 422)


def test_reminders_follow_the_owner_through_a_hand_over(
    make_account: MakeAccount, admin_engine: Engine
) -> None:
    """A task nobody is assigned to, whose creator left, reminds the list's owner: the new one
    once ownership is handed over, with its reminders re-armed."""
    owner, heir = make_account(), make_account()
    created = new_list(owner)
    join(owner, heir, created["id"])
    with admin_engine.begin() as connection:
        task_id = connection.execute(
            text(
                "INSERT INTO tasks (list_id, description, category, deadline, created_by, "
                "recipient_id) VALUES (:l, 'a', 'b', now() + interval '2 days', NULL, :o) "
                "RETURNING id"
            ),
            {"l": created["id"], "o": owner.id},
        ).scalar_one()
        connection.execute(
            text(
                "INSERT INTO task_notifications (task_id, stage, deadline) "
                "SELECT id, 'due_soon', deadline FROM tasks WHERE id = :t"
            ),
            {"t": task_id},
        )
    handed = owner.patch(f"/lists/{created['id']}/members/{heir.id}", json_body={"role": "owner"})
    assert handed.status == 200, handed.body
    with admin_engine.begin() as connection:
        recipient = connection.execute(
            text("SELECT recipient_id FROM tasks WHERE id = :t"), {"t": task_id}
        ).scalar_one()
        sent = connection.execute(
            text("SELECT count(*) FROM task_notifications WHERE task_id = :t"), {"t": task_id}
        ).scalar_one()
    assert recipient == heir.id
    assert sent == 0  # re-armed for the new recipient
