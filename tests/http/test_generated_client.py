"""A client generated from the committed OpenAPI document by a common generator
(openapi-python-client, pinned in requirements.txt, run offline) imports, and drives sign-up,
tokens, task CRUD and the account routes against a live local server (issue 13)."""

from __future__ import annotations

import importlib
import os
import pkgutil
import subprocess
import sys
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path
from types import ModuleType
from typing import Any

import pytest

from localdev.gateway import LocalGateway
from localdev.openapi import OUTPUT
from tests.support.live_server import serving

PACKAGE = "taskline_generated_client"
PASSWORD = "correct horse battery"
# Modules named after the operationIds, grouped by tag.
OPERATIONS = {
    "accounts": (
        "create_user",
        "get_me",
        "change_password",
        "delete_me",
        "request_email_verification",
        "get_email_verification_page",
        "verify_email",
    ),
    "sessions": ("issue_token", "revoke_token", "logout_all"),
    "tasks": (
        "create_task",
        "list_tasks",
        "get_task",
        "patch_task",
        "replace_task",
        "delete_task",
    ),
    "notifications": (
        "get_notification_preferences",
        "replace_notification_preferences",
        "patch_notification_preferences",
        "issue_calendar_feed",
        "revoke_calendar_feed",
        "get_calendar_feed",
        "get_unsubscribe_page",
        "unsubscribe",
    ),
    "lists": (
        "create_list",
        "list_lists",
        "get_list",
        "rename_list",
        "delete_list",
        "list_members",
        "change_member_role",
        "remove_member",
        "invite_to_list",
        "list_list_invitations",
        "revoke_invitation",
    ),
    "invitations": ("list_my_invitations", "accept_invitation", "decline_invitation"),
}


@pytest.fixture(scope="module")
def generated(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    """Generate the client package into a temporary folder and put it on sys.path."""
    folder = tmp_path_factory.mktemp("client")
    bin_dir = Path(sys.executable).parent
    # No network: any attempt to reach one would go to a closed port and fail the generation.
    offline = {"HTTP_PROXY": "http://127.0.0.1:9", "HTTPS_PROXY": "http://127.0.0.1:9"}
    environment = {**os.environ, **offline, "PATH": f"{bin_dir}{os.pathsep}{os.environ['PATH']}"}
    result = subprocess.run(
        [
            str(bin_dir / "openapi-python-client"),
            "generate",
            "--path",
            str(OUTPUT),
            "--meta",
            "none",
            "--output-path",
            str(folder / PACKAGE),
        ],
        capture_output=True,
        text=True,
        env=environment,
        timeout=300,
        check=False,
    )
    assert result.returncode == 0, result.stdout + result.stderr
    # A warning means a piece of the document was skipped: every operation must be there.
    assert "Warning" not in result.stdout + result.stderr, result.stdout + result.stderr
    sys.path.insert(0, str(folder))
    try:
        yield PACKAGE
    finally:
        sys.path.remove(str(folder))
        for name in [n for n in sys.modules if n.split(".")[0] == PACKAGE]:
            del sys.modules[name]


def _module(name: str) -> Any:
    return importlib.import_module(f"{PACKAGE}.{name}")


def test_every_generated_operation_module_imports(generated: str) -> None:
    api = importlib.import_module(f"{generated}.api")
    names = {
        module.name.rpartition(".")[2]
        for module in pkgutil.walk_packages(api.__path__, f"{generated}.api.")
        if not module.ispkg
    }
    assert names == {name for operations in OPERATIONS.values() for name in operations}
    for module in pkgutil.walk_packages(api.__path__, f"{generated}.api."):
        imported: ModuleType = importlib.import_module(module.name)
        if not module.ispkg:
            assert callable(imported.sync_detailed)


def test_the_generated_client_drives_the_whole_api(generated: str, gateway: LocalGateway) -> None:
    client_module = _module("client")
    models = _module("models")
    for tag, names in OPERATIONS.items():
        for name in names:  # importing a module makes it an attribute of its package
            importlib.import_module(f"{generated}.api.{tag}.{name}")
    accounts, sessions, tasks, notifications, *_ = (_module(f"api.{tag}") for tag in OPERATIONS)

    with serving(gateway) as base_url:
        anonymous = client_module.Client(base_url=base_url)
        signed_up = accounts.create_user.sync_detailed(
            client=anonymous, body=models.UserCreate(email="grace@example.com", password=PASSWORD)
        )
        assert signed_up.status_code == 201, signed_up.content
        assert isinstance(signed_up.parsed, models.UserOut)
        assert signed_up.parsed.email == "grace@example.com"

        pair = sessions.issue_token.sync(
            client=anonymous,
            body=models.IssueTokenPasswordGrantForm(
                username="grace@example.com", password=PASSWORD
            ),
        )
        assert isinstance(pair, models.TokenOut), pair
        assert pair.token_type == "bearer"
        wrong = sessions.issue_token.sync_detailed(
            client=anonymous,
            body=models.IssueTokenPasswordGrantForm(username="grace@example.com", password="nope"),
        )
        assert wrong.status_code == 400
        assert isinstance(wrong.parsed, models.OAuthError)

        client = client_module.AuthenticatedClient(base_url=base_url, token=pair.access_token)
        me = accounts.get_me.sync(client=client)
        assert isinstance(me, models.ProfileOut)
        assert me.id == signed_up.parsed.id
        assert me.email_verified is False
        resent = accounts.request_email_verification.sync_detailed(client=client)
        assert resent.status_code == 204

        preferences = notifications.patch_notification_preferences.sync(
            client=client, body=models.NotificationPreferencesPatch(due_soon_minutes=120)
        )
        assert isinstance(preferences, models.NotificationPreferencesOut), preferences
        assert preferences.due_soon_minutes == 120

        deadline = datetime(2030, 1, 15, 9, 0, tzinfo=UTC)
        created = tasks.create_task.sync_detailed(
            client=client,
            body=models.TaskCreate(
                description="Write the report", category="work", deadline=deadline
            ),
            idempotency_key="generated-client-1",
        )
        assert created.status_code == 201, created.content
        task = created.parsed
        assert isinstance(task, models.TaskOut)
        assert task.status == models.TaskStatus.TO_DO
        assert task.deadline == deadline
        assert created.headers["Location"] == f"/tasks/{task.id}"
        replayed = tasks.create_task.sync_detailed(
            client=client,
            body=models.TaskCreate(
                description="Write the report", category="work", deadline=deadline
            ),
            idempotency_key="generated-client-1",
        )
        assert replayed.headers["Idempotent-Replayed"] == "true"
        assert replayed.content == created.content

        tasks.create_task.sync(
            client=client,
            body=models.TaskCreate(
                description="Book flights",
                category="travel",
                deadline=datetime(2030, 2, 1, tzinfo=UTC),
            ),
        )
        page = tasks.list_tasks.sync_detailed(client=client, limit=1)
        assert page.status_code == 200
        assert [t.id for t in page.parsed] == [task.id]
        assert 'rel="next"' in page.headers["Link"]
        work = tasks.list_tasks.sync(client=client, category="work", status=models.TaskStatus.TO_DO)
        assert [t.id for t in work] == [task.id]

        read = tasks.get_task.sync_detailed(client=client, task_id=task.id)
        assert read.status_code == 200
        etag = read.headers["ETag"]
        patched = tasks.patch_task.sync_detailed(
            client=client,
            task_id=task.id,
            body=models.TaskPatch(status=models.TaskStatus.IN_PROGRESS),
            if_match=etag,
        )
        assert patched.status_code == 200, patched.content
        assert patched.parsed.status == models.TaskStatus.IN_PROGRESS
        stale = tasks.patch_task.sync_detailed(
            client=client, task_id=task.id, body=models.TaskPatch(category="home"), if_match=etag
        )
        assert stale.status_code == 412
        assert isinstance(stale.parsed, models.Problem)
        replaced = tasks.replace_task.sync(
            client=client,
            task_id=task.id,
            body=models.TaskReplace(
                description="Write the report (v2)",
                category="work",
                deadline=deadline,
                status=models.TaskStatus.DONE,
            ),
        )
        assert isinstance(replaced, models.TaskOut)
        assert replaced.status == models.TaskStatus.DONE
        deleted = tasks.delete_task.sync_detailed(client=client, task_id=task.id)
        assert deleted.status_code == 204
        missing = tasks.get_task.sync_detailed(client=client, task_id=task.id)
        assert missing.status_code == 404
        assert isinstance(missing.parsed, models.Problem)
        assert missing.parsed.type_ == "urn:taskline:problem:task-not-found"

        renewed = sessions.issue_token.sync(
            client=anonymous,
            body=models.IssueTokenRefreshTokenGrant(
                grant_type=models.IssueTokenRefreshTokenGrantGrantType.REFRESH_TOKEN,
                refresh_token=pair.refresh_token,
            ),
        )
        assert isinstance(renewed, models.TokenOut), renewed
        client = client_module.AuthenticatedClient(base_url=base_url, token=renewed.access_token)
        changed = accounts.change_password.sync_detailed(
            client=client,
            body=models.PasswordChange(
                current_password=PASSWORD, new_password="a new long passphrase"
            ),
        )
        assert changed.status_code == 204, changed.content
        revoked = sessions.revoke_token.sync_detailed(
            client=anonymous, body=models.RevokeTokenTokenRevocation(token="not-a-token")
        )
        assert revoked.status_code == 200
        assert sessions.logout_all.sync_detailed(client=client).status_code == 204

        fresh = sessions.issue_token.sync(
            client=anonymous,
            body=models.IssueTokenPasswordGrantForm(
                username="grace@example.com", password="a new long passphrase"
            ),
        )
        client = client_module.AuthenticatedClient(base_url=base_url, token=fresh.access_token)
        gone = accounts.delete_me.sync_detailed(
            client=client, body=models.AccountDeletion(password="a new long passphrase")
        )
        assert gone.status_code == 204, gone.content
        assert accounts.get_me.sync_detailed(client=client).status_code == 401
