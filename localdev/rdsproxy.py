"""A local stand-in for Amazon RDS Proxy (PostgreSQL engine family), as strict as the real one.

It sits in front of a real PostgreSQL and does what RDS Proxy does to a client before any SQL
runs, and watches what RDS Proxy watches afterwards:

- Startup options. RDS Proxy accepts only a few parameters in the startup packet and answers
  any other one (`statement_timeout`, `options=-c ...`, `search_path`,
  `ssl_renegotiation_limit`, ...) with `FATAL 0A000 Feature not supported: RDS Proxy currently
  doesn't support the option <name>`, then closes the connection. The accepted set is the one
  in "Considerations for connecting to PostgreSQL"
  https://docs.aws.amazon.com/AmazonRDS/latest/UserGuide/rds-proxy-connecting.html#rds-proxy-connecting-postgresql
  and the refusal text is RDS Proxy's own, as public projects met it, e.g.
  https://github.com/ForumMagnum/ForumMagnum/pull/11415 (statement_timeout).
- TLS. With `require_tls` (the proxy's RequireTLS), a client must open with the SSLRequest
  handshake; a plaintext startup is refused.
  https://docs.aws.amazon.com/AWSCloudFormation/latest/UserGuide/aws-resource-rds-dbproxy.html
- Pinning. RDS Proxy multiplexes transactions over shared database connections until a client
  changes session state; from then on it pins that client to one database connection for the
  rest of its session. Every statement that would pin is recorded (it is not refused: RDS Proxy
  does not refuse it either, it quietly stops pooling), by the list in "Avoiding pinning an RDS
  Proxy" for PostgreSQL:
  https://docs.aws.amazon.com/AmazonRDS/latest/UserGuide/rds-proxy-pinning.html#rds-proxy-pinning.postgres
  plain SET (SET LOCAL is transaction-scoped and does not pin), named prepared statements
  (a Parse message with a name), PREPARE / DEALLOCATE / DISCARD, session-level advisory locks,
  LISTEN, temporary tables, cursors WITH HOLD, and set_config(..., false).

- Target registration. CloudFormation's AWS::RDS::DBProxyTargetGroup reports success as soon
  as the target is registered, but a target's health goes "registering > unavailable >
  available" (TargetHealth.State), which takes minutes on a new proxy:
  https://docs.aws.amazon.com/AmazonRDS/latest/APIReference/API_TargetHealth.html
  With `registering_seconds`, the stand-in serves nobody for that long after it starts, in one
  of three ways (AWS does not document what a client sees, and clients have met each):
  "refuse" closes each connection at once, "hang" holds it unanswered (the client's timeout
  fires), and "login" answers FATAL 28000 (a login error, as when the proxy cannot yet use the
  credentials it holds for the target).

Frontend messages are parsed (simple Query and Parse carry SQL); bytes are forwarded unchanged
both ways, so authentication is end to end with the real server, as it is with RDS Proxy's
client-side SCRAM against the credentials it holds.

Run it in front of any PostgreSQL (for `make run` with DATABASE_URL):

    python -m localdev.rdsproxy --upstream embedded --listen 127.0.0.1:6432
"""

from __future__ import annotations

import argparse
import contextlib
import itertools
import logging
import re
import signal
import socket
import ssl
import struct
import sys
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from typing import Literal

from sqlalchemy import make_url

log = logging.getLogger("rdsproxy")

# The startup-packet parameters RDS Proxy accepts from PostgreSQL clients (names compare
# case-insensitively, as PostgreSQL's do). Anything else is refused with 0A000.
ALLOWED_STARTUP_PARAMETERS = frozenset(
    name.lower()
    for name in (
        "user",
        "database",
        "application_name",
        "client_encoding",
        "DateStyle",
        "TimeZone",
        "extra_float_digits",
    )
)

PROTOCOL_3_0 = 196608
SSL_REQUEST = 80877103
GSSENC_REQUEST = 80877104
CANCEL_REQUEST = 80877102
_MAX_STARTUP_PACKET = 10_000  # PostgreSQL's own limit on a startup packet
# How the stand-in answers while its target is registering (see the module's docstring).
Registering = Literal["refuse", "hang", "login"]
REGISTERING_BEHAVIOURS: tuple[Registering, ...] = ("refuse", "hang", "login")


def pipe(
    client: socket.socket,
    upstream: socket.socket,
    on_client_bytes: Callable[[bytes], None] | None = None,
) -> None:
    """Copy bytes both ways until either side closes (then close both); `on_client_bytes` sees
    what the client sends, after it was forwarded. The stand-ins' one byte pump."""
    upstream.settimeout(None)

    def close_both() -> None:
        for sock in (client, upstream):
            with contextlib.suppress(OSError):
                sock.shutdown(socket.SHUT_RDWR)

    def backend_to_client() -> None:
        try:
            while chunk := upstream.recv(65536):
                client.sendall(chunk)
        except OSError:
            pass
        finally:
            close_both()

    answering = threading.Thread(target=backend_to_client, daemon=True)
    answering.start()
    try:
        while chunk := client.recv(65536):
            upstream.sendall(chunk)
            if on_client_bytes is not None:
                on_client_bytes(chunk)
    except OSError:
        pass
    finally:
        close_both()
    answering.join(timeout=5)
    for sock in (client, upstream):
        sock.close()


def error_response(sqlstate: str, message: str) -> bytes:
    """A FATAL ErrorResponse message."""
    fields = b"SFATAL\0VFATAL\0C" + sqlstate.encode() + b"\0M" + message.encode() + b"\0\0"
    return b"E" + struct.pack("!i", len(fields) + 4) + fields


def unsupported_option(name: str) -> bytes:
    return error_response(
        "0A000", f"Feature not supported: RDS Proxy currently doesn't support the option {name}"
    )


# --- what pins a session ---------------------------------------------------------------------

_SESSION_SET = re.compile(r"SET\s+(?!LOCAL\b)", re.IGNORECASE)
_STATEMENT_RULES: tuple[tuple[re.Pattern[str], str], ...] = (
    (re.compile(r"(PREPARE|DEALLOCATE)\b", re.IGNORECASE), "prepared statement (SQL)"),
    (re.compile(r"DISCARD\b", re.IGNORECASE), "DISCARD"),
    (re.compile(r"LISTEN\b", re.IGNORECASE), "LISTEN"),
    (
        re.compile(r"CREATE\s+(?:GLOBAL\s+|LOCAL\s+)?(?:TEMP|TEMPORARY)\s+", re.IGNORECASE),
        "temporary table",
    ),
    (re.compile(r"DECLARE\b.*\bWITH\s+HOLD\b", re.IGNORECASE | re.DOTALL), "cursor WITH HOLD"),
)
# Anywhere in a statement: the session-level advisory lock functions (the _xact_ ones end with
# the transaction and do not pin) and temporary tables created by SELECT ... INTO.
_ANYWHERE_RULES: tuple[tuple[re.Pattern[str], str], ...] = (
    (
        re.compile(r"\bpg_(?:try_)?advisory_lock(?:_shared)?\s*\(", re.IGNORECASE),
        "session advisory lock",
    ),
    (re.compile(r"\bINTO\s+(?:TEMP|TEMPORARY)\s+", re.IGNORECASE), "temporary table"),
)
_SET_CONFIG = re.compile(r"\bset_config\s*\(", re.IGNORECASE)


def _statements(sql: str) -> Iterator[str]:
    """The statements of an SQL text, with comments removed and string literals emptied (so a
    word inside a literal never looks like a command)."""
    out: list[str] = []
    i, n = 0, len(sql)
    while i < n:
        char = sql[i]
        if sql.startswith("--", i):
            end = sql.find("\n", i)
            i = n if end < 0 else end
            out.append(" ")
        elif sql.startswith("/*", i):
            end = sql.find("*/", i + 2)
            i = n if end < 0 else end + 2
            out.append(" ")
        elif char in "'\"":
            end = i + 1
            while end < n:
                if sql[end] == char:
                    if end + 1 < n and sql[end + 1] == char:  # doubled quote: escaped
                        end += 2
                        continue
                    break
                end += 1
            out.append(char * 2 if char == "'" else sql[i : end + 1])
            i = end + 1
        elif char == "$" and (tag := re.match(r"\$[A-Za-z_]*\$", sql[i:])):
            end = sql.find(tag.group(), i + len(tag.group()))
            out.append("''")
            i = n if end < 0 else end + len(tag.group())
        elif char == ";":
            yield "".join(out).strip()
            out = []
            i += 1
        else:
            out.append(char)
            i += 1
    if rest := "".join(out).strip():
        yield rest


def _set_config_is_session_level(statement: str) -> bool:
    """True if any set_config(...) call in the statement is not literally transaction-local."""
    for match in _SET_CONFIG.finditer(statement):
        depth = 1
        args: list[str] = []
        current: list[str] = []
        for char in statement[match.end() :]:
            if char == "(":
                depth += 1
            elif char == ")":
                depth -= 1
                if depth == 0:
                    break
            if char == "," and depth == 1:
                args.append("".join(current))
                current = []
            else:
                current.append(char)
        args.append("".join(current))
        # A bind parameter ($3) could be false: only a literal true is known to be local.
        if len(args) < 3 or args[2].strip().lower() not in ("true", "'t'", "'true'"):
            return True
    return False


def pinning_reasons(sql: str) -> list[str]:
    """Why RDS Proxy would pin a session that runs `sql` (empty when it would not)."""
    reasons: list[str] = []
    for statement in _statements(sql):
        if _SESSION_SET.match(statement):
            reasons.append("SET")
        for pattern, reason in _STATEMENT_RULES:
            if pattern.match(statement):
                reasons.append(reason)
        for pattern, reason in _ANYWHERE_RULES:
            if pattern.search(statement):
                reasons.append(reason)
        if _set_config_is_session_level(statement):
            reasons.append("set_config(..., false)")
    return reasons


# --- the proxy -------------------------------------------------------------------------------


@dataclass
class Pin:
    """A statement that would have pinned its client session to one database connection."""

    session: int
    reason: str
    statement: str


@dataclass
class Session:
    """One client connection as the proxy saw it."""

    number: int
    tls_version: str | None = None
    refused: str | None = None  # why the proxy refused it (None: accepted)
    parameters: dict[str, str] = field(default_factory=dict)
    pins: list[Pin] = field(default_factory=list)


def _recv_exactly(sock: socket.socket, size: int) -> bytes:
    data = bytearray()
    while len(data) < size:
        chunk = sock.recv(size - len(data))
        if not chunk:
            raise ConnectionError("peer closed")
        data += chunk
    return bytes(data)


def _startup_parameters(body: bytes) -> dict[str, str]:
    """The name/value pairs of a v3 startup packet body (after the protocol version)."""
    parts = body.split(b"\0")
    parameters: dict[str, str] = {}
    for index in range(0, len(parts) - 1, 2):
        name, value = parts[index], parts[index + 1]
        if not name:
            break
        parameters[name.decode("utf-8", "replace")] = value.decode("utf-8", "replace")
    return parameters


class RdsProxyStandIn:
    """Accepts PostgreSQL clients as RDS Proxy would and pipes the accepted ones upstream."""

    def __init__(
        self,
        connect_upstream: Callable[[], socket.socket],
        *,
        host: str = "127.0.0.1",
        port: int = 0,
        tls_context: ssl.SSLContext | None = None,
        require_tls: bool = False,
        registering_seconds: float = 0.0,
        registering: Registering = "refuse",
    ) -> None:
        if require_tls and tls_context is None:
            raise ValueError("require_tls needs a TLS context (a certificate)")
        if registering not in REGISTERING_BEHAVIOURS:
            raise ValueError(f"registering must be one of {REGISTERING_BEHAVIOURS}")
        self.registering = registering
        self.available_at = time.monotonic() + registering_seconds
        self._connect_upstream = connect_upstream
        self.tls_context = tls_context
        self.require_tls = require_tls
        self.listener = socket.create_server((host, port))
        self.host = host
        self.port = int(self.listener.getsockname()[1])
        self.sessions: list[Session] = []
        self._numbers = itertools.count(1)
        self._stopped = threading.Event()
        self._thread = threading.Thread(target=self._accept, name="rds-proxy", daemon=True)
        self._thread.start()

    def __enter__(self) -> RdsProxyStandIn:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.stop()

    @property
    def pins(self) -> list[Pin]:
        return [pin for session in list(self.sessions) for pin in list(session.pins)]

    @property
    def refused(self) -> list[Session]:
        return [session for session in list(self.sessions) if session.refused is not None]

    def stop(self) -> None:
        self._stopped.set()
        with contextlib.suppress(OSError):
            self.listener.shutdown(socket.SHUT_RDWR)
        self.listener.close()

    def _accept(self) -> None:
        while not self._stopped.is_set():
            try:
                client, _ = self.listener.accept()
            except OSError:
                return
            # Answers are forwarded as they come, often in several small writes: with Nagle's
            # algorithm each would wait for the client's delayed ACK (about 40 ms on Linux).
            client.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
            threading.Thread(target=self._serve, args=(client,), daemon=True).start()

    def _refuse(self, client: socket.socket, session: Session, why: str, answer: bytes) -> None:
        session.refused = why
        log.warning("refused connection %d: %s", session.number, why)
        with contextlib.suppress(OSError):
            client.sendall(answer)
            client.shutdown(socket.SHUT_WR)  # a clean close, so the client reads the error
        client.close()

    @property
    def target_available(self) -> bool:
        return time.monotonic() >= self.available_at

    def _while_registering(self, client: socket.socket, session: Session) -> None:
        session.refused = f"target registering ({self.registering})"
        log.warning("connection %d while the target is registering", session.number)
        if self.registering == "login":
            with contextlib.suppress(OSError, struct.error, ConnectionError):
                _recv_exactly(client, 8)  # the startup packet's (or SSLRequest's) header
                client.sendall(
                    error_response("28000", "the proxy's database target is not available yet")
                )
                client.shutdown(socket.SHUT_WR)
        elif self.registering == "hang":
            # Accepted, never answered: the client's own timeout decides how long it waits.
            self._stopped.wait(max(self.available_at - time.monotonic(), 0.0))
        client.close()

    def _serve(self, raw_client: socket.socket) -> None:
        session = Session(next(self._numbers))
        self.sessions.append(session)
        client: socket.socket = raw_client
        if not self.target_available:
            self._while_registering(client, session)
            return
        try:
            length, code = struct.unpack("!ii", _recv_exactly(client, 8))
            if code == GSSENC_REQUEST:  # RDS Proxy offers no GSSAPI encryption
                client.sendall(b"N")
                length, code = struct.unpack("!ii", _recv_exactly(client, 8))
            if code == SSL_REQUEST:
                if self.tls_context is None:
                    client.sendall(b"N")
                else:
                    client.sendall(b"S")
                    try:
                        client = self.tls_context.wrap_socket(client, server_side=True)
                    except (ssl.SSLError, OSError):
                        session.refused = "TLS handshake failed"
                        raw_client.close()
                        return
                    session.tls_version = client.version()
                length, code = struct.unpack("!ii", _recv_exactly(client, 8))
            if not 8 <= length <= _MAX_STARTUP_PACKET:
                self._refuse(
                    client,
                    session,
                    "bad startup packet",
                    error_response("08P01", "invalid startup packet layout"),
                )
                return
            body = _recv_exactly(client, length - 8)
            if code == CANCEL_REQUEST:
                self._forward_cancel(struct.pack("!ii", length, code) + body)
                client.close()
                return
            if self.require_tls and session.tls_version is None:
                self._refuse(
                    client,
                    session,
                    "plaintext",
                    error_response("28000", "this proxy requires TLS connections"),
                )
                return
            if code != PROTOCOL_3_0:
                self._refuse(
                    client,
                    session,
                    f"protocol {code >> 16}.{code & 0xFFFF}",
                    unsupported_option("protocol version"),
                )
                return
            session.parameters = _startup_parameters(body)
            for name in session.parameters:
                if name.lower() not in ALLOWED_STARTUP_PARAMETERS:
                    self._refuse(
                        client, session, f"startup option {name}", unsupported_option(name)
                    )
                    return
            upstream = self._connect_upstream()
            if upstream.family in (socket.AF_INET, socket.AF_INET6):
                upstream.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
            upstream.sendall(struct.pack("!ii", length, code) + body)
        except (ConnectionError, OSError, struct.error, ssl.SSLError):
            with contextlib.suppress(OSError):
                client.close()
            return
        pending = bytearray()

        def read(chunk: bytes) -> None:
            pending.extend(chunk)
            self._inspect(session, pending)

        pipe(client, upstream, read)

    def _forward_cancel(self, packet: bytes) -> None:
        with contextlib.suppress(OSError), contextlib.closing(self._connect_upstream()) as upstream:
            upstream.sendall(packet)

    def _inspect(self, session: Session, pending: bytearray) -> None:
        """Consume the complete frontend messages in `pending`; record what would pin."""
        while len(pending) >= 5:
            kind = pending[0:1]
            (length,) = struct.unpack("!i", pending[1:5])
            if len(pending) < 1 + length:
                return
            payload = bytes(pending[5 : 1 + length])
            del pending[: 1 + length]
            if kind == b"Q":
                self._check(session, payload.rstrip(b"\0").decode("utf-8", "replace"))
            elif kind == b"P":
                name, _, rest = payload.partition(b"\0")
                query = rest.partition(b"\0")[0].decode("utf-8", "replace")
                if name:
                    self._pin(session, "named prepared statement", query)
                self._check(session, query)

    def _check(self, session: Session, sql: str) -> None:
        for reason in pinning_reasons(sql):
            self._pin(session, reason, sql)

    def _pin(self, session: Session, reason: str, sql: str) -> None:
        session.pins.append(Pin(session.number, reason, sql))
        log.warning("session %d would be pinned (%s): %s", session.number, reason, sql[:200])


# --- reaching the real server ----------------------------------------------------------------


def upstream_for(database_url: str) -> Callable[[], socket.socket]:
    """How to reach the real server behind a libpq-style URL (a Unix socket or host:port)."""
    url = make_url(database_url)
    socket_dir = url.query.get("host")
    port = url.port or 5432
    if isinstance(socket_dir, str) and socket_dir.startswith("/"):
        path = f"{socket_dir}/.s.PGSQL.{port}"

        def unix() -> socket.socket:
            connection = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
            connection.connect(path)
            return connection

        return unix
    host = url.host or "127.0.0.1"
    return lambda: socket.create_connection((host, port), timeout=5)


def proxied_url(database_url: str, port: int, host: str = "127.0.0.1") -> str:
    """The same database (and login), reached through a proxy on `host`:`port`."""
    url = make_url(database_url)
    query = {k: v for k, v in url.query.items() if k != "host"}
    proxied = url.set(host=host, port=port, query=query)
    return proxied.render_as_string(hide_password=False)


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(
        prog="python -m localdev.rdsproxy", description="A strict local stand-in for RDS Proxy."
    )
    parser.add_argument(
        "--upstream",
        default="embedded",
        help="the real server: a postgresql:// URL, or 'embedded' (make run's embedded server)",
    )
    parser.add_argument("--listen", default="127.0.0.1:6432", help="host:port to listen on")
    parser.add_argument(
        "--database", default="taskline", help="created upstream if missing; named in the URL"
    )
    parser.add_argument("--tls-cert", help="PEM certificate chain: offer TLS")
    parser.add_argument("--tls-key", help="PEM private key of --tls-cert")
    parser.add_argument("--require-tls", action="store_true", help="refuse plaintext clients")
    parser.add_argument(
        "--registering-seconds",
        type=float,
        default=0.0,
        help="serve nobody this long after starting, as a new proxy whose target registers",
    )
    parser.add_argument(
        "--registering",
        choices=REGISTERING_BEHAVIOURS,
        default="refuse",
        help="what clients meet while the target registers",
    )
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(asctime)s rdsproxy %(message)s")

    upstream_url = args.upstream
    if upstream_url == "embedded":
        from localdev.database import embedded_server_url

        upstream_url = embedded_server_url()
    from localdev.database import ensure_database

    ensure_database(upstream_url, args.database)
    context = None
    if args.tls_cert:
        context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
        context.minimum_version = ssl.TLSVersion.TLSv1_2
        context.load_cert_chain(args.tls_cert, args.tls_key)
    host, _, port = args.listen.rpartition(":")
    proxy = RdsProxyStandIn(
        upstream_for(upstream_url),
        host=host or "127.0.0.1",
        port=int(port),
        tls_context=context,
        require_tls=args.require_tls,
        registering_seconds=args.registering_seconds,
        registering=args.registering,
    )
    target = (
        make_url(upstream_url).set(database=args.database).render_as_string(hide_password=False)
    )
    log.info("listening on %s:%d", proxy.host, proxy.port)
    print(f"DATABASE_URL={proxied_url(target, proxy.port, proxy.host)}", flush=True)
    stopping = threading.Event()
    for signum in (signal.SIGINT, signal.SIGTERM):
        signal.signal(signum, lambda *_: stopping.set())
    while not stopping.wait(1.0):
        pass
    proxy.stop()
    log.info(
        "%d connections, %d refused, %d pinning statements",
        len(proxy.sessions),
        len(proxy.refused),
        len(proxy.pins),
    )
    sys.exit(0)


if __name__ == "__main__":
    main()
