"""`make run`: serve every HTTP route of template.yaml at http://127.0.0.1:3000 (PORT overrides).

Starts the embedded PostgreSQL unless DATABASE_URL is set, applies migrations, and calls the
real handlers with the events API Gateway would send. No Docker needed.
"""

from __future__ import annotations

import logging
import os
import secrets
import sys
from http.server import BaseHTTPRequestHandler, HTTPServer, ThreadingHTTPServer
from typing import Any, cast
from urllib.parse import urlsplit

from localdev import database
from localdev.gateway import GATEWAY_MAX_BODY_BYTES, LocalGateway
from localdev.template import ROOT, load

DEV_DATABASE = "taskline"
DEV_SECRET_FILE = ROOT / ".local" / "jwt-secret"

log = logging.getLogger("taskline.localdev")
FORWARDED_HEADERS = frozenset({"x-forwarded-for", "x-forwarded-port", "x-forwarded-proto"})


def configure_environment() -> str:
    """Environment for the functions: template defaults, then the local database and a dev key."""
    template = load()
    server_url = database.server_url()
    app_url = database.ensure_database(server_url, os.environ.get("TASKLINE_DB_NAME", DEV_DATABASE))
    defaults = {}
    for function in template.functions.values():
        defaults.update({k: v for k, v in function.environment.items() if v})
    defaults.update({"DB_SSL_MODE": "disable", "POWERTOOLS_METRICS_DISABLED": "true"})
    for name, value in defaults.items():
        os.environ.setdefault(name, value)
    os.environ["DATABASE_URL"] = app_url
    if not os.environ.get("JWT_SECRET"):
        os.environ["JWT_SECRET"] = _dev_secret()
    return app_url


def _dev_secret() -> str:
    """A random signing key kept in .local/, so tokens survive a restart of `make run`."""
    if not DEV_SECRET_FILE.exists():
        DEV_SECRET_FILE.parent.mkdir(parents=True, exist_ok=True)
        DEV_SECRET_FILE.write_text(secrets.token_urlsafe(48))
        DEV_SECRET_FILE.chmod(0o600)
    return DEV_SECRET_FILE.read_text().strip()


def migrate() -> None:
    from taskline.db import get_engine
    from taskline.migrate import upgrade
    from taskline.settings import get_settings

    # Bounded by the migrations' own timeout, not the role default applied next.
    upgrade(get_engine(), statement_timeout_ms=get_settings().migration_statement_timeout_ms)
    database.apply_session_defaults(get_engine())
    get_engine().dispose()  # role defaults apply to sessions opened from now on


def make_handler(gateway: LocalGateway) -> type[BaseHTTPRequestHandler]:
    class Handler(BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"
        server_version = "taskline-local"
        # Headers and body go out in two writes; with Nagle's algorithm the body would wait for
        # the client's delayed ACK of the headers (about 40 ms on Linux) on every keep-alive
        # response. The load test (bench/load.py) showed it.
        disable_nagle_algorithm = True

        def _serve(self) -> None:
            length = int(self.headers.get("Content-Length") or 0)
            if length > GATEWAY_MAX_BODY_BYTES:
                self.send_error(413)
                return
            body = self.rfile.read(length) if length else b""
            target = urlsplit(self.path)
            # API Gateway sets the X-Forwarded-* headers itself (clients cannot forge them); the
            # handlers build absolute URLs (the Link header) from them.
            headers = [
                (name, value)
                for name, value in self.headers.items()
                if name.lower() not in FORWARDED_HEADERS
            ]
            headers += [
                ("X-Forwarded-For", self.client_address[0]),
                ("X-Forwarded-Port", str(cast(HTTPServer, self.server).server_port)),
                ("X-Forwarded-Proto", "http"),
            ]
            response = gateway.request(
                self.command,
                target.path,
                target.query,
                headers,
                body,
                source_ip=self.client_address[0],
                domain_name=self.headers.get("Host", "127.0.0.1"),
            )
            self.send_response(response.status)
            for name, value in response.headers:
                if name.lower() not in ("content-length", "connection", "transfer-encoding"):
                    self.send_header(name, value)
            self.send_header("Content-Length", str(len(response.body)))
            self.end_headers()
            if self.command != "HEAD":
                self.wfile.write(response.body)

        do_GET = do_POST = do_PUT = do_PATCH = do_DELETE = do_OPTIONS = do_HEAD = _serve

        def __getattr__(self, name: str) -> Any:
            # Any other method (TRACE, QUERY, ...) goes to the gateway too, whose catch-all
            # route answers 405 with Allow, instead of the standard library's bare 501.
            if name.startswith("do_"):
                return self._serve
            raise AttributeError(name)

        def log_message(self, format: str, *args: object) -> None:  # noqa: A002 - stdlib name
            log.info("%s %s", self.address_string(), format % args)

    return Handler


def serve(host: str, port: int) -> ThreadingHTTPServer:
    gateway = LocalGateway(load())
    return ThreadingHTTPServer((host, port), make_handler(gateway))


def main() -> None:
    logging.basicConfig(level=logging.INFO, format="%(message)s", stream=sys.stderr)
    template = load()
    for path in template.layer_paths:
        sys.path.insert(0, str(path))
    url = configure_environment()
    migrate()
    port = int(os.environ.get("PORT", "3000"))
    host = os.environ.get("HOST", "127.0.0.1")
    server = serve(host, port)
    log.info("Taskline on http://%s:%d (database %s); Swagger UI at /docs", host, port, url)
    for route, function in sorted(template.routes(), key=lambda rf: rf[0].path):
        log.info("  %-7s %-20s -> %s", route.method, route.path, function.logical_id)
    try:
        server.serve_forever()
    except KeyboardInterrupt:
        pass
    finally:
        server.server_close()


if __name__ == "__main__":
    main()
