"""Building `Link: <...>; rel="next"` headers (RFC 8288), and the API's public base URL."""

from __future__ import annotations

from urllib.parse import parse_qsl, urlencode

from aws_lambda_powertools.utilities.data_classes import APIGatewayProxyEventV2

from taskline.settings import get_settings


def next_page_link(event: APIGatewayProxyEventV2, cursor: str) -> str:
    """The same request with `cursor` replaced; the host is API Gateway's, never the client's."""
    query = [
        (k, v)
        for k, v in parse_qsl(event.raw_query_string, keep_blank_values=True)
        if k != "cursor"
    ]
    query.append(("cursor", cursor))
    scheme = event.headers.get("x-forwarded-proto", "https")
    if scheme not in ("http", "https"):
        scheme = "https"
    host = event.request_context.domain_name
    return f'<{scheme}://{host}{event.raw_path}?{urlencode(query)}>; rel="next"'


def public_base_url(event: APIGatewayProxyEventV2) -> str:
    """The API's public URL (PUBLIC_API_URL), else the host this request came to: what links
    in emails and pages point at."""
    configured = get_settings().public_api_url
    if configured:
        return configured
    # API Gateway's domain name, never the client's Host header.
    host = event.request_context.domain_name
    local = host.split(":", 1)[0] in {"localhost", "127.0.0.1"}
    return f"{'http' if local else 'https'}://{host}"
