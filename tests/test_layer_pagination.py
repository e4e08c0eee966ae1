"""Keyset cursors: opaque, round-trip exactly, and anything forged is a 422-worthy InvalidQuery."""

from __future__ import annotations

import base64
import json
from datetime import UTC, datetime, timedelta, timezone

import pytest

from taskline.errors import InvalidQuery
from taskline.pagination import MAX_CURSOR_CHARS, decode_cursor, encode_cursor


def _cursor(payload: object) -> str:
    return base64.urlsafe_b64encode(json.dumps(payload).encode()).decode().rstrip("=")


def test_round_trip_keeps_microseconds_and_id() -> None:
    deadline = datetime(2030, 1, 15, 9, 0, 0, 123456, tzinfo=UTC)
    assert decode_cursor(encode_cursor(deadline, 981)) == (deadline, 981)


def test_offsets_are_normalised_to_utc() -> None:
    deadline = datetime(2030, 1, 15, 10, 0, tzinfo=timezone(timedelta(hours=1)))
    decoded, _ = decode_cursor(encode_cursor(deadline, 1))
    assert decoded == deadline
    assert decoded.utcoffset() == timedelta(0)


def test_cursor_is_url_safe_and_short() -> None:
    cursor = encode_cursor(datetime(2030, 1, 15, tzinfo=UTC), 2**63 - 1)
    assert set(cursor) <= set("ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_")
    assert len(cursor) <= MAX_CURSOR_CHARS


@pytest.mark.parametrize(
    "cursor",
    [
        "",
        "abc",
        "!!!!",
        "a" * (MAX_CURSOR_CHARS + 1),
        base64.urlsafe_b64encode(b"\xff\xfe\x00").decode(),
        _cursor("not a list"),
        _cursor([]),
        _cursor(["2030-01-15T09:00:00+00:00"]),
        _cursor(["2030-01-15T09:00:00+00:00", 1, 2]),
        _cursor(["2030-01-15T09:00:00", 1]),  # no offset
        _cursor(["not a date", 1]),
        _cursor([12345, 1]),
        _cursor([["2030-01-15"], 1]),
        _cursor(["2030-01-15T09:00:00+00:00", 0]),
        _cursor(["2030-01-15T09:00:00+00:00", -5]),
        _cursor(["2030-01-15T09:00:00+00:00", 2**63]),
        _cursor(["2030-01-15T09:00:00+00:00", 1.5]),
        _cursor(["2030-01-15T09:00:00+00:00", True]),
        _cursor(["2030-01-15T09:00:00+00:00", "7"]),
        _cursor(["2030-01-15T09:00:00+00:00", None]),
        _cursor(None),
        _cursor({"deadline": "2030-01-15T09:00:00+00:00", "id": 1}),
        base64.urlsafe_b64encode(b'["2030-01-15T09:00:00+00:00", NaN]').decode(),
        base64.urlsafe_b64encode(b"[" * 100).decode(),
    ],
    ids=repr,
)
def test_forged_cursors_are_invalid(cursor: str) -> None:
    with pytest.raises(InvalidQuery) as raised:
        decode_cursor(cursor)
    assert raised.value.parameter == "cursor"
