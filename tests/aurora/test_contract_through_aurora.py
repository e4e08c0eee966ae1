"""The HTTP contract through the paused Aurora stand-in: the tests marked aurora_contract (tasks
and idempotency; each also signs up and logs in) run again in a child pytest with
TASKLINE_DB_STANDIN=aurora, where every test starts with the database paused and the functions
log in with IAM tokens over TLS."""

from __future__ import annotations

import pytest

from tests.support.environment import ORIGINAL_ENVIRONMENT
from tests.support.processes import child_environment, run_python


@pytest.mark.timeout(900)
def test_the_contract_subset_passes_through_the_paused_aurora_stand_in() -> None:
    done = run_python(
        "-m",
        "pytest",
        "-m",
        "aurora_contract",
        "-q",
        "-p",
        "no:cacheprovider",
        # From the environment before this session's fixtures (their DATABASE_URL is this
        # session's proxied login, not a server the child can create its database on).
        env=child_environment(ORIGINAL_ENVIRONMENT, TASKLINE_DB_STANDIN="aurora"),
        timeout=850,
    )
    summary = "\n".join(done.stdout.splitlines()[-15:])
    assert done.returncode == 0, summary
    assert "strict Aurora Serverless v2 stand-in" in done.stdout, summary
    assert " 0 refused" in done.stdout, summary
