"""DELETE /users/me: with the password, removes the account, its tasks, tokens and idempotency
keys at once."""

from __future__ import annotations

from sqlalchemy import Engine, text

from tests.support.api import ApiClient, task_body

PASSWORD = "correct horse battery"


def _counts(engine: Engine) -> dict[str, int]:
    with engine.connect() as connection:
        return {
            table: int(connection.execute(text(f"SELECT count(*) FROM {table}")).scalar() or 0)
            for table in ("users", "tasks", "auth_sessions", "refresh_tokens", "idempotency_keys")
        }


def test_delete_account_removes_user_tasks_and_tokens(
    client: ApiClient, admin_engine: Engine
) -> None:
    email = client.sign_up()
    pair, second = client.login_pair(email), client.login_pair(email)
    client.refresh(second["refresh_token"])
    for key in ("first", "second"):
        client.post(
            "/tasks",
            json_body=task_body(),
            token=pair["access_token"],
            headers={"Idempotency-Key": key},
        )
    bystander = client.login_pair(client.sign_up())
    client.post(
        "/tasks",
        json_body=task_body(),
        token=bystander["access_token"],
        headers={"Idempotency-Key": "first"},
    )
    before = _counts(admin_engine)

    response = client.delete(
        "/users/me", json_body={"password": PASSWORD}, token=pair["access_token"]
    )
    assert response.status == 204
    assert response.body == b""

    after = _counts(admin_engine)
    assert after == {
        "users": 1,
        "tasks": 1,
        "auth_sessions": 1,
        "refresh_tokens": 1,
        "idempotency_keys": 1,
    }
    assert before["refresh_tokens"] == 4  # two sessions of the user (one refreshed) + bystander
    assert client.post("/token", json_body={"email": email, "password": PASSWORD}).status == 400
    assert client.refresh(second["refresh_token"]).status == 400
    assert client.get("/users/me", token=pair["access_token"]).status == 401
    # The bystander is untouched, and the email is free again.
    assert len(client.get("/tasks", token=bystander["access_token"]).json()) == 1
    assert client.post("/users", json_body={"email": email, "password": PASSWORD}).status == 201


def test_wrong_password_is_403_and_deletes_nothing(client: ApiClient, admin_engine: Engine) -> None:
    email = client.sign_up()
    token = client.login(email)
    client.post("/tasks", json_body=task_body(), token=token)
    before = _counts(admin_engine)
    response = client.delete("/users/me", json_body={"password": "not it at all"}, token=token)
    assert response.status == 403
    assert response.json()["type"] == "urn:taskline:problem:wrong-password"
    over_long = client.delete("/users/me", json_body={"password": "x" * 100}, token=token)
    assert over_long.status == 403
    assert _counts(admin_engine) == before
    assert client.get("/users/me", token=token).status == 200


def test_delete_account_input_errors(client: ApiClient, admin_engine: Engine) -> None:
    token = client.login(client.sign_up())
    assert client.delete("/users/me", token=token).status == 422  # the password is required
    assert client.delete("/users/me", json_body={}, token=token).status == 422
    assert client.delete("/users/me", json_body={"password": ""}, token=token).status == 422
    extra = client.delete("/users/me", json_body={"password": PASSWORD, "force": True}, token=token)
    assert extra.status == 422
    assert client.delete("/users/me", json_body=[PASSWORD], token=token).status == 422
    not_json = client.delete(
        "/users/me", body="{", headers={"Content-Type": "application/json"}, token=token
    )
    assert not_json.status == 400
    as_text = client.delete(
        "/users/me", body=PASSWORD, headers={"Content-Type": "text/plain"}, token=token
    )
    assert as_text.status == 415
    assert client.delete("/users/me", body="x" * 70000, token=token).status == 413
    assert client.delete("/users/me", json_body={"password": PASSWORD}).status == 401
    assert _counts(admin_engine)["users"] == 1


def test_a_token_of_an_ended_session_cannot_delete_the_account(
    client: ApiClient, admin_engine: Engine
) -> None:
    email = client.sign_up()
    stolen = client.login_pair(email)
    client.post("/token/revoke", json_body={"token": stolen["refresh_token"]})
    response = client.delete(
        "/users/me", json_body={"password": PASSWORD}, token=stolen["access_token"]
    )
    assert response.status == 401
    assert _counts(admin_engine)["users"] == 1
