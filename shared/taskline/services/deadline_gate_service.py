"""Keeping the deadline gate (taskline.deadline_gate) in step with the reminders writes schedule."""

from __future__ import annotations

from datetime import datetime

from taskline import clock, deadline_gate
from taskline.models import Task
from taskline.settings import get_settings


def reminders_scheduled(earliest: datetime | None) -> None:
    """A write (not yet committed) schedules a reminder stage at `earliest`: the check must run
    by then. Called inside the write's transaction: if the gate cannot be lowered, the write
    fails (DeadlineGateUnavailable, 503) instead of leaving a reminder no check wakes up for."""
    table = get_settings().deadline_gate_table
    if table is None or earliest is None:
        return
    deadline_gate.lower_to(table, earliest, clock.utcnow())


def task_scheduled(task: Task) -> None:
    """`task` was just written with its stages' times (`due_soon_at`, `overdue_at`)."""
    # pg8000 hands back what Python cannot hold (a time before year 1: '-infinity' or a BC
    # date, for a deadline at the start of year 1) as text: long past, never notified.
    times = [
        moment for moment in (task.due_soon_at, task.overdue_at) if isinstance(moment, datetime)
    ]
    reminders_scheduled(min(times, default=None))
