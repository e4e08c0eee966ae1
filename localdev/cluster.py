"""Run copies of `make run`'s server (localdev.server) as separate processes, for the load test
and the live fuzzing run. Each process is one "warm container" per function, as in Lambda.

    with local_servers(count=4, first_port=3105, database_name="taskline_load") as servers:
        servers.urls  # ["http://127.0.0.1:3105", ...]; servers.database_url for direct checks

Every server gets the same signing key (a token from one is good at all), the same database
(created and migrated once, here), and its own log file in .local/servers/. They are stopped,
and only they, when the block ends.
"""

from __future__ import annotations

import os
import secrets
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

from localdev import database
from localdev.template import ROOT

LOG_DIR = ROOT / ".local" / "servers"
STARTUP_SECONDS = 90


@dataclass(frozen=True)
class Servers:
    urls: list[str]
    database_url: str


def _wait_until_listening(port: int, process: subprocess.Popen[bytes], log: Path) -> None:
    deadline = time.monotonic() + STARTUP_SECONDS
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise RuntimeError(f"server on port {port} exited; see {log}")
        try:
            with socket.create_connection(("127.0.0.1", port), timeout=1):
                return
        except OSError:
            time.sleep(0.2)
    raise RuntimeError(f"server on port {port} did not start within {STARTUP_SECONDS} s")


def _stop(process: subprocess.Popen[bytes]) -> None:
    if process.poll() is None:
        process.terminate()
        try:
            process.wait(timeout=10)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait(timeout=10)


@contextmanager
def local_servers(
    count: int, first_port: int, database_name: str, extra_env: dict[str, str] | None = None
) -> Iterator[Servers]:
    """Start `count` servers on ports first_port.. against a fresh database."""
    url = database.fresh_migrated_database(database.server_url(), database_name)
    LOG_DIR.mkdir(parents=True, exist_ok=True)
    env = {
        **os.environ,
        "DATABASE_URL": url,  # names the database: every server uses it as it is
        "CONTAINERS": "1",  # one container each, as these servers are sized
        "JWT_SECRET": os.environ.get("JWT_SECRET") or secrets.token_urlsafe(48),
        "HOST": "127.0.0.1",
        **(extra_env or {}),
    }
    processes: list[subprocess.Popen[bytes]] = []
    try:
        for index in range(count):
            port = first_port + index
            log = LOG_DIR / f"{database_name}-{port}.log"
            with log.open("wb") as output:
                process = subprocess.Popen(
                    [sys.executable, "-m", "localdev.server"],
                    env={**env, "PORT": str(port)},
                    stdout=output,
                    stderr=subprocess.STDOUT,
                    cwd=ROOT,
                )
            processes.append(process)
            _wait_until_listening(port, process, log)
        yield Servers([f"http://127.0.0.1:{first_port + i}" for i in range(count)], url)
    finally:
        for process in processes:
            _stop(process)
