"""`make load` as CI runs it: a short bounded run that must pass its own read-back."""

from __future__ import annotations

import json
import socket
from pathlib import Path

from sqlalchemy import make_url

from tests.support.processes import child_environment, run_python


def _free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


def test_a_short_load_run_reads_every_acknowledged_write_back(
    database_url: str, tmp_path: Path
) -> None:
    # Idempotency keys store the first answer as sent (status, headers, body) since migration
    # 0005; the read-back once grouped them by the old `response` column, empty for them, and
    # reported "N idempotency keys point at task None" after every clean run.
    summary_file = tmp_path / "load.json"
    finished = run_python(
        "bench/load.py",
        *("--workers", "1", "--clients", "2", "--seconds", "3"),
        *("--port", str(_free_port()), "--bcrypt-rounds", "4", "--json", str(summary_file)),
        # The server's maintenance database, as `make load` uses it: it creates its own.
        env=child_environment(
            DATABASE_URL=make_url(database_url)
            .set(database="postgres")
            .render_as_string(hide_password=False)
        ),
        timeout=180,
    )
    assert finished.returncode == 0, finished.stdout + finished.stderr
    summary = json.loads(summary_file.read_text())
    assert summary["problems"] == 0
    assert summary["server_errors_5xx"] == 0
    assert summary["per_action"]["create"]["requests"] > 0
