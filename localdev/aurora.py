"""A local stand-in for Aurora PostgreSQL Serverless v2 with auto-pause, as strict as the real one.

A TCP proxy in front of a real PostgreSQL (like localdev.rdsproxy) that does what Aurora does to
a client before any SQL runs:

- Auto-pause. With a minimum capacity of 0 ACUs, an instance pauses once it has had no user
  connection for SecondsUntilAutoPause, and never while one is open; a connection request to a
  paused instance resumes it, and the connection waits (it is not refused) until it has
  resumed, about 15 seconds, and 30 seconds or more after a pause of over 24 hours.
  https://docs.aws.amazon.com/AmazonRDS/latest/AuroraUserGuide/aurora-serverless-v2-auto-pause.html#auto-pause-how-it-works
  Here: `pause_after` seconds with no connection open, `resume_seconds` of holding (both set by
  the caller: short in tests). A client that gives up waiting just closes its socket.
- IAM database authentication. The client logs in with a token in place of a password (sent
  as a cleartext password message, over TLS: the server requires TLS for it). The token is a
  SigV4-presigned URL without its scheme,
  `host:port/?Action=connect&DBUser=...&X-Amz-Algorithm=AWS4-HMAC-SHA256&X-Amz-Credential=...
  &X-Amz-Date=...&X-Amz-Expires=900&X-Amz-SignedHeaders=host&X-Amz-Signature=...`, valid for 15
  minutes and checked only at login; a bad, forged or expired token is refused with
  `FATAL 28P01 PAM authentication failed for user "..."`, as RDS answers it.
  https://docs.aws.amazon.com/AmazonRDS/latest/AuroraUserGuide/UsingWithRDS.IAMDBAuth.Connecting.html
  https://docs.aws.amazon.com/AmazonRDS/latest/AuroraUserGuide/UsingWithRDS.IAMDBAuth.html
  https://repost.aws/knowledge-center/rds-postgresql-connect-using-iam (the PAM error)
  The signature is recomputed (SigV4, service `rds-db`) for the access keys the stand-in is
  given, so a token signed with any other secret is a forgery.

Past the login, bytes are piped unchanged both ways. With IAM, the stand-in logs in to the real
server itself (trust, cleartext or SCRAM with `upstream_password`).

    python -m localdev.aurora --pause-after 300 --resume-seconds 15   (make run AURORA=1 uses it)
"""

from __future__ import annotations

import argparse
import contextlib
import itertools
import logging
import signal
import socket
import ssl
import struct
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from urllib.parse import parse_qsl, unquote, urlencode

from localdev.rdsproxy import (
    CANCEL_REQUEST,
    GSSENC_REQUEST,
    PROTOCOL_3_0,
    SSL_REQUEST,
    _recv_exactly,
    _startup_parameters,
    error_response,
    pipe,
)

log = logging.getLogger("aurora")

TOKEN_LIFETIME = timedelta(minutes=15)  # IAM auth tokens: valid for 15 minutes
CLOCK_SKEW = timedelta(minutes=5)  # SigV4 tolerates a request dated this far ahead
_MAX_STARTUP_PACKET = 10_000


@dataclass(frozen=True)
class IamAuth:
    """What the stand-in checks tokens against: the host name clients sign for (DB_HOST; the
    port is the stand-in's), the region, and the access keys it knows (id -> secret)."""

    host: str
    access_keys: dict[str, str]
    region: str = "us-east-1"
    now: Callable[[], datetime] = field(default=lambda: datetime.now(UTC))


def token_problem(token: str, user: str, iam: IamAuth, port: int) -> str | None:
    """Why Aurora would refuse `token` for `user` at `iam.host`:`port` (None: it accepts it)."""
    endpoint, separator, query = token.partition("/?")
    if not separator:
        return "not a presigned connect URL"
    if endpoint != f"{iam.host}:{port}":
        return f"signed for {endpoint}, not {iam.host}:{port}"
    pairs = parse_qsl(query, keep_blank_values=True)
    params = dict(pairs)
    if len(params) != len(pairs):
        return "a repeated parameter"
    if params.get("Action") != "connect":
        return "Action is not connect"
    if params.get("DBUser") != user:
        return f"signed for user {params.get('DBUser')!r}, not {user!r}"
    if params.get("X-Amz-Algorithm") != "AWS4-HMAC-SHA256":
        return "not AWS4-HMAC-SHA256"
    if params.get("X-Amz-SignedHeaders") != "host":
        return "signed headers are not host"
    try:
        signed_at = datetime.strptime(params["X-Amz-Date"], "%Y%m%dT%H%M%SZ").replace(tzinfo=UTC)
        expires = int(params["X-Amz-Expires"])
        key_id, day, region, service, terminator = unquote(params["X-Amz-Credential"]).split("/")
        signature = params["X-Amz-Signature"]
    except (KeyError, ValueError):
        return "malformed: a parameter is missing or unreadable"
    if (day, region, service, terminator) != (
        signed_at.strftime("%Y%m%d"),
        iam.region,
        "rds-db",
        "aws4_request",
    ):
        return "credential scope is not <date>/<region>/rds-db/aws4_request"
    if len(signature) != 64 or any(c not in "0123456789abcdef" for c in signature):
        return "signature is not 64 hex digits"
    now = iam.now()
    if signed_at - now > CLOCK_SKEW:
        return "dated in the future"
    if not 0 < expires <= TOKEN_LIFETIME.total_seconds():
        return "X-Amz-Expires is not within 900 seconds"
    if now > signed_at + timedelta(seconds=expires):
        return "expired"
    secret = iam.access_keys.get(key_id)
    if secret is None:
        return f"unknown access key {key_id}"
    if signature != _signature(endpoint, pairs, key_id, secret, iam.region, params):
        return "signature does not match (forged or altered)"
    return None


def _signature(
    endpoint: str,
    pairs: list[tuple[str, str]],
    key_id: str,
    secret: str,
    region: str,
    params: dict[str, str],
) -> str:
    """The SigV4 query signature botocore's token generator computes, for comparison."""
    from botocore.auth import SigV4QueryAuth
    from botocore.awsrequest import AWSRequest
    from botocore.credentials import Credentials

    unsigned = [(k, v) for k, v in pairs if k != "X-Amz-Signature"]
    request = AWSRequest(method="GET", url=f"https://{endpoint}/?{urlencode(unsigned)}")
    request.context["timestamp"] = params["X-Amz-Date"]
    token = params.get("X-Amz-Security-Token")
    auth = SigV4QueryAuth(Credentials(key_id, secret, token), "rds-db", region)
    string_to_sign = auth.string_to_sign(request, auth.canonical_request(request))
    return str(auth.signature(string_to_sign, request))


# --- the instance's state ----------------------------------------------------------------------

AVAILABLE, PAUSED, RESUMING = "available", "paused", "resuming"


@dataclass
class Connection:
    number: int
    user: str = ""
    refused: str | None = None  # why it was refused (None: accepted, or the client gave up)
    waited: float = 0.0  # seconds held while the instance resumed
    closed: bool = False


def _message(kind: bytes, payload: bytes) -> bytes:
    return kind + struct.pack("!i", len(payload) + 4) + payload


def _read_message(sock: socket.socket) -> tuple[bytes, bytes]:
    kind = _recv_exactly(sock, 1)
    (length,) = struct.unpack("!i", _recv_exactly(sock, 4))
    return kind, _recv_exactly(sock, length - 4)


class AuroraServerlessStandIn:
    """Accepts PostgreSQL clients as an auto-pausing Aurora Serverless v2 instance would."""

    def __init__(
        self,
        connect_upstream: Callable[[], socket.socket],
        *,
        host: str = "127.0.0.1",
        port: int = 0,
        pause_after: float = 300.0,
        resume_seconds: float = 15.0,
        tls_context: ssl.SSLContext | None = None,
        iam: IamAuth | None = None,
        upstream_password: str | None = None,
        on_change: Callable[[str], None] | None = None,
    ) -> None:
        if iam is not None and tls_context is None:
            raise ValueError("IAM authentication needs TLS (a certificate)")
        self._connect_upstream = connect_upstream
        self.pause_after = pause_after
        self.resume_seconds = resume_seconds
        self.tls_context = tls_context
        self.iam = iam
        self.upstream_password = upstream_password
        self._on_change = on_change or (lambda message: log.info("%s", message))
        self.listener = socket.create_server((host, port))
        self.host = host
        self.port = int(self.listener.getsockname()[1])
        self.connections: list[Connection] = []
        self.state = AVAILABLE
        self.pauses = 0
        self.resumes: list[float] = []  # how long each resume held its first connection
        self.open_at_pause: list[int] = []  # connections open when it paused (always 0)
        self._open = 0
        self._idle_since = time.monotonic()
        self._resumed_at = 0.0
        self._resume_started = 0.0
        self._condition = threading.Condition()
        self._numbers = itertools.count(1)
        self._stopped = threading.Event()
        threading.Thread(target=self._accept, name="aurora", daemon=True).start()
        threading.Thread(target=self._watch, name="aurora-pause", daemon=True).start()

    def __enter__(self) -> AuroraServerlessStandIn:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.stop()

    @property
    def open_connections(self) -> int:
        with self._condition:
            return self._open

    @property
    def refused(self) -> list[Connection]:
        return [c for c in list(self.connections) if c.refused is not None]

    def stop(self) -> None:
        self._stopped.set()
        with contextlib.suppress(OSError):
            self.listener.shutdown(socket.SHUT_RDWR)
        self.listener.close()
        with self._condition:
            self._condition.notify_all()

    def pause_now(self) -> None:
        """Pause as if the idle time had passed (only with no connection open, as Aurora)."""
        with self._condition:
            if self._open == 0 and self.state == AVAILABLE:
                self._pause()

    def wait_until_paused(self, timeout: float) -> bool:
        with self._condition:
            return self._condition.wait_for(lambda: self.state == PAUSED, timeout)

    # --- pausing and resuming -----------------------------------------------------------------

    def _pause(self) -> None:
        self.state = PAUSED
        self.pauses += 1
        self.open_at_pause.append(self._open)
        self._on_change(f"paused: no connection for {self.pause_after:g} s (0 ACUs)")
        self._condition.notify_all()

    def _watch(self) -> None:
        while not self._stopped.wait(0.05):
            with self._condition:
                now = time.monotonic()
                if (
                    self.state == AVAILABLE
                    and self._open == 0
                    and now - self._idle_since >= self.pause_after
                ):
                    self._pause()
                elif self.state == RESUMING and now >= self._resumed_at:
                    self.state = AVAILABLE
                    self.resumes.append(now - self._resume_started)
                    self._on_change(f"resumed after {now - self._resume_started:.1f} s")
                    self._condition.notify_all()

    def _arrive(self, connection: Connection) -> bool:
        """A connection request: counted as open at once (so no pause can happen under it);
        resumes a paused instance and holds the request until it has resumed."""
        with self._condition:
            self._open += 1
            if self.state == PAUSED:
                self.state = RESUMING
                self._resume_started = time.monotonic()
                self._resumed_at = self._resume_started + self.resume_seconds
                self._on_change(f"resuming: connection {connection.number} arrived")
            started = time.monotonic()
            self._condition.wait_for(
                lambda: self.state == AVAILABLE or self._stopped.is_set(), None
            )
            connection.waited = time.monotonic() - started
            return not self._stopped.is_set()

    def _leave(self, connection: Connection) -> None:
        with self._condition:
            connection.closed = True
            self._open -= 1
            if self._open == 0:
                self._idle_since = time.monotonic()

    # --- connections --------------------------------------------------------------------------

    def _accept(self) -> None:
        while not self._stopped.is_set():
            try:
                client, _ = self.listener.accept()
            except OSError:
                return
            client.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
            threading.Thread(target=self._serve, args=(client,), daemon=True).start()

    def _refuse(self, client: socket.socket, connection: Connection, why: str, code: str) -> None:
        connection.refused = why
        message = (
            f'PAM authentication failed for user "{connection.user}"' if code == "28P01" else why
        )
        log.warning("refused connection %d: %s", connection.number, why)
        with contextlib.suppress(OSError):
            client.sendall(error_response(code, message))
            client.shutdown(socket.SHUT_WR)

    def _serve(self, raw_client: socket.socket) -> None:
        connection = Connection(next(self._numbers))
        self.connections.append(connection)
        client: socket.socket = raw_client
        upstream: socket.socket | None = None
        try:
            if not self._arrive(connection):
                return
            length, code = struct.unpack("!ii", _recv_exactly(client, 8))
            if code == GSSENC_REQUEST:
                client.sendall(b"N")
                length, code = struct.unpack("!ii", _recv_exactly(client, 8))
            tls = False
            if code == SSL_REQUEST:
                if self.tls_context is None:
                    client.sendall(b"N")
                else:
                    client.sendall(b"S")
                    client = self.tls_context.wrap_socket(client, server_side=True)
                    tls = True
                length, code = struct.unpack("!ii", _recv_exactly(client, 8))
            if not 8 <= length <= _MAX_STARTUP_PACKET:
                self._refuse(client, connection, "invalid startup packet layout", "08P01")
                return
            body = _recv_exactly(client, length - 8)
            if code == CANCEL_REQUEST:
                with contextlib.closing(self._connect_upstream()) as cancel:
                    cancel.sendall(struct.pack("!ii", length, code) + body)
                return
            if code != PROTOCOL_3_0:
                self._refuse(client, connection, "unsupported frontend protocol", "0A000")
                return
            parameters = _startup_parameters(body)
            connection.user = parameters.get("user", "")
            startup = struct.pack("!ii", length, code) + body
            if self.iam is None:
                upstream = self._connect_upstream()
                upstream.sendall(startup)
            else:
                if not tls:
                    # IAM logins must use TLS (the rds_iam role's hba rule is hostssl).
                    self._refuse(
                        client,
                        connection,
                        f'pg_hba.conf rejects connection for user "{connection.user}", '
                        "no encryption",
                        "28000",
                    )
                    return
                client.sendall(_message(b"R", struct.pack("!i", 3)))  # cleartext password
                kind, payload = _read_message(client)
                token = payload.rstrip(b"\0").decode("utf-8", "replace") if kind == b"p" else ""
                problem = token_problem(token, connection.user, self.iam, self.port)
                if problem is not None:
                    self._refuse(client, connection, f"IAM token {problem}", "28P01")
                    return
                upstream = self._connect_upstream()
                upstream.sendall(startup)
                if not self._log_in_upstream(upstream, client, connection.user):
                    return
        except (ConnectionError, OSError, struct.error, ssl.SSLError):
            with contextlib.suppress(OSError):
                client.close()
            if upstream is not None:
                upstream.close()
            self._leave(connection)
            return
        except BaseException:
            self._leave(connection)
            raise
        else:
            if upstream is None:  # refused, or a cancel request
                with contextlib.suppress(OSError):
                    client.close()
                self._leave(connection)
                return
        try:
            pipe(client, upstream)
        finally:
            self._leave(connection)

    def _log_in_upstream(self, upstream: socket.socket, client: socket.socket, user: str) -> bool:
        """Answer the real server's authentication request as `user`; forward from
        AuthenticationOk on. False (and the server's error forwarded) if it refused."""
        password = (self.upstream_password or "").encode()
        scram = None
        while True:
            kind, payload = _read_message(upstream)
            if kind == b"E":
                client.sendall(_message(kind, payload))
                return False
            if kind != b"R":
                raise ConnectionError(f"unexpected {kind!r} during upstream login")
            (request,) = struct.unpack("!i", payload[:4])
            if request == 0:  # AuthenticationOk: the client sees it next, then the rest
                client.sendall(_message(kind, payload))
                return True
            if request == 3:
                upstream.sendall(_message(b"p", password + b"\0"))
            elif request == 10:
                from scramp import ScramClient

                mechanisms = [m.decode() for m in payload[4:].split(b"\0") if m]
                scram = ScramClient(mechanisms, user, password.decode())
                first = scram.get_client_first().encode()
                upstream.sendall(
                    _message(
                        b"p",
                        scram.mechanism_name.encode()
                        + b"\0"
                        + struct.pack("!i", len(first))
                        + first,
                    )
                )
            elif request == 11 and scram is not None:
                scram.set_server_first(payload[4:].decode())
                upstream.sendall(_message(b"p", scram.get_client_final().encode()))
            elif request == 12 and scram is not None:
                scram.set_server_final(payload[4:].decode())
            else:
                raise ConnectionError(f"unsupported upstream authentication {request}")


def main(argv: list[str] | None = None) -> None:
    from localdev.rdsproxy import proxied_url, upstream_for

    parser = argparse.ArgumentParser(
        prog="python -m localdev.aurora",
        description="A strict local stand-in for Aurora Serverless v2 with auto-pause.",
    )
    parser.add_argument("--upstream", default="embedded", help="a postgresql:// URL or 'embedded'")
    parser.add_argument("--listen", default="127.0.0.1:6433")
    parser.add_argument("--database", default="taskline")
    parser.add_argument("--pause-after", type=float, default=300.0, help="seconds idle")
    parser.add_argument("--resume-seconds", type=float, default=15.0)
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(asctime)s aurora %(message)s")
    upstream_url = args.upstream
    if upstream_url == "embedded":
        from localdev.database import embedded_server_url

        upstream_url = embedded_server_url()
    from localdev.database import ensure_database

    target = ensure_database(upstream_url, args.database)
    host, _, port = args.listen.rpartition(":")
    stand_in = AuroraServerlessStandIn(
        upstream_for(upstream_url),
        host=host or "127.0.0.1",
        port=int(port),
        pause_after=args.pause_after,
        resume_seconds=args.resume_seconds,
    )
    print(f"DATABASE_URL={proxied_url(target, stand_in.port, stand_in.host)}", flush=True)
    stopping = threading.Event()
    for signum in (signal.SIGINT, signal.SIGTERM):
        signal.signal(signum, lambda *_: stopping.set())
    while not stopping.wait(1.0):
        pass
    stand_in.stop()


if __name__ == "__main__":
    main()
