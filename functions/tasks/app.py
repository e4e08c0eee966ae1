"""Task CRUD, every route scoped to the caller: /tasks and /tasks/{task_id}."""

from __future__ import annotations

from datetime import datetime
from typing import Annotated, Any

from aws_lambda_powertools import Logger, Metrics
from aws_lambda_powertools.event_handler import Response
from aws_lambda_powertools.event_handler.openapi.params import Body, Header, Path, Query
from aws_lambda_powertools.event_handler.openapi.types import (
    OpenAPIResponseContentModel,
    OpenAPIResponseContentSchema,
    OpenAPIResponseHeader,
)
from aws_lambda_powertools.metrics import MetricUnit
from pydantic import BaseModel, BeforeValidator

from taskline import snapstart
from taskline.api.auth import BEARER_SECURITY, current_user_id
from taskline.api.documentation import (
    ALWAYS,
    BODY_ERRORS,
    INVALID,
    NO_SUCH_TASK,
    STALE,
    UNAUTHORIZED,
    no_content,
    openapi_examples,
    problem,
)
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
from taskline.domain import TaskFilters, TaskStatus
from taskline.pagination import MAX_CURSOR_CHARS
from taskline.schemas import (
    MAX_JSON_SAFE_INTEGER,
    Category,
    IdempotencyKeyValue,
    OmittedNotNull,
    TaskCreate,
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
    OmittedNotNull(),
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
    OmittedNotNull(),
    Header(
        alias="Idempotency-Key",
        description="Optional, up to 255 visible ASCII characters (a UUID is ideal). A retry "
        "with the same key and body returns the first result (same status, body and Location) "
        "and creates nothing; the same key with another body is 422. Keys are per user and kept "
        "24 hours.",
    ),
]


def _item_links(task_id: str, *operations: str) -> dict[str, Any]:
    """OpenAPI links from a response carrying a task (and its ETag) to the operations on it,
    so clients and the fuzzer's stateful phase can chain them."""
    links: dict[str, Any] = {}
    for operation in operations:
        parameters = {"task_id": task_id}
        if operation != "getTask":
            parameters["header.If-Match"] = "$response.header.ETag"
        links[operation] = {"operationId": operation, "parameters": parameters}
    return links


WRITES = ("patchTask", "replaceTask", "deleteTask")
FROM_BODY = _item_links("$response.body#/id", "getTask", *WRITES)
FROM_PATH = _item_links("$request.path.task_id", *WRITES)
TASK: dict[str, OpenAPIResponseContentSchema | OpenAPIResponseContentModel] = {
    JSON: {"model": TaskOut}
}


def _task_body(model: type[BaseModel]) -> Any:
    return Body(openapi_examples=openapi_examples(model))


@app.post(
    "/tasks",
    status_code=201,
    operation_id="createTask",
    tags=["Tasks"],
    summary="Create a task",
    description="Creates a task of the caller. With an `Idempotency-Key`, a retry returns the "
    "first answer (with `Idempotent-Replayed: true`) and creates nothing.",
    security=BEARER_SECURITY,
    responses={
        201: {
            "description": "The task was created.",
            "headers": CREATED_HEADERS,
            "content": TASK,
            "links": FROM_BODY,
        },
        401: UNAUTHORIZED,
        422: problem(
            "The input is invalid (`errors` says where), or the Idempotency-Key was "
            "used with another body."
        ),
        **BODY_ERRORS,
        **ALWAYS,
    },
)
def create_task(
    task: Annotated[TaskCreate, _task_body(TaskCreate)], idempotency_key: IdempotencyKey = None
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
    operation_id="listTasks",
    tags=["Tasks"],
    summary="List my tasks",
    description="The caller's tasks in (deadline, id) order, a page at a time; the `Link` "
    "header gives the next page. A cursor works only with the filters it was issued for.",
    security=BEARER_SECURITY,
    responses={
        200: {
            "description": "One page of tasks.",
            "headers": PAGE_HEADERS,
            "content": {JSON: {"model": list[TaskOut]}},
        },
        401: UNAUTHORIZED,
        422: INVALID,
        **ALWAYS,
    },
)
def list_tasks(
    status: Annotated[TaskStatus | None, OmittedNotNull(), Query()] = None,
    category: Annotated[Category | None, OmittedNotNull(), Query()] = None,
    due_before: Annotated[
        Timestamp | None, OmittedNotNull(), Query(description="Deadline earlier than this.")
    ] = None,
    due_after: Annotated[
        Timestamp | None, OmittedNotNull(), Query(description="Deadline at or after this.")
    ] = None,
    limit: Annotated[int, Query(ge=1, le=100)] = 50,
    cursor: Annotated[
        str | None,
        OmittedNotNull(),
        Query(max_length=MAX_CURSOR_CHARS, description="From a Link header."),
    ] = None,
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
    operation_id="getTask",
    tags=["Tasks"],
    summary="Get a task",
    security=BEARER_SECURITY,
    responses={
        200: {
            "description": "The task.",
            "headers": ETAG_HEADER,
            "content": TASK,
            "links": FROM_PATH,
        },
        401: UNAUTHORIZED,
        404: NO_SUCH_TASK,
        422: INVALID,
        **ALWAYS,
    },
)
def get_task(task_id: TaskId) -> Response[TaskOut]:
    return _with_etag(tasks.get(current_user_id(app), task_id))


WRITE_RESPONSES = {
    401: UNAUTHORIZED,
    404: NO_SUCH_TASK,
    412: STALE,
    422: INVALID,
    **BODY_ERRORS,
    **ALWAYS,
}


@app.patch(
    "/tasks/<task_id>",
    operation_id="patchTask",
    tags=["Tasks"],
    summary="Change some fields",
    description="Changes only the fields sent; none may be null. `{}` changes nothing.",
    security=BEARER_SECURITY,
    responses={
        200: {
            "description": "The changed task.",
            "headers": ETAG_HEADER,
            "content": TASK,
            "links": FROM_PATH,
        },
        **WRITE_RESPONSES,
    },
)
def patch_task(
    task_id: TaskId, changes: Annotated[TaskPatch, _task_body(TaskPatch)], if_match: IfMatch = None
) -> Response[TaskOut]:
    versions = versions_matching(if_match, task_id)
    return _with_etag(tasks.update(current_user_id(app), task_id, changes, versions))


@app.put(
    "/tasks/<task_id>",
    operation_id="replaceTask",
    tags=["Tasks"],
    summary="Replace a task",
    description="Sets every writable field (all of them are required).",
    security=BEARER_SECURITY,
    responses={
        200: {
            "description": "The replaced task.",
            "headers": ETAG_HEADER,
            "content": TASK,
            "links": FROM_PATH,
        },
        **WRITE_RESPONSES,
    },
)
def replace_task(
    task_id: TaskId,
    task: Annotated[TaskReplace, _task_body(TaskReplace)],
    if_match: IfMatch = None,
) -> Response[TaskOut]:
    versions = versions_matching(if_match, task_id)
    return _with_etag(tasks.update(current_user_id(app), task_id, task, versions))


@app.delete(
    "/tasks/<task_id>",
    status_code=204,
    operation_id="deleteTask",
    tags=["Tasks"],
    summary="Delete a task",
    security=BEARER_SECURITY,
    responses={
        204: no_content("Deleted; no content."),
        401: UNAUTHORIZED,
        404: NO_SUCH_TASK,
        412: STALE,
        422: INVALID,
        **ALWAYS,
    },
)
def delete_task(task_id: TaskId, if_match: IfMatch = None) -> Response[None]:
    tasks.delete(current_user_id(app), task_id, versions_matching(if_match, task_id))
    return Response(status_code=204, content_type=None, body=None)


def _with_etag(task: TaskOut) -> Response[TaskOut]:
    return Response(status_code=200, content_type=JSON, body=task, headers={"ETag": etag_for(task)})


lambda_handler = lambda_entry_point(app, logger, metrics)
