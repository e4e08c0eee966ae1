"""The auth and tasks functions serve requests without importing the AWS SDK (short cold starts)."""

from __future__ import annotations

import json
import textwrap
from typing import Any

from tests.support.processes import child_environment, run_python

SCRIPT = textwrap.dedent(
    """
    import json
    import sys

    from localdev.gateway import LocalGateway
    from localdev.template import load

    gateway = LocalGateway(load())
    statuses = []

    def send(method, path, body=b"", headers=()):
        response = gateway.request(method, path, "", list(headers), body)
        statuses.append(response.status)
        return response

    send("POST", "/users", b'{"email": "imports@example.com", "password": "long enough"}',
         [("Content-Type", "application/json")])
    token = send("POST", "/token", b"username=imports%40example.com&password=long+enough",
                 [("Content-Type", "application/x-www-form-urlencoded")]).json()["access_token"]
    bearer = [("Authorization", "Bearer " + token), ("Content-Type", "application/json")]
    send("POST", "/tasks",
         b'{"description": "d", "category": "c", "deadline": "2030-01-01T00:00:00Z"}', bearer)
    send("GET", "/tasks", headers=bearer)
    send("GET", "/users/me", headers=bearer)
    send("GET", "/tasks/999", headers=bearer)
    loaded = sorted(
        name for name in sys.modules if name.split(".")[0] in ("boto3", "botocore")
    )
    print(json.dumps({"statuses": statuses, "aws_sdk_modules": loaded}))
    """
)


def run_in_fresh_interpreter(script: str, database_url: str) -> dict[str, Any]:
    """Run `script` in a new Python process (nothing imported yet); its last line is JSON."""
    completed = run_python("-c", script, env=child_environment(DATABASE_URL=database_url))
    assert completed.returncode == 0, completed.stderr
    report: dict[str, Any] = json.loads(completed.stdout.strip().splitlines()[-1])
    return report


def test_auth_and_tasks_do_not_import_boto3(database_url: str) -> None:
    report = run_in_fresh_interpreter(SCRIPT, database_url)
    assert report["statuses"] == [201, 200, 201, 200, 200, 404]
    # No boto3 and no botocore machinery (session, client, loaders, service models). The bare
    # `botocore` package is the one exception: `import aws_lambda_powertools` imports it (under
    # a millisecond) to register a user-agent hook for SDK sessions that may be created later.
    assert "boto3" not in report["aws_sdk_modules"]
    assert [name for name in report["aws_sdk_modules"] if name != "botocore"] == []


TASKS_ONLY = textwrap.dedent(
    """
    import json
    import sys
    import uuid

    from localdev.gateway import LocalGateway
    from localdev.template import load
    from taskline.security.tokens import issue_access_token

    gateway = LocalGateway(load())
    token = issue_access_token(1, uuid.uuid4()).token
    bearer = [("Authorization", "Bearer " + token), ("Content-Type", "application/json")]
    statuses = [
        gateway.request("GET", "/tasks", "", bearer).status,
        gateway.request("GET", "/tasks/1", "", bearer).status,
        gateway.request("PATCH", "/tasks/1", "", bearer, b'{"status": "Done"}').status,
    ]
    loaded = sorted(
        name for name in sys.modules if name.split(".")[0] == "email_validator"
    )
    openapi_models = "aws_lambda_powertools.event_handler.openapi.models" in sys.modules
    print(json.dumps({"statuses": statuses, "loaded": loaded, "openapi_models": openapi_models}))
    """
)


def test_the_tasks_function_does_not_load_email_validator(database_url: str) -> None:
    """Only the auth function checks emails (UserCreate builds its schema on first use), so the
    tasks function's cold start does not pay for email-validator's import."""
    report = run_in_fresh_interpreter(TASKS_ONLY, database_url)
    assert report["statuses"] == [200, 404, 404]
    assert report["loaded"] == []


def test_requests_do_not_load_the_openapi_document_models(database_url: str) -> None:
    """Powertools' OpenAPI object models (about 70 pydantic classes, the costliest module of the
    cold start) serve only the OpenAPI document; answering requests never imports them."""
    report = run_in_fresh_interpreter(TASKS_ONLY, database_url)
    assert report["statuses"] == [200, 404, 404]
    assert report["openapi_models"] is False
