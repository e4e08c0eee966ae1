"""Queries on idempotency keys. Keys are scoped to their owner; expired ones count as absent."""

from __future__ import annotations

from datetime import timedelta

from sqlalchemy import delete, exists, func, select, tuple_, update
from sqlalchemy.dialects.postgresql import insert
from sqlalchemy.orm import Session

from taskline.models import IdempotencyKey, ListMember


def claim(session: Session, user_id: int, key: str, request_hash: str, ttl: timedelta) -> bool:
    """Take the key for this request: insert it, or take over an expired one. False when a live
    key exists; it is then committed, with its result, because a concurrent insert of the same
    key waits for the first transaction to finish (and proceeds if that one rolled back)."""
    statement = insert(IdempotencyKey).values(user_id=user_id, key=key, request_hash=request_hash)
    statement = statement.on_conflict_do_update(
        index_elements=[IdempotencyKey.user_id, IdempotencyKey.key],
        set_={
            "request_hash": statement.excluded.request_hash,
            "response": None,
            "created_at": func.now(),
        },
        where=IdempotencyKey.created_at <= func.now() - ttl,
    )
    return session.execute(statement.returning(IdempotencyKey.key)).first() is not None


def get(session: Session, user_id: int, key: str) -> IdempotencyKey | None:
    return session.get(IdempotencyKey, (user_id, key))


def get_with_membership(
    session: Session, user_id: int, key: str, list_id: int
) -> tuple[IdempotencyKey, bool] | None:
    """The key's stored result and whether its owner is (still) a member of `list_id`, read
    together: a replay must not hand a list's task to someone removed from it since."""
    member = exists().where(ListMember.list_id == list_id, ListMember.user_id == user_id)
    statement = select(IdempotencyKey, member).where(
        IdempotencyKey.user_id == user_id, IdempotencyKey.key == key
    )
    row = session.execute(statement).one_or_none()
    return None if row is None else (row[0], bool(row[1]))


def record(
    session: Session, user_id: int, key: str, status: int, headers: dict[str, str], body: str
) -> None:
    """Keep the first response as it was sent."""
    session.execute(
        update(IdempotencyKey)
        .where(IdempotencyKey.user_id == user_id, IdempotencyKey.key == key)
        .values(response_status=status, response_headers=headers, response_body=body)
    )


def purge_expired(session: Session, ttl: timedelta, limit: int) -> int:
    """Delete up to `limit` expired keys of any owner, skipping rows other transactions hold."""
    expired = (
        select(IdempotencyKey.user_id, IdempotencyKey.key)
        .where(IdempotencyKey.created_at <= func.now() - ttl)
        .limit(limit)
        .with_for_update(skip_locked=True)
    )
    statement = (
        delete(IdempotencyKey)
        .where(tuple_(IdempotencyKey.user_id, IdempotencyKey.key).in_(expired))
        .returning(IdempotencyKey.key)
    )
    return len(session.scalars(statement).all())
