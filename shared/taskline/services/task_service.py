"""Task use cases, always on behalf of one caller: their personal tasks and those of the lists
they belong to (the repository checks access in the statement that reads or writes)."""

from __future__ import annotations

import hashlib
import json
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any, NamedTuple

from pydantic_core import to_jsonable_python
from sqlalchemy.exc import DBAPIError
from sqlalchemy.orm import Session

from taskline.db import (
    FOREIGN_KEY_VIOLATION,
    read_only,
    retry_if_disconnected,
    sqlstate,
    transaction,
)
from taskline.domain import (
    CREATE_TASK_OPERATION,
    WRITER_ROLES,
    TaskFilters,
    TaskStatus,
)
from taskline.errors import (
    Forbidden,
    IdempotencyKeyReused,
    InvalidQuery,
    PreconditionFailed,
    TaskNotFound,
    UnusableField,
)
from taskline.models import IdempotencyKey, Task
from taskline.pagination import decode_cursor, encode_cursor
from taskline.repositories import (
    deadline_notification_repository,
    idempotency_repository,
    task_repository,
)
from taskline.schemas import TaskCreate, TaskOut, TaskPage, TaskPatch, TaskReplace
from taskline.services import deadline_gate_service
from taskline.settings import get_settings

NOT_A_LIST = "No list you can use has this id."
NOT_A_MEMBER = "Not a member of the task's list (a personal task: only its owner)."


# What decides when a task's reminders are due (its recipient follows its list and assignee).
_RESCHEDULING_FIELDS = frozenset({"deadline", "remind_before", "status", "list_id", "assignee_id"})


def create(user_id: int, request: TaskCreate) -> TaskOut:
    # A token that outlived its account: the insert's foreign-key violation is AccountGone
    # (401), mapped where every unit of work ends (taskline.db).
    with transaction() as session:
        task = _add(session, user_id, request)
        deadline_gate_service.task_scheduled(task)
        return TaskOut.model_validate(task)


def _add(session: Session, user_id: int, request: TaskCreate) -> Task:
    """Insert the task: a personal one, or one in a list the caller may write to."""
    values = request.model_dump()
    if request.list_id is None:
        if request.assignee_id not in (None, user_id):
            raise UnusableField("assignee_id", NOT_A_MEMBER)
        return task_repository.add(session, user_id, values, _default_lead())
    created = task_repository.add_to_list(session, user_id, values, _default_lead())
    if created.role is None:
        raise UnusableField("list_id", NOT_A_LIST)
    if created.role not in WRITER_ROLES:
        raise Forbidden
    if not created.assignee_ok or created.task is None:
        raise UnusableField("assignee_id", NOT_A_MEMBER)
    return created.task


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
            task = _add(session, user_id, request)
            deadline_gate_service.task_scheduled(task)
            created = TaskOut.model_validate(task)
            sent = _created(created, headers_for)
            idempotency_repository.record(
                session, user_id, idempotency_key, sent.status, sent.headers, sent.body
            )
            idempotency_repository.purge_expired(session, ttl, _PURGE_BATCH)
            return Creation(sent, replayed=False)
        if request.list_id is None:
            stored = idempotency_repository.get(session, user_id, idempotency_key)
        else:
            found = idempotency_repository.get_with_membership(
                session, user_id, idempotency_key, request.list_id
            )
            stored = None if found is None else found[0]
            removed = found is not None and not found[1]
            if removed and stored is not None and stored.request_hash == fingerprint:
                # Removed from the list since: the replay answers what the request would answer
                # now, and the task it created stays out of sight.
                raise UnusableField("list_id", NOT_A_LIST)
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
        task = task_repository.get_visible(session, user_id, task_id)
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
        rows = task_repository.list_visible(session, user_id, filters, after, limit + 1)
    items = [TaskOut.model_validate(row) for row in rows[:limit]]
    next_cursor = None
    if len(rows) > limit:
        next_cursor = encode_cursor(items[-1].deadline, items[-1].id, scope)
    return TaskPage(items=items, next_cursor=next_cursor)


_FILTERS_ADDED_WITH_LISTS = frozenset({"list_id", "assignee"})


def listing_scope(user_id: int, filters: TaskFilters) -> bytes:
    """What a cursor is bound to: the caller and the filters (as validated, so equal filters
    spelled differently share cursors); `limit` may change from page to page.

    The filters are written in pydantic's JSON form, as when they were a pydantic model, and
    those added since (list_id, assignee) only when set, so cursors issued before keep verifying.
    `assignee=me` is bound as written: the caller is in the scope already. No membership is: a
    member removed since gets the next page without that list's tasks."""
    written = {
        name: value
        for name, value in to_jsonable_python(filters).items()
        if value is not None or name not in _FILTERS_ADDED_WITH_LISTS
    }
    canonical = json.dumps([user_id, written], sort_keys=True, separators=(",", ":"))
    return canonical.encode()


def update(
    user_id: int,
    task_id: int,
    request: TaskPatch | TaskReplace,
    versions: frozenset[datetime] | None = None,
) -> TaskOut:
    """Apply the change; with `versions` (from If-Match), only if the task is still at one of
    them. Access, version and the new list and assignee are checked in the statement that
    writes, so no other write (or a removal from the list) can slip in between."""
    changes = request.changes()
    try:
        with transaction() as session:
            if not changes:
                return TaskOut.model_validate(_unchanged(session, user_id, task_id, versions))
            written = task_repository.update_visible(
                session, user_id, task_id, changes, _default_lead(), versions
            )
            task = _written(written)
            if written.previous_recipient != (task.recipient_id or task.user_id):
                # A new recipient re-arms both stages: they were never reminded of it.
                deadline_notification_repository.forget_for_task(session, task.id, None)
            elif "deadline" in changes or "status" in changes:
                # A new deadline re-arms the deadline notifications; a Done task forgets them
                # all, so reopening it re-arms them too. Same transaction as the write.
                done = task.status is TaskStatus.DONE
                deadline_notification_repository.forget_for_task(
                    session, task.id, None if done else task.deadline
                )
            if _RESCHEDULING_FIELDS & changes.keys():
                deadline_gate_service.task_scheduled(task)  # its reminder times were recomputed
            if "remind_before" in changes and task.remind_before != written.previous_remind_before:
                # A new per-task reminder re-arms the due-soon stage (the overdue one stands).
                deadline_notification_repository.forget_due_soon(session, task.id)
            return TaskOut.model_validate(task)
    except DBAPIError as error:
        _raise_if_assignee_left(error)
        raise


def _unchanged(
    session: Session, user_id: int, task_id: int, versions: frozenset[datetime] | None
) -> Task:
    """`PATCH {}`: a write that changes nothing, answered as a write would be."""
    found = task_repository.get_with_role(session, user_id, task_id)
    if found is None:
        raise TaskNotFound
    task, role = found
    if role not in WRITER_ROLES:
        raise Forbidden
    if versions is not None and task.updated_at not in versions:
        raise PreconditionFailed
    return task


def _written(written: task_repository.Write) -> Task:
    """The task a write changed, or why it changed nothing (in the order a client can act on:
    what they cannot see, then may not change, then a stale version, then the body)."""
    if written.role is None:
        raise TaskNotFound
    if written.role not in WRITER_ROLES:
        raise Forbidden
    if not written.version_ok:
        raise PreconditionFailed
    if written.destination_role is None:
        raise UnusableField("list_id", NOT_A_LIST)
    if written.destination_role not in WRITER_ROLES:
        raise Forbidden
    if not written.assignee_ok or written.task is None:
        raise UnusableField("assignee_id", NOT_A_MEMBER)
    return written.task


def _raise_if_assignee_left(error: DBAPIError) -> None:
    # The assignee (or, on a move, the kept one) left the list while this write ran: the
    # foreign key to list_members refused it, as the check would have a moment later.
    if sqlstate(error) == FOREIGN_KEY_VIOLATION:
        raise UnusableField("assignee_id", NOT_A_MEMBER) from error


def _default_lead() -> int:
    """The lead time of accounts that never chose one (DEADLINE_DUE_SOON_MINUTES)."""
    return get_settings().deadline_due_soon_minutes


def delete(user_id: int, task_id: int, versions: frozenset[datetime] | None = None) -> None:
    with transaction() as session:  # a refusal rolls back (nothing was written either way)
        removal = task_repository.delete_visible(session, user_id, task_id, versions)
        if removal.role is None:
            raise TaskNotFound
        if removal.role not in WRITER_ROLES:
            raise Forbidden
        if not removal.deleted:
            raise PreconditionFailed
