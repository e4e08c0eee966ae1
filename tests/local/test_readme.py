"""The README's examples run in the order written (issue 13): the curl walkthrough against a
live local server, then the two `make invoke` commands of "Invoking one function without
Docker", as the Makefile runs them, on the same database."""

from __future__ import annotations

import json
import re
import shlex
import shutil
import subprocess
from typing import Any

import pytest

from localdev.template import ROOT
from tests.support.live_server import live_server
from tests.support.processes import child_environment, run_python

README = (ROOT / "README.md").read_text()


def _block_after(heading: str) -> str:
    """The first ```sh block of the README section under `heading`."""
    section = README.split(f"\n## {heading}\n", 1)[1]
    found = re.search(r"```sh\n(.*?)```", section, re.DOTALL)
    assert found, heading
    return found.group(1)


def _invoke(line: str, environment: dict[str, str]) -> dict[str, Any]:
    """`make invoke FUNCTION=... EVENT=... ARGS="..."`, run as the Makefile's recipe does."""
    words = dict(word.split("=", 1) for word in shlex.split(line)[2:])
    arguments = ["localdev.invoke", words["FUNCTION"], "--event", words["EVENT"]]
    done = run_python(
        "-m", *arguments, *shlex.split(words.get("ARGS", "")), env=environment, timeout=120
    )
    assert done.returncode == 0, done.stdout + done.stderr
    result: dict[str, Any] = json.loads(done.stdout)
    return result


@pytest.mark.skipif(shutil.which("curl") is None, reason="the walkthrough is written for curl")
def test_the_readme_examples_run_in_the_order_written(database_url: str, tmp_path: Any) -> None:
    walkthrough = _block_after("Calling the API")
    assert "API=http://127.0.0.1:3000" in walkthrough
    with live_server() as server:  # `make run`'s own server, as the README has it
        script = walkthrough.replace("API=http://127.0.0.1:3000", f"API={server.url}")
        done = subprocess.run(
            ["bash", "-euo", "pipefail", "-c", script],
            cwd=tmp_path,
            capture_output=True,
            text=True,
            timeout=300,
            check=False,
        )
    assert done.returncode == 0, done.stdout + done.stderr
    output = done.stdout
    assert '"email":"ada@example.com"' in output  # signed up
    assert "Idempotent-Replayed: true" in output  # the retried create
    # DELETE task, password change, logout-all, calendar feed revoked, account deletion.
    assert output.count("204 No Content") == 5, output
    assert 'rel="next"' in output

    # The invoke commands, on the same database as the server (DATABASE_URL names it).
    invocations = [
        line
        for line in _block_after("Invoking one function without Docker").splitlines()
        if line.startswith("make invoke")
    ]
    assert len(invocations) == 2
    environment = child_environment(DATABASE_URL=database_url)
    signed_up = _invoke(invocations[0], environment)
    assert signed_up["statusCode"] == 201, signed_up
    assert json.loads(signed_up["body"])["email"] == "ada@example.com"
    listed = _invoke(invocations[1], environment)
    assert listed["statusCode"] == 200, listed
    assert json.loads(listed["body"]) == []  # ada's old tasks went with her old account
