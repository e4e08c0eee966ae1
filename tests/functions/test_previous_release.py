"""The previous release still serves while a deploy migrates (issue 20): its handlers, checked
out from git into a temporary folder and run in a child process, against the database this suite
migrated to the new head. Sign-up, tokens and task CRUD must work unchanged, and tasks of shared
lists (which have no owner column) must stay invisible and untouchable to it.

The previous release is the commit before the newest migration was added: the code that ran on
the schema before it.
"""

from __future__ import annotations

import json
import shutil
import subprocess
import tarfile
from collections.abc import Iterator
from io import BytesIO
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import Engine

from localdev.gateway import LocalGateway
from localdev.template import ROOT
from tests.support.api import ApiClient, task_body, user_id_of
from tests.support.lists import Lists
from tests.support.processes import child_environment, run_python

VERSIONS = ROOT / "shared" / "taskline" / "migrations" / "versions"
DRIVER = Path(__file__).with_name("previous_release_driver.py")
# What the previous release needs to serve: its handlers, its layer, its local gateway and the
# template that wires them.
CHECKED_OUT = ("functions", "shared", "localdev", "template.yaml")


def _git(*arguments: str) -> bytes:
    return subprocess.run(
        ["git", *arguments], cwd=ROOT, capture_output=True, check=True, timeout=60
    ).stdout


def previous_release() -> str:
    """The commit before the newest migration was added."""
    newest = max(path.name for path in VERSIONS.glob("[0-9]*.py"))
    added = _git("log", "--format=%H", "-1", "--", f"shared/taskline/migrations/versions/{newest}")
    commit = added.decode().strip()
    if not commit:
        raise AssertionError(f"git does not know when {newest} was added")
    return _git("rev-parse", f"{commit}^").decode().strip()


@pytest.fixture(scope="module")
def old_checkout(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Path]:
    if not (ROOT / ".git").exists() or shutil.which("git") is None:
        pytest.fail("the previous-release test needs the git history (a clone, not an export)")
    folder = tmp_path_factory.mktemp("previous-release")
    archive = _git("archive", "--format=tar", previous_release(), *CHECKED_OUT)
    with tarfile.open(fileobj=BytesIO(archive)) as tar:
        tar.extractall(folder, filter="data")
    yield folder
    shutil.rmtree(folder, ignore_errors=True)


def run_previous(old_checkout: Path, email: str, foreign_task_id: int) -> dict[str, Any]:
    environment = child_environment(
        PYTHONPATH=f"{old_checkout / 'shared'}:{old_checkout}",
        # The old layer's settings, from this suite's (the same database, through the strict
        # RDS Proxy stand-in, and the same signing key).
        PYDANTIC_DISABLE_PLUGINS="__all__",
    )
    done = run_python(str(DRIVER), email, str(foreign_task_id), env=environment, timeout=120)
    assert done.returncode == 0, done.stderr[-4000:]
    results: dict[str, Any] = json.loads(done.stdout.strip().splitlines()[-1])
    return results


def test_the_previous_release_serves_on_the_new_schema(
    old_checkout: Path, gateway: LocalGateway, admin_engine: Engine
) -> None:
    # A shared list with a task in it, written by this release.
    anonymous = ApiClient(gateway)
    owner = ApiClient(gateway, anonymous.login(anonymous.sign_up()))
    list_id = Lists(admin_engine).create(user_id_of(owner))
    shared = owner.post("/tasks", json_body=task_body(list_id=list_id))
    assert shared.status == 201, shared.body
    shared_id = shared.json()["id"]

    seen = run_previous(old_checkout, "old-client@example.com", shared_id)

    assert Path(seen["layer"]).is_relative_to(old_checkout)  # the old layer, not this one
    assert seen["sign_up"]["status"] == 201, seen["sign_up"]
    assert seen["token_status"] == 200
    assert seen["create"]["status"] == 201, seen["create"]
    assert seen["get"]["status"] == 200
    assert seen["patch"]["status"] == 200, seen["patch"]
    assert seen["patch"]["body"]["status"] == "In Progress"
    assert seen["put"]["status"] == 200, seen["put"]
    assert seen["put"]["body"]["description"] == "Old release v2"
    assert seen["delete"]["status"] == 204
    assert seen["me"]["status"] == 200
    assert [task["id"] for task in seen["list"]["body"]] == [seen["task_id"]]
    # The list's task: not there, for reading or writing.
    assert [
        seen[name]["status"] for name in ("foreign_get", "foreign_patch", "foreign_delete")
    ] == [
        404,
        404,
        404,
    ]
    assert owner.get(f"/tasks/{shared_id}").json()["status"] == "To Do"

    # What the old release wrote reads well in the new one: a personal task its owner created.
    new_view = ApiClient(gateway, seen["token"])
    task = new_view.get(f"/tasks/{seen['task_id']}")
    assert task.status == 200, task.body
    me = seen["me"]["body"]["id"]
    assert (task.json()["list_id"], task.json()["created_by"]) == (None, me)
    assert [t["id"] for t in new_view.get("/tasks").json()] == [seen["task_id"]]
