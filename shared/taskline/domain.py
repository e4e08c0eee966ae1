"""The domain's vocabulary: what a task is and how tasks are found, with no database or HTTP.

The ORM models (`models.py`), the wire schemas (`schemas.py`), repositories and services all
speak it; it imports nothing of theirs, so every layer can look down to it.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from enum import StrEnum
from typing import Literal, NamedTuple


class TaskStatus(StrEnum):
    TODO = "To Do"
    IN_PROGRESS = "In Progress"
    DONE = "Done"


class NotificationStage(StrEnum):
    """The deadline notifications a task can get, each at most once per deadline."""

    DUE_SOON = "due_soon"
    OVERDUE = "overdue"

    @property
    def event_type(self) -> str:
        """`task.due_soon` / `task.overdue`: the SNS `event_type` attribute."""
        return f"task.{self.value}"


class ListRole(StrEnum):
    """A member's role in a shared list; a list has exactly one owner."""

    OWNER = "owner"
    EDITOR = "editor"
    VIEWER = "viewer"


class SuppressionReason(StrEnum):
    """Why no email goes to an address until its owner verifies it again."""

    BOUNCE = "bounce"  # SES: a permanent bounce
    COMPLAINT = "complaint"  # SES: the recipient marked an email as spam
    UNSUBSCRIBE = "unsubscribe"  # the recipient's one-click unsubscribe (RFC 8058)


class QuotaScope(StrEnum):
    """Emails an account may cause per window (`send_quotas`); the subject is the account id."""

    EMAIL_VERIFICATION = "email_verification"
    INVITATION = "invitation"


class ThrottleScope(StrEnum):
    ACCOUNT = "account"  # subject: SHA-256 (hex) of lower(email), whether or not the account exists
    IP = "ip"  # subject: the source IP address


# A password's bounds. bcrypt ignores anything beyond 72 bytes; we refuse instead of truncating.
MIN_PASSWORD_CHARS = 8
MAX_PASSWORD_BYTES = 72

# Bounds of a reminder's lead time (a task's remind_before, an account's due_soon_minutes).
MIN_LEAD_MINUTES = 1
MAX_LEAD_MINUTES = 10080  # 7 days


# Shared lists: the contract's limits.
MAX_LIST_NAME_CHARS = 200
MAX_LISTS_PER_ACCOUNT = 500
MAX_MEMBERS_PER_LIST = 100
MAX_PENDING_INVITATIONS_PER_LIST = 100
INVITATION_LIFETIME_DAYS = 7
# Invitations (each may email its addressee) an account may send per day (send_quotas).
MAX_INVITATION_EMAILS_PER_DAY = 50


# The `list_id` filter's value for the caller's personal tasks, and the `assignee` filter's
# words for the caller and for nobody.
PERSONAL = "personal"
ASSIGNEE_ME = "me"
ASSIGNEE_NONE = "none"
ListChoice = int | Literal["personal"]
Assignee = int | Literal["me", "none"]

# Who may write a list's tasks.
WRITER_ROLES = (ListRole.OWNER.value, ListRole.EDITOR.value)


@dataclass(frozen=True, kw_only=True)
class TaskFilters:
    """Which of the tasks a caller can see a listing shows; None: not filtered on that."""

    status: TaskStatus | None = None
    category: str | None = None
    due_before: datetime | None = None  # deadline earlier than this
    due_after: datetime | None = None  # deadline at or after this
    list_id: ListChoice | None = None  # a list's id, or PERSONAL
    assignee: Assignee | None = None  # a user id, ASSIGNEE_ME or ASSIGNEE_NONE


class TaskPosition(NamedTuple):
    """A task's place in the listing order (deadline, then id): where a keyset page starts."""

    deadline: datetime
    id: int


# The scope of an idempotency key: which operation a stored fingerprint belongs to. The text is
# frozen: it is hashed into every stored fingerprint (taskline.services.task_service), so
# changing it would stop in-flight keys from replaying. It happens to read like the HTTP route
# that creates tasks; it is only a label now.
CREATE_TASK_OPERATION = "POST /tasks"
