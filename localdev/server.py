"""`make run`: serve every HTTP route of template.yaml at http://127.0.0.1:3000 (PORT overrides),
and the web app (web/) at /app/ on the same origin (localdev.web_app).

Uses the database DATABASE_URL names (creating it when missing and allowed), or else starts the
embedded PostgreSQL, applies migrations, and serves the real handlers through the local API
Gateway (localdev.gateway: routes, CORS, limits) behind a real HTTP front (localdev.http_front:
gunicorn, CONTAINERS worker processes, one invocation at a time each). No Docker needed.

    PORT                  port to listen on (default 3000; 0 picks a free one)
    HOST                  address to listen on (default 127.0.0.1)
    API_DOMAIN_NAME       the API's domain name in events and Link headers (default 127.0.0.1:PORT)
    CONTAINERS            worker processes, each one warm container (default 3)
    REQUEST_READ_TIMEOUT_SECONDS  how long a request may take to arrive in full (default 10;
                          then 408: localdev.http_front)
    CORS_ALLOWED_ORIGINS  browser origins allowed (localdev.cors; empty: no CORS)
    DATABASE_URL          use this database instead of the embedded server
    TASKLINE_TEMPLATE     another template file to serve (tests use one with other CORS lists)
    AURORA=1              reach the database through the auto-pausing Aurora Serverless v2
                          stand-in (localdev.aurora; AURORA_PAUSE_SECONDS, AURORA_RESUME_SECONDS),
                          which prints when it pauses and resumes

Ctrl-C (or SIGTERM) stops the server, and the embedded PostgreSQL too when this run started it.
"""

from __future__ import annotations

import errno
import logging
import os
import secrets
import socket
import sys
from pathlib import Path

from localdev import database
from localdev.aurora import AuroraServerlessStandIn
from localdev.template import ROOT, TEMPLATE, Template, load
from localdev.terminal_log import TerminalLog

DEV_DATABASE = "taskline"
DEV_SECRET_FILE = ROOT / ".local" / "jwt-secret"
DEFAULT_CONTAINERS = 3


def _template() -> Template:
    return load(Path(os.environ.get("TASKLINE_TEMPLATE") or TEMPLATE))


def configure_environment() -> str:
    """Environment for the functions: template defaults, then the local database and a dev key."""
    template = load()
    if os.environ.get("DATABASE_URL"):
        app_url = database.named_database_url(os.environ["DATABASE_URL"])
    else:
        app_url = database.ensure_database(database.embedded_server_url(), DEV_DATABASE)
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


def migrate() -> str:
    """Migrate to the newest revision, quietly; the revision the database is at."""
    from taskline.db import get_engine
    from taskline.migrate import database_revision, upgrade
    from taskline.settings import get_settings

    logging.getLogger("alembic").setLevel(logging.WARNING)  # no plugin or per-step lines
    engine = get_engine()
    # Bounded by the migrations' own timeout, not the role default applied next.
    upgrade(engine, statement_timeout_ms=get_settings().migration_statement_timeout_ms)
    database.apply_session_defaults(engine)  # role defaults apply to sessions opened from now on
    revision = database_revision(engine) or "none"
    # The HTTP front forks its containers next: none may inherit this process's connections.
    engine.dispose()
    get_engine.cache_clear()
    return revision


def start_aurora(app_url: str) -> AuroraServerlessStandIn:
    """`make run AURORA=1`: the functions reach the database through the strict Aurora
    Serverless v2 stand-in (localdev.aurora), which pauses after AURORA_PAUSE_SECONDS (default
    300, Aurora's least SecondsUntilAutoPause) with no connection open and holds a connection
    for AURORA_RESUME_SECONDS (default 15) while it resumes; it says when on the terminal.
    Idle sessions end after DB_IDLE_SESSION_TIMEOUT_SECONDS (a role default, as in AWS)."""
    from localdev.rdsproxy import proxied_url, upstream_for

    stand_in = AuroraServerlessStandIn(
        upstream_for(app_url),
        pause_after=float(os.environ.get("AURORA_PAUSE_SECONDS") or 300),
        resume_seconds=float(os.environ.get("AURORA_RESUME_SECONDS") or 15),
        on_change=lambda message: _say(f"aurora stand-in: {message}"),
    )
    os.environ["DATABASE_URL"] = proxied_url(app_url, stand_in.port)
    from taskline.settings import get_settings

    get_settings.cache_clear()  # read by migrate(): the containers must read the new URL
    _say(
        f"  Aurora Serverless v2 stand-in on 127.0.0.1:{stand_in.port}: pauses after "
        f"{stand_in.pause_after:g} s with no connection, resumes in {stand_in.resume_seconds:g} s"
    )
    return stand_in


def listen(host: str, port: int) -> socket.socket:
    """The listening socket, or a one-line message and exit status 1 when the port is taken."""
    listener = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    listener.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    try:
        listener.bind((host, port))
    except OSError as error:
        listener.close()
        if error.errno == errno.EADDRINUSE:
            raise SystemExit(
                f"Port {port} on {host} is already in use; stop what is using it, or choose "
                f"another port: PORT={port + 1} make run"
            ) from None
        raise SystemExit(f"Cannot listen on {host}:{port}: {error.strerror}") from None
    listener.listen(1024)
    listener.set_inheritable(True)
    return listener


def _say(message: str) -> None:
    print(message, file=sys.stderr, flush=True)


def main() -> None:
    from localdev.access_log import secret_routes
    from localdev.gateway import LocalGateway
    from localdev.http_front import DEFAULT_READ_TIMEOUT_SECONDS, HttpFront
    from localdev.web_app import APP_PREFIX, with_web_app
    from localdev.wsgi import wsgi_app

    template = _template()
    for path in template.layer_paths:
        sys.path.insert(0, str(path))
    host = os.environ.get("HOST", "127.0.0.1")
    listener = listen(host, int(os.environ.get("PORT", "3000")))
    port = listener.getsockname()[1]
    domain_name = os.environ.get("API_DOMAIN_NAME") or f"127.0.0.1:{port}"
    containers = int(os.environ.get("CONTAINERS") or DEFAULT_CONTAINERS)
    read_timeout = float(
        os.environ.get("REQUEST_READ_TIMEOUT_SECONDS") or DEFAULT_READ_TIMEOUT_SECONDS
    )

    uses_embedded = not os.environ.get("DATABASE_URL")
    started_embedded = uses_embedded and not database.embedded_server_running()
    master = os.getpid()
    aurora = None
    try:
        if os.environ.get("AURORA", "") not in ("", "0"):
            # As the starter profile: wait for a resume within the request, else 503.
            os.environ.setdefault("DB_CONNECT_TIMEOUT_SECONDS", "20")
            os.environ.setdefault("DB_CONNECT_RETRY_AFTER_SECONDS", "15")
        url = configure_environment()
        revision = migrate()
        if os.environ.get("AURORA", "") not in ("", "0"):
            aurora = start_aurora(url)
            url = os.environ["DATABASE_URL"]
        gateway = LocalGateway(template)
        origins = ", ".join(gateway.cors.origins) if gateway.cors else "none (CORS off)"
        shown = url.split("@")[-1]  # no password on the terminal
        docs = "/docs"
        stops_database = " and the embedded PostgreSQL it started." if started_embedded else "."

        def banner() -> None:
            # Printed once every container is up and listening for Ctrl-C: from this line on,
            # Ctrl-C stops every process (before it, a container forked but not yet booted could
            # miss it). Scripts and tests wait for this line, as a person does.
            _say(
                f"Taskline on http://{host}:{port} (API domain {domain_name}); Swagger UI at {docs}"
            )
            _say(f"  the web app: http://{host}:{port}{APP_PREFIX} (/ redirects there)")
            _say(f"  database {shown}, at revision {revision}")
            _say(f"  {containers} containers, one invocation at a time each")
            _say(f"  CORS origins: {origins} (CORS_ALLOWED_ORIGINS)")
            for route, function in sorted(template.routes(), key=lambda rf: rf[0].path):
                _say(f"  {route.method:<7} {route.path:<20} -> {function.logical_id}")
            _say("Ctrl-C stops it" + stops_database)

        # The functions' loggers write to sys.stdout as it is when they are made (in each
        # container, at its first request): one line per error in the terminal from here on.
        full = os.environ.get("POWERTOOLS_LOG_LEVEL", "").upper() == "DEBUG"
        sys.stdout = TerminalLog(sys.stdout, full=full)
        front = HttpFront(
            with_web_app(wsgi_app(gateway, domain_name), reload=True),
            listener,
            containers,
            secret_routes=secret_routes(template),
            read_timeout=read_timeout,
            on_ready=banner,
        )
        if not uses_embedded:
            front.run()
        else:
            with database.in_use_by_server(f"make run on http://{host}:{port}"):
                front.run()
    except KeyboardInterrupt:
        pass
    finally:
        # gunicorn's containers are forked from here and unwind through this block too. They
        # end here, at once: the exit handlers they inherited are the server's (the embedded
        # PostgreSQL library's among them), not theirs to run.
        if os.getpid() != master:
            sys.stdout.flush()
            sys.stderr.flush()
            os._exit(0)
        if aurora is not None:
            aurora.stop()
        if started_embedded:
            database.stop_embedded_server()
            _say("embedded PostgreSQL stopped")


if __name__ == "__main__":
    main()
