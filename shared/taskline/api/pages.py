"""The small HTML pages links in emails open (verification, unsubscribe): no script, no style
sheet, no frame; their one form posts back to the same URL."""

from __future__ import annotations

import html

from aws_lambda_powertools.event_handler import Response

HTML = "text/html; charset=utf-8"
PAGE_HEADERS = {
    "Content-Security-Policy": "default-src 'none'; form-action 'self'; frame-ancestors 'none'",
    "Referrer-Policy": "no-referrer",  # the URL carries the token
    "X-Content-Type-Options": "nosniff",
    "Cache-Control": "no-store",
}


def page(title: str, message: str, button: str | None = None) -> Response[str]:
    """A title, a line of text and, with `button`, a form that POSTs to this URL."""
    form = (
        "<form method='post'><input type='hidden' name='confirm' value='yes'>"
        f"<button type='submit'>{html.escape(button)}</button></form>"
        if button
        else ""
    )
    body = (
        "<!DOCTYPE html><html lang='en'><head><meta charset='utf-8'>"
        "<meta name='viewport' content='width=device-width, initial-scale=1'>"
        f"<title>{html.escape(title)}</title></head><body>"
        f"<h1>{html.escape(title)}</h1><p>{html.escape(message)}</p>{form}</body></html>"
    )
    return Response(status_code=200, content_type=HTML, body=body, headers=PAGE_HEADERS)
