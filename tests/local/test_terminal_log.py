"""`make run`'s terminal: an unhandled error is one line there, its full record in a file."""

from __future__ import annotations

import io
import json
import uuid
from pathlib import Path
from typing import IO, cast

from aws_lambda_powertools import Logger

from localdev.terminal_log import TerminalLog


def _fail_and_log(terminal: TerminalLog) -> None:
    # A service of its own each time: Powertools keeps a service's logger, handler and stream.
    service = f"taskline-terminal-{uuid.uuid4().hex[:8]}"
    logger = Logger(service=service, stream=cast("IO[str]", terminal))
    logger.set_correlation_id("req-1234")
    logger.info("a record without an exception")
    try:
        raise RuntimeError("x" * 20_000)  # as long as SQLAlchemy's chained tracebacks get
    except RuntimeError:
        logger.exception("Unhandled error")
    print('<42> 127.0.0.1 "GET /tasks HTTP/1.1" 500 273B 9ms', file=terminal)


def test_an_unhandled_error_is_one_line_with_its_correlation_id(tmp_path: Path) -> None:
    screen = io.StringIO()
    log_file = tmp_path / "functions.jsonl"
    _fail_and_log(TerminalLog(screen, log_file))
    lines = screen.getvalue().splitlines()
    assert len(lines) == 3, lines
    info, error, access = lines
    assert json.loads(info)["message"] == "a record without an exception"
    assert error.startswith("ERROR ")
    assert "RuntimeError" in error
    assert "correlation id req-1234" in error
    assert str(log_file) in error
    assert len(error) < 300
    assert access.startswith("<42>")
    # The file keeps every JSON record whole, traceback included.
    records = [json.loads(line) for line in log_file.read_text().splitlines()]
    assert [record["level"] for record in records] == ["INFO", "ERROR"]
    assert "x" * 20_000 in records[1]["exception"]
    assert records[1]["correlation_id"] == "req-1234"


def test_at_debug_the_terminal_gets_the_full_records(tmp_path: Path) -> None:
    screen = io.StringIO()
    _fail_and_log(TerminalLog(screen, tmp_path / "functions.jsonl", full=True))
    assert "x" * 20_000 in screen.getvalue()
