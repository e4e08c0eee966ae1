"""Building `Link: <...>; rel="next"` headers (RFC 8288)."""

from __future__ import annotations

from urllib.parse import parse_qsl, urlencode

from aws_lambda_powertools.utilities.data_classes import APIGatewayProxyEventV2


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
