"""Entity tags for tasks and `If-Match` preconditions (RFC 9110 sections 8.8.3 and 13.1.1).

A task's ETag is strong and names one version of it: `"<id>-<updated_at in microseconds since
the epoch>"`. Every write moves `updated_at` strictly forward (see repositories.task_repository),
so two versions never share a tag. Clients treat the tag as opaque; the server reads it back to
make the write conditional in the same SQL statement that performs it.
"""

from __future__ import annotations

import re
from datetime import UTC, datetime, timedelta

from aws_lambda_powertools.event_handler.openapi.types import OpenAPIResponseHeader

from taskline.schemas import TaskOut

EPOCH = datetime(1970, 1, 1, tzinfo=UTC)
MAX_IF_MATCH_CHARS = 2048
# One entity-tag (weak or strong) and the comma that may follow it, per RFC 9110's grammar.
_ENTITY_TAG = re.compile(r'\s*(W/)?"([\x21\x23-\x7e\x80-\xff]*)"\s*(?:,|$)')
_OUR_TAG = re.compile(r"([1-9][0-9]{0,18})-(-?[0-9]{1,18})")

# Response headers as the OpenAPI document declares them.
ETAG_HEADER: dict[str, OpenAPIResponseHeader] = {
    "ETag": {
        "description": "The task's current entity tag (strong). Send it back in If-Match to "
        "change or delete this version only.",
        "schema": {"type": "string"},
    }
}
CREATED_HEADERS: dict[str, OpenAPIResponseHeader] = {
    "Location": {"description": "The new task's URL.", "schema": {"type": "string"}},
    **ETAG_HEADER,
    "Idempotent-Replayed": {
        "description": "`true` when this is the stored result of an earlier request with the "
        "same Idempotency-Key (nothing was created this time).",
        "schema": {"type": "string", "enum": ["true"]},
    },
}


def etag_for(task: TaskOut) -> str:
    return etag_for_version(task.id, task.updated_at)


def etag_for_version(task_id: int, updated_at: datetime) -> str:
    micros = (updated_at - EPOCH) // timedelta(microseconds=1)
    return f'"{task_id}-{micros}"'


def versions_matching(if_match: str | None, task_id: int) -> frozenset[datetime] | None:
    """The versions of task `task_id` that satisfy `If-Match`, for a conditional write.

    None means no precondition (header absent, or `*`: any current version will do; a missing
    task is a 404 either way, as RFC 9110 section 13.2.1 has preconditions ignored then). An
    empty set means nothing can match: weak tags never do (strong comparison), nor do tags of
    other tasks or ones this API never issued, nor a header that is not an entity-tag list.
    """
    if if_match is None or if_match.strip() == "*":
        return None
    versions: set[datetime] = set()
    position = 0
    while position < len(if_match):
        found = _ENTITY_TAG.match(if_match, position)
        if found is None or found.end() == position:
            return frozenset()  # not a list of entity-tags: it matches no representation
        position = found.end()
        weak, opaque = found.groups()
        ours = _OUR_TAG.fullmatch(opaque)
        if weak or ours is None or int(ours.group(1)) != task_id:
            continue
        try:
            versions.add(EPOCH + timedelta(microseconds=int(ours.group(2))))
        except OverflowError:
            continue
    return frozenset(versions)
