"""Accounts and shared lists for the list tests: signed-up clients, verified or not."""

from __future__ import annotations

import uuid
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import pytest
from sqlalchemy import Engine, text

from localdev.gateway import LocalGateway
from tests.support.api import ApiClient

LIST_FIELDS = {"id", "name", "role", "owner", "member_count", "created_at", "updated_at"}
MEMBER_FIELDS = {"user_id", "email", "role", "joined_at"}
INVITATION_FIELDS = {"id", "list", "email", "role", "invited_by", "created_at", "expires_at"}


@dataclass
class Account:
    client: ApiClient
    id: int
    email: str

    def get(self, path: str, **kwargs: Any) -> Any:
        return self.client.get(path, **kwargs)

    def post(self, path: str, **kwargs: Any) -> Any:
        return self.client.post(path, **kwargs)

    def patch(self, path: str, **kwargs: Any) -> Any:
        return self.client.patch(path, **kwargs)

    def delete(self, path: str, **kwargs: Any) -> Any:
        return self.client.delete(path, **kwargs)


def verify(admin_engine: Engine, user_id: int) -> None:
    with admin_engine.begin() as connection:
        connection.execute(
            text("UPDATE users SET email_verified_at = now() WHERE id = :id"), {"id": user_id}
        )


@pytest.fixture
def make_account(gateway: LocalGateway, admin_engine: Engine) -> Callable[..., Account]:
    def make(email: str | None = None, *, verified: bool = True) -> Account:
        anonymous = ApiClient(gateway)
        email = anonymous.sign_up(email or f"user-{uuid.uuid4().hex[:8]}@example.com")
        client = ApiClient(gateway, anonymous.login(email))
        me = client.get("/users/me").json()
        if verified:
            verify(admin_engine, me["id"])
        return Account(client, me["id"], me["email"])

    return make


def new_list(owner: Account, name: str = "Household") -> dict[str, Any]:
    response = owner.post("/lists", json_body={"name": name})
    assert response.status == 201, response.body
    created: dict[str, Any] = response.json()
    return created


def invite(owner: Account, list_id: int, email: str, role: str = "editor") -> dict[str, Any]:
    response = owner.post(f"/lists/{list_id}/invitations", json_body={"email": email, "role": role})
    assert response.status == 201, response.body
    invitation: dict[str, Any] = response.json()
    return invitation


def join(owner: Account, member: Account, list_id: int, role: str = "editor") -> None:
    invitation = invite(owner, list_id, member.email, role)
    accepted = member.post(f"/invitations/{invitation['id']}/accept")
    assert accepted.status == 200, accepted.body
