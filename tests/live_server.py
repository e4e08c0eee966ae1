"""A live local server for tests that need a real socket: the local API Gateway served over
HTTP by the standard library's WSGI server (localdev/wsgi.py), on a free port."""

from __future__ import annotations

import threading
from collections.abc import Iterable, Iterator
from contextlib import contextmanager
from wsgiref.simple_server import WSGIRequestHandler, WSGIServer, make_server
from wsgiref.types import StartResponse, WSGIApplication, WSGIEnvironment

from localdev.gateway import LocalGateway
from localdev.wsgi import wsgi_app


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
def serving(gateway: LocalGateway) -> Iterator[str]:
    """The base URL of a server answering through `gateway` until the block ends."""
    application = _forwarded_as_http(wsgi_app(gateway))
    server: WSGIServer = make_server("127.0.0.1", 0, application, handler_class=_QuietHandler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}"
    finally:
        server.shutdown()
        server.server_close()
        thread.join(timeout=10)
