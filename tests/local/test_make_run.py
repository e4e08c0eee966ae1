"""`make run`'s lifecycle as a user meets it: a busy port, Ctrl-C, and DATABASE_URL."""

from __future__ import annotations

import http.client
import json
import os
import shutil
import signal
import socket
import subprocess
import time
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest
from sqlalchemy import create_engine, make_url, text

from localdev import database
from localdev.template import ROOT
from tests.support.live_server import live_server, stop
from tests.support.processes import child_environment, run_python


def _run_server(**environment: str) -> subprocess.CompletedProcess[str]:
    return run_python("-m", "localdev.server", env=child_environment(**environment))


def test_a_busy_port_is_a_one_line_error(database_url: str) -> None:
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen(1)
        port = taken.getsockname()[1]
        finished = _run_server(PORT=str(port))
    assert finished.returncode == 1
    lines = finished.stderr.strip().splitlines()
    assert len(lines) == 1, finished.stderr
    assert str(port) in lines[0]
    assert "PORT=" in lines[0]
    assert "Traceback" not in finished.stderr + finished.stdout


@pytest.fixture
def own_pgdata() -> Iterator[str]:
    """A data folder of its own (inside the clone: the server's system user must reach it)."""
    path = ROOT / ".local" / f"lifecycle-{uuid.uuid4().hex[:8]}"
    try:
        yield str(path)
    finally:
        database.stop_embedded_server(path)
        shutil.rmtree(path, ignore_errors=True)


def test_ctrl_c_stops_the_server_and_the_embedded_postgresql_it_started(own_pgdata: str) -> None:
    with pytest.MonkeyPatch.context() as patch:
        patch.delenv("DATABASE_URL")  # as `make run` on a fresh clone: the embedded server
        with live_server(TASKLINE_PGDATA=own_pgdata) as server:
            connection = http.client.HTTPConnection("127.0.0.1", server.port, timeout=30)
            connection.request("GET", "/openapi.json")
            assert connection.getresponse().status == 200
            connection.close()
            assert database.embedded_server_running(Path(own_pgdata))
            status = stop(server.process)  # SIGINT to the process group, as Ctrl-C sends
        assert status == 0, server.text()
    assert not database.embedded_server_running(Path(own_pgdata))
    assert "Traceback" not in server.text()
    assert "[ERROR]" not in server.text()  # every container ended on its own, none was killed
    assert "embedded PostgreSQL stopped" in server.text()


def test_make_stop_refuses_while_make_run_serves_from_the_database(own_pgdata: str) -> None:
    environment = child_environment(TASKLINE_PGDATA=own_pgdata)
    environment.pop("DATABASE_URL", None)
    with pytest.MonkeyPatch.context() as patch:
        patch.delenv("DATABASE_URL")  # `make run` on the embedded server
        with live_server(TASKLINE_PGDATA=own_pgdata) as server:
            refused = run_python("-m", "localdev.database", "stop", env=environment)
            assert refused.returncode == 1
            assert "make run" in refused.stderr
            assert f"http://127.0.0.1:{server.port}" in refused.stderr
            assert "Ctrl-C" in refused.stderr
            assert "FORCE=1" in refused.stderr
            assert database.embedded_server_running(Path(own_pgdata))
            connection = http.client.HTTPConnection("127.0.0.1", server.port, timeout=30)
            connection.request("GET", "/openapi.json")
            assert connection.getresponse().status == 200  # still serving
            connection.close()
            assert stop(server.process) == 0
    # Once it has stopped, `make stop` does its job again (nothing left to stop here).
    stopped = run_python("-m", "localdev.database", "stop", env=environment)
    assert stopped.returncode == 0, stopped.stderr
    assert "was not running" in stopped.stdout


def test_ctrl_c_leaves_a_database_it_did_not_start(database_url: str) -> None:
    from taskline.db import sqlalchemy_url

    with live_server() as server:
        status = stop(server.process)
    assert status == 0
    engine = create_engine(sqlalchemy_url(database_url))
    try:
        with engine.connect() as connection:
            assert connection.execute(text("SELECT 1")).scalar() == 1
    finally:
        engine.dispose()


def _group_is_gone(process: subprocess.Popen[str]) -> bool:
    """No process is left in the server's process group (its containers included)."""
    deadline = time.monotonic() + 5
    while time.monotonic() < deadline:
        try:
            os.killpg(process.pid, 0)
        except ProcessLookupError:
            return True
        time.sleep(0.1)
    return False


def _ctrl_c(process: subprocess.Popen[str]) -> tuple[int, float]:
    """SIGINT to the process group, as Ctrl-C sends; the exit status and seconds it took."""
    started = time.monotonic()
    os.killpg(process.pid, signal.SIGINT)
    try:
        status = process.wait(timeout=30)
    except subprocess.TimeoutExpired:
        status = stop(process, signal.SIGKILL)
    return status, time.monotonic() - started


@pytest.mark.parametrize("attempt", range(3))
def test_ctrl_c_the_moment_the_banner_is_printed_stops_every_process(
    database_url: str, attempt: int
) -> None:
    # The banner is printed only once every container is ready: a person (or a script) who
    # presses Ctrl-C as soon as it appears stops the server, every time, however loaded the
    # machine. Before, the banner came before the containers were up, and a container forked
    # but not yet booted lost the signal (the server went on serving, or needed SIGKILL).
    with live_server() as server:
        status, seconds = _ctrl_c(server.process)
    assert status == 0, server.text()
    assert seconds < 10, server.text()
    assert _group_is_gone(server.process)
    assert "Traceback" not in server.text()


def test_ctrl_c_during_a_request_stops_every_process(database_url: str) -> None:
    # A request the container is in the middle of: headers sent, the body still coming.
    with live_server() as server, socket.create_connection(("127.0.0.1", server.port)) as client:
        client.sendall(
            b"POST /users HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n"
            b'Content-Length: 100\r\n\r\n{"email": '
        )
        # A complete request on another connection, answered while the first is open.
        connection = http.client.HTTPConnection("127.0.0.1", server.port, timeout=30)
        connection.request("GET", "/openapi.json")
        assert connection.getresponse().status == 200
        connection.close()
        status, seconds = _ctrl_c(server.process)
    assert status == 0, server.text()
    assert seconds < 10, server.text()
    assert _group_is_gone(server.process)
    assert "Traceback" not in server.text()


def _admin(database_url: str) -> str:
    return make_url(database_url).set(database="postgres").render_as_string(hide_password=False)


def test_database_url_names_the_database_make_run_uses_creating_it(database_url: str) -> None:
    from taskline.db import sqlalchemy_url

    name = f"taskline_named_{uuid.uuid4().hex[:8]}"
    url = make_url(database_url).set(database=name).render_as_string(hide_password=False)
    try:
        with live_server(DATABASE_URL=url) as server:
            connection = http.client.HTTPConnection("127.0.0.1", server.port, timeout=30)
            body = json.dumps({"email": "named@example.com", "password": "long enough"})
            headers = {"Content-Type": "application/json"}
            connection.request("POST", "/users", body=body, headers=headers)
            assert connection.getresponse().status == 201
            connection.close()
        assert f"/{name}" in server.text()
        engine = create_engine(sqlalchemy_url(url))
        with engine.connect() as db:
            emails = db.execute(text("SELECT email FROM users")).scalars().all()
        engine.dispose()
        assert emails == ["named@example.com"]
    finally:
        database.drop_database(_admin(database_url), name)


def test_a_missing_database_the_user_may_not_create_is_a_clear_error(database_url: str) -> None:
    from taskline.db import sqlalchemy_url

    role = f"nocreate_{uuid.uuid4().hex[:8]}"
    admin = create_engine(sqlalchemy_url(_admin(database_url)), isolation_level="AUTOCOMMIT")
    with admin.connect() as connection:
        connection.exec_driver_sql(f"CREATE ROLE {role} LOGIN NOCREATEDB")
    try:
        url = (
            make_url(database_url)
            .set(username=role, password=None, database=f"{role}_db")
            .render_as_string(hide_password=False)
        )
        finished = _run_server(DATABASE_URL=url, PORT="0")
        assert finished.returncode == 1
        assert "Traceback" not in finished.stderr
        assert f"{role}_db" in finished.stderr
        assert "CREATEDB" in finished.stderr
    finally:
        with admin.connect() as connection:
            connection.exec_driver_sql(f"DROP ROLE IF EXISTS {role}")
        admin.dispose()
