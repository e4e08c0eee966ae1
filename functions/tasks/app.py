"""Task CRUD, every route scoped to the caller: /tasks and /tasks/{task_id}."""

from __future__ import annotations

from datetime import datetime
from typing import Annotated

from aws_lambda_powertools import Logger, Metrics
from aws_lambda_powertools.event_handler import Response
from aws_lambda_powertools.event_handler.openapi.params import Body, Header, Path, Query
from aws_lambda_powertools.event_handler.openapi.types import OpenAPIResponseHeader
from aws_lambda_powertools.metrics import MetricUnit
from pydantic import BeforeValidator

from taskline import snapstart
from taskline.api.auth import BEARER_SECURITY, current_user_id
from taskline.api.etags import (
    CREATED_HEADERS,
    ETAG_HEADER,
    MAX_IF_MATCH_CHARS,
    etag_for,
    etag_for_version,
    versions_matching,
)
from taskline.api.links import next_page_link
from taskline.api.resolver import JSON, TasklineResolver, lambda_entry_point
from taskline.models import TaskStatus
from taskline.schemas import (
    MAX_JSON_SAFE_INTEGER,
    Category,
    IdempotencyKeyValue,
    TaskCreate,
    TaskFilters,
    TaskOut,
    TaskPatch,
    TaskReplace,
    Timestamp,
    WithJsonSchemaExtra,
    canonical_task_id,
)
from taskline.services import tasks

logger = Logger()
metrics = Metrics()
# SnapStart: warm up before the snapshot, reconnect and reseed after a restore.
snapstart.register_hooks()
app = TasklineResolver()

# Ids stay within 2**53 - 1, the largest integer every JSON client (JavaScript's included) and
# every JSON Schema validator (which compare numbers as doubles) reads exactly.
TaskId = Annotated[
    int,
    BeforeValidator(canonical_task_id),
    WithJsonSchemaExtra(minimum=1, maximum=MAX_JSON_SAFE_INTEGER),
    Path(description="The task's id, as the API writes it."),
]
IfMatch = Annotated[
    str | None,
    Header(
        alias="If-Match",
        max_length=MAX_IF_MATCH_CHARS,
        description="Optional. The ETag from your last read (or `*`): the change is made only "
        "if the task is still at that version, else 412. Without it the write is unconditional.",
    ),
]

PAGE_HEADERS: dict[str, OpenAPIResponseHeader] = {
    "Link": {
        "description": 'The next page, as `<url>; rel="next"` (RFC 8288), when more remain.',
        "schema": {"type": "string"},
    }
}
IdempotencyKey = Annotated[
    IdempotencyKeyValue | None,
    Header(
        alias="Idempotency-Key",
        description="Optional, up to 255 visible ASCII characters (a UUID is ideal). A retry "
        "with the same key and body returns the first result (same status, body and Location) "
        "and creates nothing; the same key with another body is 422. Keys are per user and kept "
        "24 hours.",
    ),
]


@app.post(
    "/tasks",
    status_code=201,
    tags=["Tasks"],
    summary="Create a task",
    security=BEARER_SECURITY,
    responses={
        201: {
            "description": "The task was created.",
            "headers": CREATED_HEADERS,
            "content": {JSON: {"model": TaskOut}},
        }
    },
)
def create_task(
    task: Annotated[TaskCreate, Body()], idempotency_key: IdempotencyKey = None
) -> Response[str]:
    # The body is serialised once, by the service: a replay sends the first answer's bytes.
    created = tasks.create_once(current_user_id(app), task, idempotency_key, _created_headers)
    headers = dict(created.response.headers)
    if created.replayed:
        headers["Idempotent-Replayed"] = "true"
    else:
        metrics.add_metric(name="TaskCreated", unit=MetricUnit.Count, value=1)
    return Response(
        status_code=created.response.status,
        content_type=JSON,
        body=created.response.body,
        headers=headers,
    )


def _created_headers(task_id: int, updated_at: datetime) -> dict[str, str]:
    return {"Location": f"/tasks/{task_id}", "ETag": etag_for_version(task_id, updated_at)}


@app.get(
    "/tasks",
    tags=["Tasks"],
    summary="List my tasks",
    security=BEARER_SECURITY,
    responses={200: {"description": "One page of tasks.", "headers": PAGE_HEADERS}},
)
def list_tasks(
    status: Annotated[TaskStatus | None, Query()] = None,
    category: Annotated[Category | None, Query()] = None,
    due_before: Annotated[
        Timestamp | None, Query(description="Deadline earlier than this.")
    ] = None,
    due_after: Annotated[Timestamp | None, Query(description="Deadline at or after this.")] = None,
    limit: Annotated[int, Query(ge=1, le=100)] = 50,
    cursor: Annotated[str | None, Query(max_length=200, description="From a Link header.")] = None,
) -> Response[list[TaskOut]]:
    filters = TaskFilters(
        status=status, category=category, due_before=due_before, due_after=due_after
    )
    page = tasks.list_page(current_user_id(app), filters, limit, cursor)
    headers = (
        {"Link": next_page_link(app.current_event, page.next_cursor)} if page.next_cursor else None
    )
    return Response(status_code=200, content_type=JSON, body=page.items, headers=headers)


@app.get(
    "/tasks/<task_id>",
    tags=["Tasks"],
    summary="Get a task",
    security=BEARER_SECURITY,
    responses={200: {"description": "The task.", "headers": ETAG_HEADER}},
)
def get_task(task_id: TaskId) -> Response[TaskOut]:
    return _with_etag(tasks.get(current_user_id(app), task_id))


@app.patch(
    "/tasks/<task_id>",
    tags=["Tasks"],
    summary="Change some fields",
    security=BEARER_SECURITY,
    responses={200: {"description": "The changed task.", "headers": ETAG_HEADER}},
)
def patch_task(
    task_id: TaskId, changes: Annotated[TaskPatch, Body()], if_match: IfMatch = None
) -> Response[TaskOut]:
    versions = versions_matching(if_match, task_id)
    return _with_etag(tasks.update(current_user_id(app), task_id, changes, versions))


@app.put(
    "/tasks/<task_id>",
    tags=["Tasks"],
    summary="Replace a task",
    security=BEARER_SECURITY,
    responses={200: {"description": "The replaced task.", "headers": ETAG_HEADER}},
)
def replace_task(
    task_id: TaskId, task: Annotated[TaskReplace, Body()], if_match: IfMatch = None
) -> Response[TaskOut]:
    versions = versions_matching(if_match, task_id)
    return _with_etag(tasks.update(current_user_id(app), task_id, task, versions))


@app.delete(
    "/tasks/<task_id>",
    status_code=204,
    tags=["Tasks"],
    summary="Delete a task",
    security=BEARER_SECURITY,
)
def delete_task(task_id: TaskId, if_match: IfMatch = None) -> Response[None]:
    tasks.delete(current_user_id(app), task_id, versions_matching(if_match, task_id))
    return Response(status_code=204, content_type=None, body=None)


def _with_etag(task: TaskOut) -> Response[TaskOut]:
    return Response(status_code=200, content_type=JSON, body=task, headers={"ETag": etag_for(task)})


lambda_handler = lambda_entry_point(app, logger, metrics)
