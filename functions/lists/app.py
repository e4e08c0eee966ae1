"""Lists shared between accounts: /lists, their members and invitations, and /invitations (the
caller's side of them). Who may do what is decided in one place, taskline.services.list_service.
"""

from __future__ import annotations

from typing import Annotated, Any

from aws_lambda_powertools.event_handler import Response
from aws_lambda_powertools.event_handler.openapi.params import Path, Query
from aws_lambda_powertools.event_handler.openapi.types import OpenAPIResponseHeader
from pydantic import BeforeValidator

from taskline.api.auth import SignedIn, current_token
from taskline.api.documentation import RETRY_AFTER, Routes, example_body, problem, returns
from taskline.api.function import http_function
from taskline.api.links import next_page_link
from taskline.api.resolver import JSON, lambda_entry_point
from taskline.pagination import MAX_CURSOR_CHARS
from taskline.schemas import (
    MAX_JSON_SAFE_INTEGER,
    InvitationCreate,
    InvitationOut,
    ListCreate,
    ListOut,
    ListRename,
    MemberOut,
    MemberRoleChange,
    OmittedNotNull,
    WithJsonSchemaExtra,
    canonical_task_id,
)
from taskline.services import list_service

app, logger, metrics = http_function()


# Ids as for tasks: canonical digits (no sign, leading zeros or fraction), 1 to 2**53 - 1.
_CANONICAL = BeforeValidator(canonical_task_id)
_RANGE = WithJsonSchemaExtra(minimum=1, maximum=MAX_JSON_SAFE_INTEGER)
ListId = Annotated[int, _CANONICAL, _RANGE, Path(description="The list's id.")]
UserId = Annotated[int, _CANONICAL, _RANGE, Path(description="The member's user id.")]
InvitationId = Annotated[int, _CANONICAL, _RANGE, Path(description="The invitation's id.")]
Limit = Annotated[int, Query(ge=1, le=100)]
Cursor = Annotated[
    str | None,
    OmittedNotNull(),
    Query(max_length=MAX_CURSOR_CHARS, description="From a Link header."),
]

PAGE_HEADERS: dict[str, OpenAPIResponseHeader] = {
    "Link": {
        "description": 'The next page, as `<url>; rel="next"` (RFC 8288), when more remain.',
        "schema": {"type": "string"},
    }
}
LOCATION: dict[str, OpenAPIResponseHeader] = {
    "Location": {"description": "The new list's URL.", "schema": {"type": "string"}}
}


def _links(list_id: str, *operations: str) -> dict[str, Any]:
    """OpenAPI links to operations on a list, so clients and the fuzzer can chain them."""
    return {
        operation: {"operationId": operation, "parameters": {"list_id": list_id}}
        for operation in operations
    }


LIST_OPERATIONS = ("getList", "renameList", "listMembers", "inviteToList", "listListInvitations")
FROM_LIST_BODY = _links("$response.body#/id", *LIST_OPERATIONS, "deleteList")
FROM_LIST_PATH = _links("$request.path.list_id", *LIST_OPERATIONS)
FROM_ACCEPTED = _links("$response.body#/id", *LIST_OPERATIONS)
FROM_INVITATION = {
    "revokeInvitation": {
        "operationId": "revokeInvitation",
        "parameters": {
            "list_id": "$request.path.list_id",
            "invitation_id": "$response.body#/id",
        },
    },
}

NO_SUCH_LIST = problem("No such list, or you are not a member of it.")
FORBIDDEN = problem("You are a member, but your role does not allow this (`forbidden`).")
CONFLICT = problem("A limit or a rule of lists (`list-conflict`): the detail says which.")
NO_SUCH_INVITATION = problem("No such invitation addressed to you (or it was used or revoked).")
UNVERIFIED = problem("Verify your email address first (`email-unverified`).")
EXPIRED = problem("The invitation expired (after 7 days).")
INVITATIONS_DESCRIPTION = (
    "Only with a verified address: invitations never reach someone who merely signed up with it."
)

lists = Routes(app, "Lists", signed_in=SignedIn.LIVE)
invitations = Routes(app, "Invitations", signed_in=SignedIn.LIVE)


def _no_content() -> Response[None]:
    return Response(status_code=204, content_type=None, body=None)


@lists.route(
    "POST",
    "/lists",
    "createList",
    "Create a list",
    {201: returns("The list; you are its owner.", ListOut, headers=LOCATION, links=FROM_LIST_BODY)},
    errors={409: problem("You are already in 500 lists.")},
    invalid=True,
    body="json",
)
def create_list(request: Annotated[ListCreate, example_body(ListCreate)]) -> Response[ListOut]:
    created = list_service.create(current_token(app), request.name)
    return Response(
        status_code=201,
        content_type=JSON,
        body=created,
        headers={"Location": f"/lists/{created.id}"},
    )


@lists.route(
    "GET",
    "/lists",
    "listLists",
    "List my lists",
    {200: returns("One page of the lists you belong to.", list[ListOut], headers=PAGE_HEADERS)},
    description="The lists you belong to, oldest first, a page at a time; the `Link` header "
    "gives the next page.",
    invalid=True,
)
def list_lists(limit: Limit = 50, cursor: Cursor = None) -> Response[list[ListOut]]:
    page = list_service.page(current_token(app), limit, cursor)
    headers = (
        {"Link": next_page_link(app.current_event, page.next_cursor)} if page.next_cursor else None
    )
    return Response(status_code=200, content_type=JSON, body=page.items, headers=headers)


@lists.route(
    "GET",
    "/lists/<list_id>",
    "getList",
    "Get a list",
    {200: returns("The list.", ListOut, links=FROM_LIST_PATH)},
    errors={404: NO_SUCH_LIST},
    invalid=True,
)
def get_list(list_id: ListId) -> ListOut:
    return list_service.get(current_token(app), list_id)


@lists.route(
    "PATCH",
    "/lists/<list_id>",
    "renameList",
    "Rename a list",
    {200: returns("The renamed list.", ListOut, links=FROM_LIST_PATH)},
    description="The owner and editors only.",
    errors={403: FORBIDDEN, 404: NO_SUCH_LIST},
    invalid=True,
    body="json",
)
def rename_list(
    list_id: ListId, request: Annotated[ListRename, example_body(ListRename)]
) -> ListOut:
    return list_service.rename(current_token(app), list_id, request.name)


@lists.route(
    "DELETE",
    "/lists/<list_id>",
    "deleteList",
    "Delete a list",
    {204: returns("Deleted, with its tasks, members and invitations.")},
    description="The owner only.",
    errors={403: FORBIDDEN, 404: NO_SUCH_LIST},
    invalid=True,
)
def delete_list(list_id: ListId) -> Response[None]:
    list_service.delete(current_token(app), list_id)
    return _no_content()


@lists.route(
    "GET",
    "/lists/<list_id>/members",
    "listMembers",
    "List a list's members",
    {200: returns("Every member (at most 100), oldest first.", list[MemberOut])},
    errors={404: NO_SUCH_LIST},
    invalid=True,
)
def list_members(list_id: ListId) -> Response[list[MemberOut]]:
    members = list_service.members(current_token(app), list_id)
    return Response(status_code=200, content_type=JSON, body=members)


@lists.route(
    "PATCH",
    "/lists/<list_id>/members/<user_id>",
    "changeMemberRole",
    "Change a member's role",
    {200: returns("The member with their new role.", MemberOut)},
    description='The owner only. `"owner"` hands ownership over: you become an editor. The '
    "owner's own role changes only that way (409 otherwise).",
    errors={403: FORBIDDEN, 404: problem("No such list (of yours) or member."), 409: CONFLICT},
    invalid=True,
    body="json",
)
def change_member_role(
    list_id: ListId,
    user_id: UserId,
    request: Annotated[MemberRoleChange, example_body(MemberRoleChange)],
) -> MemberOut:
    return list_service.change_role(current_token(app), list_id, user_id, request.role)


@lists.route(
    "DELETE",
    "/lists/<list_id>/members/<user_id>",
    "removeMember",
    "Remove a member, or leave",
    {204: returns("Removed (their assignments in the list are cleared).")},
    description="The owner removes anyone else; any member removes themself (leaves). The owner "
    "cannot leave: hand ownership over first (409).",
    errors={403: FORBIDDEN, 404: problem("No such list (of yours) or member."), 409: CONFLICT},
    invalid=True,
)
def remove_member(list_id: ListId, user_id: UserId) -> Response[None]:
    list_service.remove_member(current_token(app), list_id, user_id)
    return _no_content()


@lists.route(
    "POST",
    "/lists/<list_id>/invitations",
    "inviteToList",
    "Invite an address",
    {201: returns("The invitation (new or renewed).", InvitationOut, links=FROM_INVITATION)},
    description="The owner only. The same answer whether or not the address has an account; "
    "a pending invitation to the address is renewed (7 more days), not duplicated. The "
    "addressee is emailed (unless the address is suppressed or unverified).",
    errors={
        403: FORBIDDEN,
        404: NO_SUCH_LIST,
        409: CONFLICT,
        429: problem("Too many invitations today; wait Retry-After seconds.", RETRY_AFTER),
    },
    invalid=True,
    body="json",
)
def invite(
    list_id: ListId, request: Annotated[InvitationCreate, example_body(InvitationCreate)]
) -> Response[InvitationOut]:
    invitation = list_service.invite(current_token(app), list_id, request)
    return Response(status_code=201, content_type=JSON, body=invitation)


@lists.route(
    "GET",
    "/lists/<list_id>/invitations",
    "listListInvitations",
    "List a list's pending invitations",
    {200: returns("Pending invitations (at most 100), oldest first.", list[InvitationOut])},
    description="The owner only.",
    errors={403: FORBIDDEN, 404: NO_SUCH_LIST},
    invalid=True,
)
def list_list_invitations(list_id: ListId) -> Response[list[InvitationOut]]:
    pending = list_service.list_invitations(current_token(app), list_id)
    return Response(status_code=200, content_type=JSON, body=pending)


@lists.route(
    "DELETE",
    "/lists/<list_id>/invitations/<invitation_id>",
    "revokeInvitation",
    "Revoke an invitation",
    {204: returns("Revoked.")},
    description="The owner only.",
    errors={403: FORBIDDEN, 404: problem("No such list (of yours) or invitation.")},
    invalid=True,
)
def revoke_invitation(list_id: ListId, invitation_id: InvitationId) -> Response[None]:
    list_service.revoke(current_token(app), list_id, invitation_id)
    return _no_content()


@invitations.route(
    "GET",
    "/invitations",
    "listMyInvitations",
    "My pending invitations",
    {
        200: returns(
            "One page of invitations to your address.", list[InvitationOut], headers=PAGE_HEADERS
        )
    },
    description="Pending invitations addressed to your email (normalised as at sign-up), "
    "oldest first. " + INVITATIONS_DESCRIPTION,
    errors={403: UNVERIFIED},
    invalid=True,
)
def list_my_invitations(limit: Limit = 50, cursor: Cursor = None) -> Response[list[InvitationOut]]:
    page = list_service.my_invitations(current_token(app), limit, cursor)
    headers = (
        {"Link": next_page_link(app.current_event, page.next_cursor)} if page.next_cursor else None
    )
    return Response(status_code=200, content_type=JSON, body=page.items, headers=headers)


# What accepting or declining answers besides success.
ADDRESSEE_ERRORS = {403: UNVERIFIED, 404: NO_SUCH_INVITATION, 410: EXPIRED}


@invitations.route(
    "POST",
    "/invitations/<invitation_id>/accept",
    "acceptInvitation",
    "Accept an invitation",
    {200: returns("The list you joined.", ListOut, links=FROM_ACCEPTED)},
    description=INVITATIONS_DESCRIPTION,
    errors={**ADDRESSEE_ERRORS, 409: CONFLICT},
    invalid=True,
)
def accept_invitation(invitation_id: InvitationId) -> ListOut:
    return list_service.accept(current_token(app), invitation_id)


@invitations.route(
    "DELETE",
    "/invitations/<invitation_id>",
    "declineInvitation",
    "Decline an invitation",
    {204: returns("Declined.")},
    description=INVITATIONS_DESCRIPTION,
    errors=ADDRESSEE_ERRORS,
    invalid=True,
)
def decline_invitation(invitation_id: InvitationId) -> Response[None]:
    list_service.decline(current_token(app), invitation_id)
    return _no_content()


lambda_handler = lambda_entry_point(app, logger, metrics)
