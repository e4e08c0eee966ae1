"""`make run`'s HTTP front: gunicorn, as API Gateway's edge is to the local gateway.

gunicorn's parser frames requests as RFC 9112 section 6.3 says and refuses what is ambiguous
(Content-Length with Transfer-Encoding, repeated or non-numeric Content-Length, a Transfer-Encoding
that does not end in chunked, malformed chunks) with 400, reads chunked bodies, and keeps
connections alive correctly; tests/local/test_http_front.py sends each case over a raw socket.

Concurrency is shaped like Lambda's: each gunicorn worker is one warm container (it imports the
functions on its first request, and runs one invocation at a time: one thread), and CONTAINERS
workers (default 3) serve requests in parallel, as several containers of a function would.

gunicorn answers its own refusals with an HTML page; here they are the contract's problem+json.

Slow clients. API Gateway invokes a function only with the whole request in its event (the
payload format: https://docs.aws.amazon.com/apigateway/latest/developerguide/http-api-develop-integrations-lambda.html),
so a client that sends its headers and half a body never holds a container; AWS documents no
client read timeout of its own for HTTP APIs (its quotas page,
https://docs.aws.amazon.com/apigateway/latest/developerguide/http-api-quotas.html, lists none).
Here a worker is the container and reads the request itself, so it gives a request
REQUEST_READ_TIMEOUT_SECONDS (default 10, a third of the 30 s integration timeout on that page)
to arrive in full, headers and body, and then answers 408 and closes the connection: a stalled
client holds its container for that long at most, and the others are served meanwhile.

The access log never shows a credential in a path (localdev.access_log).
"""

from __future__ import annotations

import contextlib
import errno
import os
import signal
import socket
import sys
import time
from collections.abc import Callable
from typing import Any

from gunicorn import glogging
from gunicorn.app.base import BaseApplication
from gunicorn.arbiter import Arbiter
from gunicorn.http import errors as http_errors
from gunicorn.workers.gthread import TConn, ThreadWorker

from localdev.access_log import PathRedactor
from localdev.gateway import GATEWAY_MAX_REQUEST_LINE_AND_HEADERS_BYTES, front_problem
from localdev.wsgi import CLOSE_CONNECTION, _status_line

# One short line per request; <pid> names the container that served it.
ACCESS_LOG_FORMAT = '%(p)s %(h)s "%(r)s" %(s)s %(b)sB %(M)sms'
DEFAULT_READ_TIMEOUT_SECONDS = 10.0


class HeadersReadTimeout(Exception):
    """The request's headers did not arrive within the read timeout.

    Not an OSError: gunicorn would log those with a traceback and close without an answer;
    any other exception reaches ContainerWorker.handle_error, which answers 408. A body read
    that times out is a TimeoutError, which the application answers (localdev.wsgi) and
    gunicorn's drain of an unread body expects."""


class _ClientSocket(socket.socket):
    """A client connection whose reads give up once its request's read deadline has passed.

    gunicorn's thread sets the socket blocking before it reads each request: that starts the
    request's deadline. Every blocking read then waits at most until the deadline, so a client
    trickling a byte at a time is cut off as surely as one that went quiet."""

    read_timeout = DEFAULT_READ_TIMEOUT_SECONDS
    _deadline: float | None = None
    reading_headers = True  # until ContainerWorker.handle_request has the parsed request

    def setblocking(self, flag: bool) -> None:
        if flag:
            self._deadline = time.monotonic() + self.read_timeout
            self.reading_headers = True
            self.settimeout(self.read_timeout)
        else:
            super().setblocking(False)

    def _timed_out(self) -> Exception:
        if self.reading_headers:
            return HeadersReadTimeout()
        return TimeoutError(errno.ETIMEDOUT, "the request body did not arrive in time")

    def recv(self, bufsize: int, flags: int = 0) -> bytes:
        timeout = self.gettimeout()
        if self._deadline is not None and timeout != 0.0:  # blocking: bounded by the deadline
            remaining = self._deadline - time.monotonic()
            if remaining <= 0:
                raise self._timed_out()
            if timeout is None or timeout > remaining:
                self.settimeout(remaining)
            try:
                return super().recv(bufsize, flags)
            except TimeoutError as error:
                raise self._timed_out() from error
            finally:
                self.settimeout(timeout)
        return super().recv(bufsize, flags)


def _refusal(error: BaseException) -> tuple[int, str, str, str]:
    """(status, problem slug, title, detail) for an error raised while reading a request."""
    if isinstance(error, http_errors.LimitRequestHeaders):
        return (
            431,
            "request-header-fields-too-large",
            "Request Header Fields Too Large",
            f"The request's header fields are over {GATEWAY_MAX_REQUEST_LINE_AND_HEADERS_BYTES} "
            "bytes.",
        )
    if isinstance(error, http_errors.LimitRequestLine):
        return 414, "uri-too-long", "URI Too Long", "The request line is too long."
    if isinstance(error, http_errors.UnsupportedTransferCoding):
        return (
            501,
            "not-implemented",
            "Not Implemented",
            "The request's Transfer-Encoding is not supported; send chunked or a Content-Length.",
        )
    if isinstance(error, (HeadersReadTimeout, TimeoutError)):
        return (
            408,
            "request-timeout",
            "Request Timeout",
            "The request did not arrive in full within the read timeout.",
        )
    if isinstance(error, http_errors.ExpectationFailed):
        return 417, "expectation-failed", "Expectation Failed", "Only Expect: 100-continue works."
    if isinstance(error, (http_errors.ParseException, ValueError)):
        return (
            400,
            "bad-request",
            "Bad Request",
            "The request is not valid HTTP/1.1 (RFC 9112): its framing or a header is malformed"
            " or ambiguous.",
        )
    return 500, "internal-error", "Internal Server Error", "The local HTTP front failed."


class ContainerWorker(ThreadWorker):  # type: ignore[misc]  # gunicorn ships no type hints
    """One warm Lambda container: one request at a time, keep-alive between requests.

    A busy container takes no new connection (Lambda sends a request to a free container, or
    starts one): the listening socket is left to the idle ones until this request is done.
    """

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self._in_flight = 0

    def accept(self, listener: socket.socket) -> None:
        """gunicorn's accept, with the connection read under a deadline (`_ClientSocket`)."""
        try:
            client, address = listener.accept()
        except OSError as error:
            if error.errno not in (errno.EAGAIN, errno.ECONNABORTED, errno.EWOULDBLOCK):
                raise
            return
        self.nr_conns += 1
        timed = _ClientSocket(client.family, client.type, client.proto, fileno=client.detach())
        timed.setblocking(True)
        self.enqueue_req(TConn(self.cfg, timed, address, listener.getsockname()))

    def enqueue_req(self, conn: Any) -> None:  # on the worker's event loop, as finish_request
        self._in_flight += 1
        self.set_accept_enabled(False)
        super().enqueue_req(conn)

    def finish_request(self, conn: Any, fs: Any) -> None:
        self._in_flight -= 1
        super().finish_request(conn, fs)

    def set_accept_enabled(self, enabled: bool) -> None:
        super().set_accept_enabled(enabled and self._in_flight == 0)

    def load_wsgi(self) -> None:
        """The application, given a way to close the connection after its answer (what it
        refuses unread must not be read as the next request); WSGI has none of its own."""
        super().load_wsgi()
        application: Any = getattr(self, "wsgi")  # noqa: B009 - gunicorn sets it, untyped

        def with_close(environ: dict[str, Any], start_response: Any) -> Any:
            environ[CLOSE_CONNECTION] = self._request.force_close
            return application(environ, start_response)

        self.wsgi: Any = with_close

    def handle_quit(self, _sig: int, _frame: Any) -> None:
        """Ctrl-C (SIGINT from the terminal) or the master's quick stop (SIGQUIT): end now.

        gunicorn's own raises SystemExit in the middle of whatever the container was doing and
        unwinds through gunicorn's and the server's code (locks, logging, exit handlers
        inherited from the master); once in a loaded run a container hung there until SIGKILL.
        A quick stop abandons the request in flight anyway, as a Lambda container that is
        shut down does."""
        for stream in (sys.stdout, sys.stderr):
            with contextlib.suppress(BaseException):  # interrupted mid-write: exit regardless
                stream.flush()
        os._exit(0)

    def handle_request(self, req: Any, conn: Any) -> Any:
        self._request = req  # one thread: one request at a time
        if isinstance(conn.sock, _ClientSocket):
            conn.sock.reading_headers = False  # parsed: what is read from here on is the body
        return super().handle_request(req, conn)

    def handle_error(self, _req: Any, client: socket.socket, addr: Any, exc: BaseException) -> None:
        status, slug, title, detail = _refusal(exc)
        if status == 500:
            self.log.exception("Error handling request")
        else:
            self.log.warning("refused %s from %s: %s", status, (addr or ("?",))[0], exc)
        problem = front_problem(status, slug, title, detail)
        head = (
            f"HTTP/1.1 {_status_line(status)}\r\n"
            f"Content-Type: {problem.header('Content-Type')}\r\n"
            f"Content-Length: {len(problem.body)}\r\n"
            "Connection: close\r\n\r\n"
        )
        try:
            client.sendall(head.encode("latin-1") + problem.body)
        except OSError:
            self.log.debug("could not send the refusal")


def redacting_logger(redactor: PathRedactor) -> type:
    """gunicorn's logger, with credentials in request paths redacted from the access log."""

    class RedactingLogger(glogging.Logger):  # type: ignore[misc]  # no type hints
        def atoms(self, resp: Any, req: Any, environ: Any, request_time: Any) -> Any:
            atoms = super().atoms(resp, req, environ, request_time)
            atoms["r"] = redactor.request_line(atoms["r"])
            atoms["U"] = redactor.path(atoms["U"] or "")
            return atoms

    return RedactingLogger


# While stopping, the signal is sent again this often to containers still running: one that got
# it between its fork and installing its own handlers (it still had the master's, which queue
# the signal in the child's copy of the master's queue) would otherwise never hear it.
RESEND_STOP_SIGNAL_SECONDS = 0.5
# How often the master looks for containers that became ready until the last one has.
READY_POLL_SECONDS = 0.05


class _Arbiter(Arbiter):  # type: ignore[misc]  # gunicorn ships no type hints
    """gunicorn's master, which says when every container is ready and whose stop is heard."""

    def __init__(self, app: HttpFront) -> None:
        super().__init__(app)
        self._front = app
        self._stop_signal: int | None = None
        self._signalled_at = 0.0

    def wait_for_signals(self, timeout: float = 1.0) -> list[int]:
        if self._front.on_ready is None:
            return list(super().wait_for_signals(timeout))
        signals = list(super().wait_for_signals(min(timeout, READY_POLL_SECONDS)))
        self._front.check_ready()
        return signals

    def kill_workers(self, sig: int) -> None:
        if sig in (signal.SIGTERM, signal.SIGQUIT):
            self._stop_signal, self._signalled_at = sig, time.monotonic()
        super().kill_workers(sig)

    def reap_workers(self) -> None:
        super().reap_workers()
        # stop() calls this every 0.1 s while it waits for the containers to end.
        since = time.monotonic() - self._signalled_at
        if self._stop_signal is not None and self.WORKERS and since > RESEND_STOP_SIGNAL_SECONDS:
            self.kill_workers(self._stop_signal)


class HttpFront(BaseApplication):  # type: ignore[misc]  # gunicorn ships no type hints
    """gunicorn serving `application` on `listener` with `containers` workers. `on_ready` runs
    in the master once every container has booted and installed its signal handlers: from then
    on, Ctrl-C (SIGINT to the process group) stops every process."""

    def __init__(
        self,
        application: Any,
        listener: socket.socket,
        containers: int,
        *,
        secret_routes: list[str],
        read_timeout: float = DEFAULT_READ_TIMEOUT_SECONDS,
        on_ready: Callable[[], None] | None = None,
    ) -> None:
        self.application = application
        _ClientSocket.read_timeout = read_timeout  # the containers are forked from here
        self.containers = containers
        self.on_ready = on_ready
        self._ready_read, self._ready_write = os.pipe()
        os.set_blocking(self._ready_read, False)
        self._ready = 0
        self.options = {
            "bind": [f"fd://{listener.fileno()}"],
            "workers": containers,
            "worker_class": f"{ContainerWorker.__module__}.{ContainerWorker.__name__}",
            "threads": 1,
            "keepalive": 5,
            "timeout": 60,  # above the functions' 29 s integration timeout
            # Ctrl-C: containers finish their request and exit; on a loaded 2-core machine one
            # took over 5 s once (and was killed), so allow more before gunicorn sends SIGKILL.
            "graceful_timeout": 20,
            # API Gateway's limit is on the request line and header values together (10240
            # bytes, checked in localdev.wsgi); gunicorn's own caps sit just above it, so
            # anything it lets through is measured there.
            "limit_request_line": 0,  # 0: gunicorn's largest, 1 MiB; localdev.wsgi answers 414
            "limit_request_field_size": GATEWAY_MAX_REQUEST_LINE_AND_HEADERS_BYTES + 1024,
            "limit_request_fields": 1000,
            "accesslog": "-",
            "access_log_format": ACCESS_LOG_FORMAT,
            "logger_class": redacting_logger(PathRedactor(secret_routes)),
            "errorlog": "-",
            "loglevel": "warning",  # no "Booting worker" lines; refusals and errors only
            "proc_name": "taskline-local",
            "post_worker_init": self._container_ready,
        }
        super().__init__()

    def _container_ready(self, _worker: Any) -> None:
        """In a container, after its signal handlers and application are in place."""
        os.write(self._ready_write, b"r")

    def check_ready(self) -> None:
        """In the master: run on_ready once every container has said it is ready."""
        try:
            self._ready += len(os.read(self._ready_read, 1024))
        except BlockingIOError:
            return
        if self.on_ready is not None and self._ready >= self.containers:
            on_ready, self.on_ready = self.on_ready, None
            on_ready()

    def run(self) -> None:
        _Arbiter(self).run()

    def load_config(self) -> None:
        for key, value in self.options.items():
            self.cfg.set(key, value)

    def load(self) -> Any:
        return self.application
