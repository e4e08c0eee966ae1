"""The README's examples run in the order written: the curl walkthrough against a live local
server, each step answering the status its comment promises, then the two `make invoke`
commands of "Invoking one function without Docker", as the Makefile runs them, on the same
database."""

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


def _block_after(heading: str, level: str = "##") -> str:
    """The first ```sh block of the README section under `heading`."""
    section = README.split(f"\n{level} {heading}\n", 1)[1]
    found = re.search(r"```sh\n(.*?)```", section, re.DOTALL)
    assert found, heading
    return found.group(1)


# A status promised by a comment at the end of a command: `curl ...   # 204 No Content`.
_PROMISED = re.compile(r"\s#\s*([1-5]\d\d)\b")
_CURL = re.compile(r"(^|\$\(|\s)curl ")
# Each curl reports the status it got on stderr with the step (the line it is on), keeping any
# --write-out of the README's own.
_RECORDING_CURL = r"""
curl() {
  local kept=() written=""
  while [ $# -gt 0 ]; do
    case "$1" in
      -w) written="$2"; shift 2 ;;
      *) kept+=("$1"); shift ;;
    esac
  done
  command curl "${kept[@]}" -w "${written}%{stderr}README-STEP ${STEP:-?} %{http_code}\n"
}
"""


def _steps(script: str) -> tuple[str, dict[int, int | None]]:
    """The script with each curl command tagged by its line number, and what each promises: the
    status in the comment ending the command, or None (a success is promised then)."""
    lines = script.splitlines()
    promised: dict[int, int | None] = {}
    for number, line in enumerate(lines):
        if line.lstrip().startswith("#") or not _CURL.search(line):
            continue
        last = number  # the command goes on while a line ends in `\` or `|`
        while lines[last].rstrip().endswith(("\\", "|")):
            last += 1
        found = _PROMISED.search(lines[last])
        promised[number] = int(found.group(1)) if found else None
        lines[number] = _CURL.sub(rf"\g<1>STEP={number} curl ", line)
    return "\n".join(lines) + "\n", promised


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


def _run_walkthrough(
    walkthrough: str, promised: dict[int, int | None], script: str, cwd: Any
) -> str:
    """Run the tagged script against `make run`'s own server, as the README has it, and check
    that every curl answered what its comment promises; return what it printed."""
    with live_server() as server:
        script = script.replace("API=http://127.0.0.1:3000", f"API={server.url}")
        done = subprocess.run(
            ["bash", "-euo", "pipefail", "-c", _RECORDING_CURL + script],
            cwd=cwd,
            capture_output=True,
            text=True,
            timeout=300,
            check=False,
        )
    assert done.returncode == 0, done.stdout + done.stderr
    answered: dict[int, list[int]] = {}
    for step, status in re.findall(r"^README-STEP (\d+) (\d+)$", done.stderr, re.MULTILINE):
        answered.setdefault(int(step), []).append(int(status))
    lines = walkthrough.splitlines()
    for step, status in promised.items():
        assert step in answered, f"never ran: {lines[step]}"
        for got in answered[step]:
            if status is None:
                assert 200 <= got < 300, f"{got} from: {lines[step]}"
            else:
                assert got == status, f"{got}, not the promised {status}, from: {lines[step]}"
    return done.stdout


@pytest.mark.skipif(shutil.which("curl") is None, reason="the walkthrough is written for curl")
def test_the_readme_examples_run_in_the_order_written(database_url: str, tmp_path: Any) -> None:
    walkthrough = _block_after("Calling the API")
    assert "API=http://127.0.0.1:3000" in walkthrough
    script, promised = _steps(walkthrough)
    assert len(promised) >= 30  # every curl of the walkthrough was found
    assert 304 in promised.values()
    output = _run_walkthrough(walkthrough, promised, script, tmp_path)
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


@pytest.mark.skipif(shutil.which("curl") is None, reason="the walkthrough is written for curl")
def test_the_readme_sharing_walkthrough_runs_as_written(database_url: str) -> None:
    """Two people verify their addresses from make run's log, share a list, assign a task, and
    the viewer is refused; each step answers what its comment promises."""
    walkthrough = _block_after("Sharing a list", "###")
    script, promised = _steps(walkthrough)
    assert sorted(status for status in promised.values() if status) == [200] * 4 + [201, 204, 403]
    # The log the walkthrough reads is the checkout's, as for a person.
    output = _run_walkthrough(walkthrough, promised, script, ROOT)
    assert '"description":"Book the plumber"' in output  # Sam's assigned tasks
    assert '"urn:taskline:problem:forbidden"' in output  # the viewer refused
