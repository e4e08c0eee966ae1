"""Task use cases, always on behalf of one owner."""

from __future__ import annotations

import hashlib
import json
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any, NamedTuple

from pydantic_core import to_jsonable_python
from sqlalchemy.orm import Session

from taskline.db import read_only, retry_if_disconnected, transaction
from taskline.domain import CREATE_TASK_OPERATION, TaskFilters, TaskStatus
from taskline.errors import (
    IdempotencyKeyReused,
    InvalidQuery,
    PreconditionFailed,
    TaskNotFound,
)
from taskline.models import IdempotencyKey
from taskline.pagination import decode_cursor, encode_cursor
from taskline.repositories import (
    deadline_notification_repository,
    idempotency_repository,
    task_repository,
)
from taskline.schemas import TaskCreate, TaskOut, TaskPage, TaskPatch, TaskReplace
from taskline.services import deadline_gate_service
from taskline.settings import get_settings


def create(user_id: int, request: TaskCreate) -> TaskOut:
    # A token that outlived its account: the insert's foreign-key violation is AccountGone
    # (401), mapped where every unit of work ends (taskline.db).
    with transaction() as session:
        task = task_repository.add(session, user_id, request.model_dump(), _default_lead())
        deadline_gate_service.task_scheduled(task)
        return TaskOut.model_validate(task)


def _fingerprint(request: TaskCreate) -> str:
    """What a retry must repeat: the operation and what the client asked for, as validated (so
    key order, whitespace around text and the offset of an equal instant make no difference).

    Fields left at their default are left out, whether omitted or spelled out: a deploy that
    adds a field with a default does not change the fingerprint of a request that lacks it.
    """
    return _hash(request.model_dump(mode="json", exclude_defaults=True))


# The fields of TaskCreate when fingerprints included every field, defaults too (before
# migration 0005). Keys stored then are honoured until they expire (IDEMPOTENCY_KEY_TTL_SECONDS
# after the deploy); this and its use can go after that.
_LEGACY_FINGERPRINT_FIELDS = frozenset({"description", "category", "deadline", "status"})


def _legacy_fingerprint(request: TaskCreate) -> str:
    return _hash(request.model_dump(mode="json", include=set(_LEGACY_FINGERPRINT_FIELDS)))


def _hash(fields: dict[str, Any]) -> str:
    canonical = json.dumps([CREATE_TASK_OPERATION, fields], sort_keys=True, separators=(",", ":"))
    return hashlib.sha256(canonical.encode()).hexdigest()


@dataclass(frozen=True)
class SentResponse:
    """A response as it went out (status, headers, body text), to be replayed unchanged."""

    status: int
    headers: dict[str, str]
    body: str


class Creation(NamedTuple):
    response: SentResponse
    replayed: bool  # True when this is the stored result of an earlier request with the key


# Expired keys are purged a batch at a time by the creates that bring new keys.
_PURGE_BATCH = 100


def create_once(
    user_id: int,
    request: TaskCreate,
    idempotency_key: str | None,
    headers_for: Callable[[int, datetime], dict[str, str]],
) -> Creation:
    """Create the task and answer 201 with it and `headers_for(id, updated_at)`; or, with an
    Idempotency-Key, answer what the first request with that key was answered, as it was
    sent: exactly one task per key and owner, however many retries, concurrent or not, and
    across deploys (a stored response is never rebuilt from today's schemas).

    The key is claimed, the task inserted and the response stored in one transaction, so a
    failure leaves no trace and the key can be retried; a concurrent request with the same key
    waits for the first one and then gets its result.
    """
    if idempotency_key is None:
        return Creation(_created(create(user_id, request), headers_for), replayed=False)
    ttl = timedelta(seconds=get_settings().idempotency_key_ttl_seconds)
    fingerprint = _fingerprint(request)
    with transaction() as session:
        if idempotency_repository.claim(session, user_id, idempotency_key, fingerprint, ttl):
            task = task_repository.add(session, user_id, request.model_dump(), _default_lead())
            deadline_gate_service.task_scheduled(task)
            created = TaskOut.model_validate(task)
            sent = _created(created, headers_for)
            idempotency_repository.record(
                session, user_id, idempotency_key, sent.status, sent.headers, sent.body
            )
            idempotency_repository.purge_expired(session, ttl, _PURGE_BATCH)
            return Creation(sent, replayed=False)
        stored = idempotency_repository.get(session, user_id, idempotency_key)
    if stored is None:  # claim() returns False only for a live key
        raise RuntimeError("an idempotency key was claimed without its result")
    if stored.request_hash not in (fingerprint, _legacy_fingerprint(request)):
        raise IdempotencyKeyReused
    return Creation(_as_sent(stored, headers_for), replayed=True)


def _created(task: TaskOut, headers_for: Callable[[int, datetime], dict[str, str]]) -> SentResponse:
    return SentResponse(201, headers_for(task.id, task.updated_at), task.model_dump_json())


def _as_sent(
    stored: IdempotencyKey, headers_for: Callable[[int, datetime], dict[str, str]]
) -> SentResponse:
    if stored.response_status is not None and stored.response_body is not None:
        return SentResponse(
            stored.response_status, dict(stored.response_headers or {}), stored.response_body
        )
    if stored.response is None:
        raise RuntimeError("an idempotency key was claimed without its result")
    # Stored before migration 0005: the task as JSON, replayed as it is (never re-validated),
    # with the headers the first answer had.
    task = stored.response
    headers = headers_for(int(task["id"]), datetime.fromisoformat(str(task["updated_at"])))
    return SentResponse(201, headers, json.dumps(task, separators=(",", ":")))


@retry_if_disconnected
def get(user_id: int, task_id: int) -> TaskOut:
    with read_only() as session:
        task = task_repository.get_for_owner(session, user_id, task_id)
        if task is None:
            raise TaskNotFound
        return TaskOut.model_validate(task)


@retry_if_disconnected
def list_page(user_id: int, filters: TaskFilters, limit: int, cursor: str | None) -> TaskPage:
    if filters.due_before and filters.due_after and filters.due_after >= filters.due_before:
        raise InvalidQuery("due_after", "due_after must be earlier than due_before.")
    scope = listing_scope(user_id, filters)
    after = decode_cursor(cursor, scope) if cursor else None
    with read_only() as session:
        # One row more than asked tells whether another page exists, without a COUNT.
        rows = task_repository.list_for_owner(session, user_id, filters, after, limit + 1)
    items = [TaskOut.model_validate(row) for row in rows[:limit]]
    next_cursor = None
    if len(rows) > limit:
        next_cursor = encode_cursor(items[-1].deadline, items[-1].id, scope)
    return TaskPage(items=items, next_cursor=next_cursor)


def listing_scope(user_id: int, filters: TaskFilters) -> bytes:
    """What a cursor is bound to: the caller and the filters (as validated, so equal filters
    spelled differently share cursors); `limit` may change from page to page.

    The filters are written in pydantic's JSON form, as when they were a pydantic model, so
    cursors issued before keep verifying."""
    canonical = json.dumps(
        [user_id, to_jsonable_python(filters)], sort_keys=True, separators=(",", ":")
    )
    return canonical.encode()


def update(
    user_id: int,
    task_id: int,
    request: TaskPatch | TaskReplace,
    versions: frozenset[datetime] | None = None,
) -> TaskOut:
    """Apply the change; with `versions` (from If-Match), only if the task is still at one of
    them, checked and written in one statement so no other write can slip in between."""
    changes = request.changes() if isinstance(request, TaskPatch) else request.model_dump()
    with transaction() as session:
        previous_remind_before: int | None = None
        if changes:
            updated = task_repository.update_for_owner(
                session, user_id, task_id, changes, _default_lead(), versions
            )
            task = None if updated is None else updated[0]
            previous_remind_before = None if updated is None else updated[1]
        else:
            task = task_repository.get_for_owner(session, user_id, task_id)
            if task is not None and versions is not None and task.updated_at not in versions:
                task = None
        if task is None:
            raise _missing_or_changed(session, user_id, task_id, versions)
        if "deadline" in changes or "status" in changes:
            # A new deadline re-arms the deadline notifications; a Done task forgets them all,
            # so reopening it re-arms them too. Same transaction as the write.
            done = task.status is TaskStatus.DONE
            deadline_notification_repository.forget_for_task(
                session, task.id, None if done else task.deadline
            )
        if {"deadline", "remind_before", "status"} & changes.keys():
            deadline_gate_service.task_scheduled(task)  # its reminder times were recomputed
        if "remind_before" in changes and task.remind_before != previous_remind_before:
            # A new per-task reminder re-arms the due-soon stage (the overdue one stands).
            deadline_notification_repository.forget_due_soon(session, task.id)
        return TaskOut.model_validate(task)


def _default_lead() -> int:
    """The lead time of accounts that never chose one (DEADLINE_DUE_SOON_MINUTES)."""
    return get_settings().deadline_due_soon_minutes


def delete(user_id: int, task_id: int, versions: frozenset[datetime] | None = None) -> None:
    with transaction() as session:
        if not task_repository.delete_for_owner(session, user_id, task_id, versions):
            raise _missing_or_changed(session, user_id, task_id, versions)


def _missing_or_changed(
    session: Session, user_id: int, task_id: int, versions: frozenset[datetime] | None
) -> TaskNotFound | PreconditionFailed:
    """Why a conditional write touched nothing: no such task (of this owner), or a newer one."""
    if (
        versions is not None
        and task_repository.get_for_owner(session, user_id, task_id) is not None
    ):
        return PreconditionFailed()
    return TaskNotFound()
