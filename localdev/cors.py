"""API Gateway HTTP API CORS, emulated from template.yaml's CorsConfiguration for the local gateway.

As https://docs.aws.amazon.com/apigateway/latest/developerguide/http-api-cors.html describes it:
- with CORS configured, the gateway answers preflight `OPTIONS` requests itself, even where no
  OPTIONS route exists (here: before the `ANY /{proxy+}` route could take them);
- for a CORS request from an allowed origin it adds the configured CORS headers to the
  integration's response, and it ignores CORS headers the integration returns;
- CORS headers need an `Origin` header, and a preflight also `Access-Control-Request-Method`;
- `AllowOrigins` takes exact origins, `*`, `https://*` or `http://*`.
An origin that is not allowed gets no `Access-Control-*` header at all, so the browser refuses.

Deployed, the origins are the CorsAllowedOrigins parameter. Locally they come from the
CORS_ALLOWED_ORIGINS environment variable (comma-separated; empty turns CORS off, as an empty
parameter does), defaulting to the usual web development servers on this machine.
"""

from __future__ import annotations

import os
from collections.abc import Iterable
from dataclasses import dataclass

from localdev.template import CorsConfiguration

ORIGINS_VARIABLE = "CORS_ALLOWED_ORIGINS"
# Vite (5173), a second dev server (3001; `make run` itself takes 3000) and the usual 8080.
DEFAULT_LOCAL_ORIGINS = (
    "http://localhost:5173,http://127.0.0.1:5173,"
    "http://localhost:3001,http://127.0.0.1:3001,"
    "http://localhost:8080,http://127.0.0.1:8080"
)


@dataclass(frozen=True)
class LocalCors:
    config: CorsConfiguration
    origins: tuple[str, ...]

    @classmethod
    def from_environment(cls, config: CorsConfiguration | None) -> LocalCors | None:
        """CORS as the deployed API would have it with these origins; None when it has none."""
        raw = os.environ.get(ORIGINS_VARIABLE, DEFAULT_LOCAL_ORIGINS)
        origins = tuple(o.strip().rstrip("/") for o in raw.split(",") if o.strip())
        if config is None or not origins:
            return None
        return cls(config, origins)

    def allowed_origin(self, origin: str | None) -> str | None:
        """The Access-Control-Allow-Origin value for `origin`, or None when it is not allowed."""
        if not origin:
            return None
        lowered = origin.lower()
        for allowed in self.origins:
            if allowed == "*":
                return "*"
            if allowed.lower() in ("https://*", "http://*"):
                if lowered.startswith(allowed.lower()[:-1]):
                    return origin
            elif allowed.lower() == lowered:
                return origin
        return None

    @staticmethod
    def is_preflight(method: str, headers: dict[str, str]) -> bool:
        return (
            method == "OPTIONS"
            and "origin" in headers
            and "access-control-request-method" in headers
        )

    def preflight_headers(self, headers: dict[str, str]) -> list[tuple[str, str]]:
        """The gateway's own answer to a preflight (204), CORS headers for allowed origins only."""
        allow_origin = self.allowed_origin(headers.get("origin"))
        if allow_origin is None:
            return []
        requested = headers.get("access-control-request-headers", "")
        allow_headers = (
            requested if "*" in self.config.allow_headers else ",".join(self.config.allow_headers)
        )
        allow_methods = (
            headers["access-control-request-method"]
            if "*" in self.config.allow_methods
            else ",".join(self.config.allow_methods)
        )
        answer = [
            ("Access-Control-Allow-Origin", allow_origin),
            ("Access-Control-Allow-Methods", allow_methods),
        ]
        if allow_headers:
            answer.append(("Access-Control-Allow-Headers", allow_headers))
        if self.config.max_age is not None:
            answer.append(("Access-Control-Max-Age", str(self.config.max_age)))
        if self.config.allow_credentials:
            answer.append(("Access-Control-Allow-Credentials", "true"))
        return answer

    def response_headers(
        self, headers: dict[str, str], response_headers: Iterable[tuple[str, str]]
    ) -> list[tuple[str, str]]:
        """The integration's headers without its own CORS headers, plus the gateway's."""
        kept = [(k, v) for k, v in response_headers if not k.lower().startswith("access-control-")]
        allow_origin = self.allowed_origin(headers.get("origin"))
        if allow_origin is None:
            return kept
        kept.append(("Access-Control-Allow-Origin", allow_origin))
        if self.config.expose_headers:
            kept.append(("Access-Control-Expose-Headers", ",".join(self.config.expose_headers)))
        if self.config.allow_credentials:
            kept.append(("Access-Control-Allow-Credentials", "true"))
        return kept
