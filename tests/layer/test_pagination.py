"""Keyset cursors: opaque, round-trip exactly, bound to a scope, and anything forged (or issued
for another scope) is a 422-worthy InvalidQuery."""

from __future__ import annotations

import base64
import json
from datetime import UTC, datetime, timedelta, timezone

import pytest

from taskline.errors import InvalidQuery
from taskline.pagination import CURSOR_CHARS, MAX_CURSOR_CHARS, decode_cursor, encode_cursor

SCOPE = b'[7,{"category":null}]'


def _unsigned(payload: object) -> str:
    """A cursor as the API used to issue them: base64url JSON, no MAC."""
    return base64.urlsafe_b64encode(json.dumps(payload).encode()).decode().rstrip("=")


def _flip(cursor: str, index: int) -> str:
    raw = bytearray(base64.urlsafe_b64decode(cursor + "=" * (-len(cursor) % 4)))
    raw[index] ^= 0x01
    return base64.urlsafe_b64encode(bytes(raw)).decode().rstrip("=")


def test_round_trip_keeps_microseconds_and_id() -> None:
    deadline = datetime(2030, 1, 15, 9, 0, 0, 123456, tzinfo=UTC)
    assert decode_cursor(encode_cursor(deadline, 981, SCOPE), SCOPE) == (deadline, 981)


@pytest.mark.parametrize(
    "deadline",
    [datetime(1, 1, 1, tzinfo=UTC), datetime(9999, 12, 31, 23, 59, 59, 999999, tzinfo=UTC)],
)
def test_round_trip_at_the_ends_of_the_range(deadline: datetime) -> None:
    assert decode_cursor(encode_cursor(deadline, 2**63 - 1, SCOPE), SCOPE) == (
        deadline,
        2**63 - 1,
    )


def test_offsets_are_normalised_to_utc() -> None:
    deadline = datetime(2030, 1, 15, 10, 0, tzinfo=timezone(timedelta(hours=1)))
    decoded, _ = decode_cursor(encode_cursor(deadline, 1, SCOPE), SCOPE)
    assert decoded == deadline
    assert decoded.utcoffset() == timedelta(0)


def test_cursor_is_url_safe_and_short() -> None:
    cursor = encode_cursor(datetime(2030, 1, 15, tzinfo=UTC), 2**63 - 1, SCOPE)
    assert set(cursor) <= set("ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_")
    assert len(cursor) == CURSOR_CHARS <= MAX_CURSOR_CHARS


def test_a_cursor_is_valid_only_for_its_scope() -> None:
    cursor = encode_cursor(datetime(2030, 1, 15, tzinfo=UTC), 5, SCOPE)
    with pytest.raises(InvalidQuery):
        decode_cursor(cursor, b'[8,{"category":null}]')
    with pytest.raises(InvalidQuery):
        decode_cursor(cursor, SCOPE + b" ")


@pytest.mark.parametrize("index", range(33))
def test_any_altered_byte_is_refused(index: int) -> None:
    cursor = encode_cursor(datetime(2030, 1, 15, tzinfo=UTC), 5, SCOPE)
    with pytest.raises(InvalidQuery):
        decode_cursor(_flip(cursor, index), SCOPE)


@pytest.mark.parametrize(
    "cursor",
    [
        "",
        "abc",
        "!!!!",
        "a" * CURSOR_CHARS,
        "é" * CURSOR_CHARS,
        "a" * (MAX_CURSOR_CHARS + 1),
        base64.urlsafe_b64encode(b"\xff\xfe\x00").decode(),
        # What the API issued before cursors were signed, including the values that made the
        # driver's date conversion overflow (a 500) and the ones it took as real positions.
        _unsigned(["9999-12-31T23:00:00-05:00", 1]),
        _unsigned(["0001-01-01T00:30:00+01:00", 1]),
        _unsigned(["2030-01-15T09:00:00+00:00", 1]),
        _unsigned(["2030-01-15T09:00:00+00:00", 0]),
    ],
    ids=repr,
)
def test_forged_cursors_are_invalid(cursor: str) -> None:
    with pytest.raises(InvalidQuery) as raised:
        decode_cursor(cursor, SCOPE)
    assert raised.value.parameter == "cursor"
