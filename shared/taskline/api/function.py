"""How every HTTP function with a database starts (functions/auth, notifications, tasks)."""

from __future__ import annotations

from aws_lambda_powertools import Logger, Metrics

from taskline import snapstart
from taskline.api.resolver import TasklineResolver


def http_function() -> tuple[TasklineResolver, Logger, Metrics]:
    """The function's resolver, logger and metrics, with the SnapStart hooks registered: warm
    up before the snapshot, reconnect and reseed after a restore. Hand all three to
    `lambda_entry_point` at the end of the module."""
    logger, metrics = Logger(), Metrics()
    snapstart.register_hooks()
    return TasklineResolver(), logger, metrics
