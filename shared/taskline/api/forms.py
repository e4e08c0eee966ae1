"""The one-click unsubscribe body (RFC 8058 section 3.1): a form or multipart/form-data.

Parsed here with bounded work, not with `email.parser`: that parser follows nested multipart
bodies recursively, so a deeply nested body (sent to any `/unsubscribe/...` URL, no sign-in
needed) cost seconds of CPU and ended in RecursionError (issue 19, item 4). The body is small
by nature (`List-Unsubscribe=One-Click`), so its size and number of parts are bounded, and only
the top level is read: a nested multipart part is just a part whose name is not the field.
"""

from __future__ import annotations

from email.message import Message
from urllib.parse import parse_qs

from taskline.errors import MalformedForm, PayloadTooLarge

MULTIPART = "multipart/form-data"
# A one-click body is under 300 bytes as any mail client sends it; a few KiB leaves room for
# extra fields and headers, and bounds the work below.
MAX_ONE_CLICK_BODY_CHARS = 8 * 1024
MAX_FORM_PARTS = 16
MAX_BOUNDARY_CHARS = 70  # RFC 2046 section 5.1.1


def _param(header_value: str, name: str) -> str | None:
    """A parameter of a header value (`boundary`, `name`), without parsing any body."""
    header = Message()
    header["Content-Type"] = header_value
    value = header.get_param(name, header="content-type")
    return value if isinstance(value, str) else None


def field_values(content_type: str, media_type: str | None, body: str, field: str) -> list[str]:
    """Every value of `field` in a form or multipart/form-data body (top level only).
    PayloadTooLarge over MAX_ONE_CLICK_BODY_CHARS, MalformedForm for a multipart body without a
    usable boundary or with more than MAX_FORM_PARTS parts."""
    if len(body) > MAX_ONE_CLICK_BODY_CHARS:
        raise PayloadTooLarge(f"The body must be at most {MAX_ONE_CLICK_BODY_CHARS} bytes.")
    if media_type != MULTIPART:
        return parse_qs(body, keep_blank_values=True, max_num_fields=MAX_FORM_PARTS).get(field, [])
    boundary = _param(content_type, "boundary")
    if not boundary or len(boundary) > MAX_BOUNDARY_CHARS:
        raise MalformedForm("multipart/form-data needs a boundary of 1 to 70 characters.")
    sections = body.split(f"--{boundary}")
    parts = []
    for section in sections[1:]:
        if section.startswith("--"):  # the close delimiter; the epilogue follows
            break
        parts.append(section)
    if len(parts) > MAX_FORM_PARTS:
        raise MalformedForm(f"A form may have at most {MAX_FORM_PARTS} parts.")
    values = []
    for part in parts:
        head, separator, content = part.removeprefix("\r\n").partition("\r\n\r\n")
        if not separator:
            continue
        for line in head.split("\r\n"):
            name, _, value = line.partition(":")
            if name.strip().lower() == "content-disposition" and _param(value, "name") == field:
                values.append(content.removesuffix("\r\n").strip())
    return values
