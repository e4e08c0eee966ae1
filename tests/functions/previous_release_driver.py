"""Run inside the PREVIOUS release's checkout (tests/functions/test_previous_release.py): its
handlers, through its own local API Gateway, against the database the suite migrated to the new
head. Prints what it saw as JSON on stdout.

It uses nothing of the new code: the child's PYTHONPATH is the old checkout only.
"""

from __future__ import annotations

import json
import sys
from typing import Any
from urllib.parse import urlencode

from localdev.gateway import LocalGateway
from localdev.template import load

gateway = LocalGateway(load())
results: dict[str, Any] = {}


def call(
    method: str,
    path: str,
    body: Any = None,
    token: str | None = None,
    headers: dict[str, str] | None = None,
) -> Any:
    headers = dict(headers or {})
    raw = b""
    if body is not None:
        raw = json.dumps(body).encode()
        headers["Content-Type"] = "application/json"
    if token:
        headers["Authorization"] = f"Bearer {token}"
    response = gateway.request(method, path, headers=list(headers.items()), body=raw)
    try:
        parsed = json.loads(response.body) if response.body else None
    except ValueError:
        parsed = response.body.decode(errors="replace")
    return {"status": response.status, "body": parsed, "etag": response.header("ETag")}


def main(email: str, foreign_task_id: int) -> None:
    signed_up = call("POST", "/users", {"email": email, "password": "correct horse battery"})
    results["sign_up"] = signed_up
    form = urlencode(
        {"grant_type": "password", "username": email, "password": "correct horse battery"}
    )
    token_response = gateway.request(
        "POST",
        "/token",
        headers=[("Content-Type", "application/x-www-form-urlencoded")],
        body=form.encode(),
    )
    token = json.loads(token_response.body)["access_token"]
    results["token_status"] = token_response.status
    task = {"description": "Old release", "category": "compat", "deadline": "2030-01-15T09:00:00Z"}
    created = call("POST", "/tasks", task, token, headers={"Idempotency-Key": "compat-1"})
    results["create"] = created
    task_id = created["body"]["id"]
    results["get"] = call("GET", f"/tasks/{task_id}", token=token)
    results["patch"] = call(
        "PATCH",
        f"/tasks/{task_id}",
        {"status": "In Progress"},
        token,
        headers={"If-Match": results["get"]["etag"]},
    )
    results["put"] = call(
        "PUT",
        f"/tasks/{task_id}",
        {**task, "description": "Old release v2", "status": "To Do"},
        token,
    )
    second = call("POST", "/tasks", {**task, "description": "To delete"}, token)
    results["delete"] = call("DELETE", f"/tasks/{second['body']['id']}", token=token)
    results["list"] = call("GET", "/tasks", token=token)
    results["me"] = call("GET", "/users/me", token=token)
    # A task of a shared list (it has no user_id): the old release must never show or touch it.
    results["foreign_get"] = call("GET", f"/tasks/{foreign_task_id}", token=token)
    results["foreign_patch"] = call("PATCH", f"/tasks/{foreign_task_id}", {"status": "Done"}, token)
    results["foreign_delete"] = call("DELETE", f"/tasks/{foreign_task_id}", token=token)
    results["layer"] = sys.modules["taskline"].__file__
    results["token"] = token
    results["task_id"] = task_id


if __name__ == "__main__":
    main(sys.argv[1], int(sys.argv[2]))
    print(json.dumps(results))
