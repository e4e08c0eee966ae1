"""Opaque keyset cursors: the (deadline, id) of the last task on a page."""

from __future__ import annotations

import base64
import binascii
import json
from datetime import UTC, datetime

from taskline.errors import InvalidQuery

MAX_CURSOR_CHARS = 200


def encode_cursor(deadline: datetime, task_id: int) -> str:
    payload = json.dumps([deadline.astimezone(UTC).isoformat(), task_id], separators=(",", ":"))
    return base64.urlsafe_b64encode(payload.encode()).decode().rstrip("=")


def decode_cursor(cursor: str) -> tuple[datetime, int]:
    """The key a cursor stands for, or InvalidQuery for anything a client could have forged."""
    if len(cursor) > MAX_CURSOR_CHARS:
        raise InvalidQuery("cursor", "The cursor is not one this API issued.")
    try:
        raw = base64.urlsafe_b64decode(cursor + "=" * (-len(cursor) % 4))
        deadline_text, task_id = json.loads(raw)
        deadline = datetime.fromisoformat(deadline_text)
    except (binascii.Error, ValueError, TypeError, UnicodeDecodeError) as error:
        raise InvalidQuery("cursor", "The cursor is not one this API issued.") from error
    if deadline.tzinfo is None or type(task_id) is not int or not 0 < task_id < 2**63:
        raise InvalidQuery("cursor", "The cursor is not one this API issued.")
    return deadline, task_id
