"""Opaque keyset cursors: the (deadline, id) of the last task on a page, tamper-evident.

A cursor is base64url (no padding) of a version byte, the key (deadline in microseconds since
the epoch, task id) and an HMAC-SHA256 (truncated to 128 bits, as RFC 2104 section 5 allows)
over that key and the listing's scope: the user and the filters it was issued for. So a
cursor is accepted only for the caller and the filters it came with, and nothing a client
makes up reaches the database. The MAC key is derived from each JWT signing key with a label
of its own (never the signing key itself): the current key signs, previous keys still verify,
so cursors survive a key rotation exactly as long as access tokens do.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import hmac
import struct
from datetime import UTC, datetime, timedelta
from functools import lru_cache

from taskline.domain import TaskPosition
from taskline.errors import InvalidQuery
from taskline.security.tokens import SigningKey, signing_keys

MAX_CURSOR_CHARS = 200
CURSOR_VERSION = 1
_KEY_LABEL = b"taskline cursor mac key v1"
_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)
_POSITION = struct.Struct(">BqQ")  # version, deadline (microseconds since the epoch), task id
_MAC_BYTES = 16
_CURSOR_BYTES = _POSITION.size + _MAC_BYTES
CURSOR_CHARS = len(base64.urlsafe_b64encode(bytes(_CURSOR_BYTES)).rstrip(b"="))
_NOT_OURS = "The cursor is not one this API issued for this listing."


@lru_cache(maxsize=4)
def _mac_keys(keys: tuple[SigningKey, ...]) -> tuple[bytes, ...]:
    return tuple(hmac.new(key.secret, _KEY_LABEL, hashlib.sha256).digest() for key in keys)


def _mac(mac_key: bytes, position: bytes, scope: bytes) -> bytes:
    # The position has a fixed length, so position + scope cannot be read two ways.
    return hmac.new(mac_key, position + scope, hashlib.sha256).digest()[:_MAC_BYTES]


def encode_cursor(deadline: datetime, task_id: int, scope: bytes) -> str:
    """The cursor for the page after (deadline, task_id), valid only for `scope`."""
    micros = (deadline - _EPOCH) // timedelta(microseconds=1)
    position = _POSITION.pack(CURSOR_VERSION, micros, task_id)
    mac = _mac(_mac_keys(signing_keys())[0], position, scope)
    return base64.urlsafe_b64encode(position + mac).decode().rstrip("=")


def decode_cursor(cursor: str, scope: bytes) -> TaskPosition:
    """The key a cursor stands for, or InvalidQuery for anything this API did not issue for
    `scope` (another user, other filters, a forged or altered value)."""
    if len(cursor) != CURSOR_CHARS or not cursor.isascii():
        raise InvalidQuery("cursor", _NOT_OURS)
    try:
        raw = base64.urlsafe_b64decode(cursor + "=" * (-len(cursor) % 4))
    except (binascii.Error, ValueError) as error:
        raise InvalidQuery("cursor", _NOT_OURS) from error
    if len(raw) != _CURSOR_BYTES:
        raise InvalidQuery("cursor", _NOT_OURS)
    position, mac = raw[: _POSITION.size], raw[_POSITION.size :]
    if not any(
        hmac.compare_digest(mac, _mac(key, position, scope)) for key in _mac_keys(signing_keys())
    ):
        raise InvalidQuery("cursor", _NOT_OURS)
    version, micros, task_id = _POSITION.unpack(position)
    try:
        deadline = _EPOCH + timedelta(microseconds=micros)
    except OverflowError as error:  # only a leaked key could sign this; still never a 500
        raise InvalidQuery("cursor", _NOT_OURS) from error
    if version != CURSOR_VERSION or not 0 < task_id < 2**63:
        raise InvalidQuery("cursor", _NOT_OURS)
    return TaskPosition(deadline, task_id)
