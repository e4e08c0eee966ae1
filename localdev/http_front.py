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

import errno
import socket
import time
from typing import Any

from gunicorn import glogging
from gunicorn.app.base import BaseApplication
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


class HttpFront(BaseApplication):  # type: ignore[misc]  # gunicorn ships no type hints
    def __init__(
        self,
        application: Any,
        listener: socket.socket,
        containers: int,
        *,
        secret_routes: list[str],
        read_timeout: float = DEFAULT_READ_TIMEOUT_SECONDS,
    ) -> None:
        self.application = application
        _ClientSocket.read_timeout = read_timeout  # the containers are forked from here
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
        }
        super().__init__()

    def load_config(self) -> None:
        for key, value in self.options.items():
            self.cfg.set(key, value)

    def load(self) -> Any:
        return self.application
