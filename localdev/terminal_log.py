"""`make run`'s terminal: the functions' JSON log records, with each error condensed to one line.

Deployed, every record goes to CloudWatch as JSON, and an unhandled error's record carries its
whole traceback (often 15-20 KB with SQLAlchemy's chain). In a terminal that buries everything
else, so `make run` prints such a record as one line (level, function, the exception's name,
the correlation id the client got in its 500) and appends every JSON record, in full, to
LOG_FILE. With POWERTOOLS_LOG_LEVEL=DEBUG the terminal gets the full records too.
"""

from __future__ import annotations

import io
import json
import os
import threading
from pathlib import Path
from typing import Any, TextIO

from localdev.template import ROOT

LOG_FILE = ROOT / ".local" / "logs" / "functions.jsonl"


def _record(line: str) -> dict[str, Any] | None:
    if not line.startswith("{"):
        return None
    try:
        record = json.loads(line)
    except ValueError:
        return None
    return record if isinstance(record, dict) else None


def summary(record: dict[str, Any], log_file: Path) -> str:
    """One line for a record that carries an exception."""
    where = record.get("function_name") or record.get("service") or "function"
    error = record.get("exception_name") or "error"
    return (
        f"{record.get('level', 'ERROR')} {where}: {record.get('message', '')} ({error}); "
        f"correlation id {record.get('correlation_id') or 'none'}; the full record is in "
        f"{log_file.relative_to(ROOT) if log_file.is_relative_to(ROOT) else log_file}"
    )


class TerminalLog(io.TextIOBase):
    """A stand-in for sys.stdout: lines pass through, except JSON records with an exception,
    which become one line; every JSON record is also appended, whole, to `log_file`."""

    def __init__(self, terminal: TextIO, log_file: Path = LOG_FILE, *, full: bool = False):
        super().__init__()
        self._terminal = terminal
        self._log_file = log_file
        self._full = full
        self._pending = ""
        self._lock = threading.Lock()
        log_file.parent.mkdir(parents=True, exist_ok=True)
        # O_APPEND: the containers are forked from this process and share the descriptor; each
        # record is one write(2), so their records never interleave.
        self._fd = os.open(log_file, os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o600)

    @property
    def encoding(self) -> str:  # type: ignore[override]  # io.TextIOBase declares it read-only
        return getattr(self._terminal, "encoding", "utf-8")

    def writable(self) -> bool:
        return True

    def isatty(self) -> bool:
        return self._terminal.isatty()

    def fileno(self) -> int:
        return self._terminal.fileno()

    def write(self, text: str) -> int:
        with self._lock:
            self._pending += text
            while "\n" in self._pending:
                line, self._pending = self._pending.split("\n", 1)
                self._line(line)
        return len(text)

    def flush(self) -> None:
        self._terminal.flush()

    def _line(self, line: str) -> None:
        record = _record(line)
        if record is not None:
            os.write(self._fd, (line + "\n").encode())
        if record is not None and "exception" in record and not self._full:
            self._terminal.write(summary(record, self._log_file) + "\n")
        else:
            self._terminal.write(line + "\n")
        self._terminal.flush()
