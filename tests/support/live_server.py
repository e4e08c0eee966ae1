"""Live local servers for tests that need a real socket, on free ports:
- `live_server()`: `make run`'s server (python -m localdev.server) as a child process, against
  the test session's database (DATABASE_URL names it) with the test session's signing key, so
  fixtures and direct checks see what it does; stopped when the block ends.
- `serving(gateway)`: the tests' own local API Gateway served in this process by the standard
  library's WSGI server (localdev/wsgi.py), for tests that drive the gateway's fixtures' state.
Both serve the same WSGI application, localdev.wsgi's gateway (the child process behind
`make run`'s gunicorn front); `in_thread(server)` is how every in-process server here runs.
"""

from __future__ import annotations

import os
import re
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Iterable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from http.server import HTTPServer
from wsgiref.simple_server import WSGIRequestHandler, WSGIServer, make_server
from wsgiref.types import StartResponse, WSGIApplication, WSGIEnvironment

from localdev.gateway import LocalGateway
from localdev.template import ROOT
from localdev.wsgi import wsgi_app
from tests.support.processes import child_environment

STARTUP_SECONDS = 90
_BANNER = re.compile(r"Taskline on http://([^:]+):(\d+) ")


@dataclass
class LiveServer:
    process: subprocess.Popen[str]
    host: str = ""
    port: int = 0
    output: list[str] = field(default_factory=list)

    @property
    def url(self) -> str:
        return f"http://{self.host}:{self.port}"

    def text(self) -> str:
        return "".join(self.output)


def _drain(server: LiveServer, ready: threading.Event) -> None:
    assert server.process.stdout is not None
    for line in server.process.stdout:
        server.output.append(line)
        found = _BANNER.search(line)
        if found:
            server.host, server.port = found.group(1), int(found.group(2))
            ready.set()
    ready.set()


def stop(process: subprocess.Popen[str], sig: int = signal.SIGINT) -> int:
    """Stop the server as Ctrl-C would (SIGINT to its process group); its exit status."""
    if process.poll() is None:
        os.killpg(process.pid, sig)
        try:
            process.wait(timeout=30)
        except subprocess.TimeoutExpired:
            os.killpg(process.pid, signal.SIGKILL)
            process.wait(timeout=10)
    return process.returncode


@contextmanager
def live_server(**environment: str) -> Iterator[LiveServer]:
    env = child_environment(**{"PORT": "0", "CONTAINERS": "2", **environment})
    process = subprocess.Popen(
        [sys.executable, "-m", "localdev.server"],
        env=env,
        cwd=ROOT,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,  # one stream: the access log goes to stdout, the rest not
        text=True,
        start_new_session=True,  # its own process group, as a terminal's foreground job is
    )
    server = LiveServer(process)
    ready = threading.Event()
    threading.Thread(target=_drain, args=(server, ready), daemon=True).start()
    try:
        deadline = time.monotonic() + STARTUP_SECONDS
        while not server.port and time.monotonic() < deadline and process.poll() is None:
            ready.wait(timeout=0.5)
        if not server.port:
            raise RuntimeError(f"the server did not start:\n{server.text()}")
        yield server
    finally:
        stop(process)


class _QuietHandler(WSGIRequestHandler):
    def log_message(self, format: str, *args: object) -> None:  # noqa: A002 - stdlib name
        pass


def _forwarded_as_http(application: WSGIApplication) -> WSGIApplication:
    """API Gateway sets X-Forwarded-Proto itself (clients cannot forge it), and the handlers
    build absolute URLs (the Link header) from it: this server speaks plain HTTP."""

    def forwarded(environ: WSGIEnvironment, start_response: StartResponse) -> Iterable[bytes]:
        environ["HTTP_X_FORWARDED_PROTO"] = "http"
        return application(environ, start_response)

    return forwarded


@contextmanager
def in_thread(server: HTTPServer) -> Iterator[str]:
    """`server`, bound to a loopback port, answering from a thread of this process until the
    block ends; its base URL."""
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}"
    finally:
        server.shutdown()
        server.server_close()
        thread.join(timeout=10)


@contextmanager
def serving(gateway: LocalGateway) -> Iterator[str]:
    """The base URL of a server answering through `gateway` until the block ends."""
    server: WSGIServer = make_server(
        "127.0.0.1", 0, _forwarded_as_http(wsgi_app(gateway)), handler_class=_QuietHandler
    )
    # API Gateway's domain name is its own, never the client's Host: here, this server's address.
    domain_name = f"127.0.0.1:{server.server_address[1]}"
    server.set_app(_forwarded_as_http(wsgi_app(gateway, domain_name=domain_name)))
    with in_thread(server) as base_url:
        yield base_url
