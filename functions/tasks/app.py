"""Task CRUD, every route scoped to the caller: /tasks and /tasks/{task_id}."""

from __future__ import annotations

from datetime import datetime
from typing import Annotated, Any

from aws_lambda_powertools.event_handler import Response
from aws_lambda_powertools.event_handler.openapi.params import Header, Path, Query
from aws_lambda_powertools.event_handler.openapi.types import OpenAPIResponseHeader
from aws_lambda_powertools.metrics import MetricUnit
from pydantic import BeforeValidator

from taskline.api.auth import SignedIn, current_user_id
from taskline.api.documentation import (
    NO_SUCH_TASK,
    STALE,
    RouteOptions,
    Routes,
    example_body,
    problem,
    returns,
)
from taskline.api.etags import (
    CREATED_HEADERS,
    ETAG_HEADER,
    MAX_IF_MATCH_CHARS,
    etag_for,
    etag_for_version,
    versions_matching,
)
from taskline.api.function import http_function
from taskline.api.links import next_page_link
from taskline.api.resolver import JSON, lambda_entry_point
from taskline.domain import ASSIGNEE_ME, ASSIGNEE_NONE, PERSONAL, TaskFilters, TaskStatus
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
from taskline.services import task_service

app, logger, metrics = http_function()

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

# A list or user id in a query: canonical, within JSON's safe integers (as task ids are).
ID_PATTERN = "[1-9][0-9]{0,15}"


def _id_or(*words: str) -> Any:
    """A query value that is one of `words` or a canonical id within JSON's safe range."""

    def check(value: Any) -> Any:
        if isinstance(value, str) and value not in words:
            canonical_task_id(value)  # raises for a non-canonical or out-of-range id
        return value

    return check


def _as_choice(value: str | None) -> Any:
    return int(value) if value is not None and value.isdigit() else value


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


def _task_returned(description: str) -> Any:
    """A 200 carrying the task at the path, its ETag and the links to the writes on it."""
    return returns(description, TaskOut, headers=ETAG_HEADER, links=FROM_PATH)


# A viewer of the task's list (or of the list a move goes to) writing.
ROLE_TOO_LOW = problem(
    "Your role in the list does not allow this (`urn:taskline:problem:forbidden`)."
)

routes = Routes(app, "Tasks", signed_in=SignedIn.TOKEN)


@routes.route(
    "POST",
    "/tasks",
    "createTask",
    "Create a task",
    {201: returns("The task was created.", TaskOut, headers=CREATED_HEADERS, links=FROM_BODY)},
    description="Creates a personal task of the caller, or a task in a list (`list_id`) where "
    "the caller is the owner or an editor. With an `Idempotency-Key`, a retry returns the "
    "first answer (with `Idempotent-Replayed: true`) and creates nothing.",
    invalid=problem(
        "The input is invalid (`errors` says where), the list or assignee is not one you can "
        "use, or the Idempotency-Key was used with another body."
    ),
    errors={403: ROLE_TOO_LOW},
    body="json",
)
def create_task(
    task: Annotated[TaskCreate, example_body(TaskCreate)], idempotency_key: IdempotencyKey = None
) -> Response[str]:
    # The body is serialised once, by the service: a replay sends the first answer's bytes.
    created = task_service.create_once(
        current_user_id(app), task, idempotency_key, _created_headers
    )
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


@routes.route(
    "GET",
    "/tasks",
    "listTasks",
    "List my tasks",
    {200: returns("One page of tasks.", list[TaskOut], headers=PAGE_HEADERS)},
    description="The tasks the caller can see (their personal tasks and those of every list "
    "they belong to) in (deadline, id) order, a page at a time; the `Link` header gives the "
    "next page. A cursor works only with the filters it was issued for.",
    invalid=True,
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
    list_id: Annotated[
        str | None,
        OmittedNotNull(),
        BeforeValidator(_id_or(PERSONAL)),
        Query(
            pattern=f"^({PERSONAL}|{ID_PATTERN})$",
            description="A list's id (only its tasks), or `personal` (only your own).",
        ),
    ] = None,
    assignee: Annotated[
        str | None,
        OmittedNotNull(),
        BeforeValidator(_id_or(ASSIGNEE_ME, ASSIGNEE_NONE)),
        Query(
            pattern=f"^({ASSIGNEE_ME}|{ASSIGNEE_NONE}|{ID_PATTERN})$",
            description="`me`, `none` (unassigned) or a user id.",
        ),
    ] = None,
) -> Response[list[TaskOut]]:
    filters = TaskFilters(
        status=status,
        category=category,
        due_before=due_before,
        due_after=due_after,
        list_id=_as_choice(list_id),
        assignee=_as_choice(assignee),
    )
    page = task_service.list_page(current_user_id(app), filters, limit, cursor)
    headers = (
        {"Link": next_page_link(app.current_event, page.next_cursor)} if page.next_cursor else None
    )
    return Response(status_code=200, content_type=JSON, body=page.items, headers=headers)


@routes.route(
    "GET",
    "/tasks/<task_id>",
    "getTask",
    "Get a task",
    {200: _task_returned("The task.")},
    errors={404: NO_SUCH_TASK},
    invalid=True,
)
def get_task(task_id: TaskId) -> Response[TaskOut]:
    return _with_etag(task_service.get(current_user_id(app), task_id))


# What a write to /tasks/{task_id} may answer besides its success.
WRITE_ERRORS = {403: ROLE_TOO_LOW, 404: NO_SUCH_TASK, 412: STALE}
# The rest of what PATCH and PUT declare: they differ only in how much of the task they take.
WRITE: RouteOptions = {
    "errors": WRITE_ERRORS,
    "invalid": True,
    "body": "json",
}


@routes.route(
    "PATCH",
    "/tasks/<task_id>",
    "patchTask",
    "Change some fields",
    {200: _task_returned("The changed task.")},
    description="Changes only the fields sent; none may be null. `{}` changes nothing.",
    **WRITE,
)
def patch_task(
    task_id: TaskId,
    changes: Annotated[TaskPatch, example_body(TaskPatch)],
    if_match: IfMatch = None,
) -> Response[TaskOut]:
    return _update(task_id, changes, if_match)


@routes.route(
    "PUT",
    "/tasks/<task_id>",
    "replaceTask",
    "Replace a task",
    {200: _task_returned("The replaced task.")},
    description="Sets every writable field (all of them are required).",
    **WRITE,
)
def replace_task(
    task_id: TaskId,
    task: Annotated[TaskReplace, example_body(TaskReplace)],
    if_match: IfMatch = None,
) -> Response[TaskOut]:
    return _update(task_id, task, if_match)


@routes.route(
    "DELETE",
    "/tasks/<task_id>",
    "deleteTask",
    "Delete a task",
    {204: returns("Deleted; no content.")},
    errors=WRITE_ERRORS,
    invalid=True,
)
def delete_task(task_id: TaskId, if_match: IfMatch = None) -> Response[None]:
    task_service.delete(current_user_id(app), task_id, versions_matching(if_match, task_id))
    return Response(status_code=204, content_type=None, body=None)


def _update(
    task_id: int, changes: TaskPatch | TaskReplace, if_match: str | None
) -> Response[TaskOut]:
    """PATCH and PUT: the write, made only if the task is still at a version If-Match names."""
    versions = versions_matching(if_match, task_id)
    return _with_etag(task_service.update(current_user_id(app), task_id, changes, versions))


def _with_etag(task: TaskOut) -> Response[TaskOut]:
    return Response(status_code=200, content_type=JSON, body=task, headers={"ETag": etag_for(task)})


lambda_handler = lambda_entry_point(app, logger, metrics)
