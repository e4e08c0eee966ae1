"""What `make run`'s access log may show of a request's path: never a credential.

Some URLs are credentials (the calendar feed's secret, an unsubscribe or email-verification
token): whoever reads the terminal, or a log file it was piped to, must not be able to use
them. Which path parameters are credentials is read from the template's routes, by name: a
parameter named `token` or `secret`, or ending in `_token` or `_secret` (`/calendar/{feed_secret}`,
`/unsubscribe/{token}`, `/verify-email/{token}`); ids (`{task_id}`) are not secrets and stay.
"""

from __future__ import annotations

import re
from collections.abc import Iterable
from urllib.parse import unquote

from localdev.template import Template

# The one rule that says which path parameters are credentials.
SECRET_PARAMETER = re.compile(r"(?:^|_)(?:secret|token)$")
REDACTED = "<redacted>"


def _parameter(segment: str) -> str | None:
    if segment.startswith("{") and segment.endswith("}"):
        return segment[1:-1].removesuffix("+")
    return None


def secret_routes(template: Template) -> list[str]:
    """The template's route paths that carry a credential in a path parameter."""
    return sorted(
        {
            route.path
            for route, _ in template.routes()
            if any(
                SECRET_PARAMETER.search(name)
                for name in map(_parameter, route.path.split("/"))
                if name
            )
        }
    )


class PathRedactor:
    """Replaces the secret segments of request paths with `<redacted>`.

    A path is matched on its fixed segments (percent-decoded) up to each secret one, whatever
    follows: a client's trailing slash or extra segment must not reveal the secret either."""

    def __init__(self, route_paths: Iterable[str]) -> None:
        # For each route: its segments, and the positions of its secret parameters.
        self._routes: list[tuple[list[str], list[int]]] = []
        for path in route_paths:
            segments = path.split("/")
            secret = [
                index
                for index, segment in enumerate(segments)
                if (name := _parameter(segment)) and SECRET_PARAMETER.search(name)
            ]
            if secret:
                self._routes.append((segments, secret))

    def path(self, path: str) -> str:
        sent = path.split("/")
        for segments, secret in self._routes:
            for index in secret:
                if len(sent) > index and all(
                    _parameter(fixed) is not None or fixed == unquote(sent[position])
                    for position, fixed in enumerate(segments[:index])
                ):
                    sent[index] = REDACTED
        return "/".join(sent)

    def target(self, target: str) -> str:
        """A request target (path and query, as sent)."""
        path, mark, query = target.partition("?")
        return self.path(path) + mark + query

    def request_line(self, line: str) -> str:
        """`METHOD target PROTOCOL`, as the access log's `%(r)s` shows it."""
        method, _, rest = line.partition(" ")
        target, space, protocol = rest.rpartition(" ")
        if not space:
            return f"{method} {self.target(rest)}"
        return f"{method} {self.target(target)} {protocol}"
