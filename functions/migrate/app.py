"""Deploy-time database migrations, run by the `DatabaseMigrations` CloudFormation custom resource.

CloudFormation invokes this function with Create when the stack is created and with Update
whenever the resource's properties change: they carry the migration head and the layer
version, so every deploy that ships new migrations (or new layer code) runs them. The
function brings the database to the head revision (idempotent: a database already there is
left alone), creates or updates the least-privileged role the API functions log in as, and
answers CloudFormation with SUCCESS or FAILED. FAILED fails the deploy, and CloudFormation
rolls it back; a failed migration has changed nothing (it runs in one transaction).

Delete (stack deletion, or the clean-up after a failed create) succeeds without touching the
database: data outlives this resource; the database's own deletion policy decides its fate.

The answer is an HTTP PUT of a JSON document to the pre-signed S3 URL in the event
(`ResponseURL`). It is sent exactly once: after the work, or by a timer shortly before Lambda
would kill the function, so CloudFormation never waits for a reply that cannot come.

Why not crhelper: it creates three boto3 clients when constructed (at import time), sleeps
120 s on every Delete by default, retries a failed PUT forever, and reconfigures the root
logger; this protocol is small enough to implement carefully here.
"""

from __future__ import annotations

import http.client
import json
import threading
import time
from typing import Any
from urllib.parse import urlsplit

from aws_lambda_powertools import Logger
from aws_lambda_powertools.utilities.typing import LambdaContext
from sqlalchemy import Engine, text
from sqlalchemy.exc import DBAPIError

from taskline import secret_store
from taskline.db import get_engine, is_unavailable
from taskline.migrate import (
    code_head,
    database_revision,
    is_known_revision,
    provision_app_role,
    upgrade,
)
from taskline.services import deadline_service
from taskline.settings import get_settings

logger = Logger()

SUCCESS = "SUCCESS"
FAILED = "FAILED"
PHYSICAL_RESOURCE_ID = "taskline-database-migrations"
# Answer CloudFormation this long before Lambda's timeout, whatever is still running.
TIMEOUT_MARGIN_SECONDS = 5.0
# Migrations must finish (or be cancelled by PostgreSQL) this long before Lambda's timeout.
MIGRATION_MARGIN_SECONDS = 15.0
MAX_REASON_CHARACTERS = 1000
RESPONSE_ATTEMPTS = 4
RESPONSE_TIMEOUT_SECONDS = 10.0


class CloudFormationResponse:
    """The one answer to one custom resource request."""

    def __init__(self, event: dict[str, Any], context: LambdaContext) -> None:
        self.event = event
        self.context = context
        self._sent = False
        self._lock = threading.Lock()

    def send(self, status: str, reason: str = "", data: dict[str, Any] | None = None) -> bool:
        """PUT the answer to ResponseURL; only the first call sends. True if this call sent."""
        with self._lock:
            if self._sent:
                return False
            self._sent = True
        body = {
            "Status": status,
            "Reason": (reason or f"See CloudWatch log stream {self.context.log_stream_name}")[
                :MAX_REASON_CHARACTERS
            ],
            # The same id on every request: a changed id would make CloudFormation treat an
            # update as a replacement and send a Delete for the old one.
            "PhysicalResourceId": self.event.get("PhysicalResourceId") or PHYSICAL_RESOURCE_ID,
            "StackId": self.event["StackId"],
            "RequestId": self.event["RequestId"],
            "LogicalResourceId": self.event["LogicalResourceId"],
            "NoEcho": False,
            "Data": data or {},
        }
        put(self.event["ResponseURL"], json.dumps(body).encode())
        logger.info("Answered CloudFormation", extra={"status": status, "reason": body["Reason"]})
        return True

    def on_timeout(self) -> None:
        self.send(FAILED, "The migration did not finish before the function's timeout.")


def put(url: str, body: bytes) -> None:
    """PUT `body` to a pre-signed URL, retrying transient failures a bounded number of times.

    The pre-signed URL is signed without a Content-Type, so none is sent.
    """
    parts = urlsplit(url)
    target = parts.path + (f"?{parts.query}" if parts.query else "")
    connection_class = (
        http.client.HTTPSConnection if parts.scheme == "https" else http.client.HTTPConnection
    )
    for attempt in range(1, RESPONSE_ATTEMPTS + 1):
        try:
            connection = connection_class(parts.netloc, timeout=RESPONSE_TIMEOUT_SECONDS)
            try:
                connection.request(
                    "PUT", target, body=body, headers={"Content-Length": str(len(body))}
                )
                status = connection.getresponse().status
            finally:
                connection.close()
        except OSError as error:
            logger.warning("Sending the response failed", extra={"error": str(error)})
        else:
            if status < 500:
                if status >= 300:
                    logger.error("CloudFormation refused the response", extra={"status": status})
                return
            logger.warning("Sending the response failed", extra={"status": status})
        if attempt < RESPONSE_ATTEMPTS:
            time.sleep(2 ** (attempt - 1))
    logger.error("Could not deliver the response to CloudFormation")


def wait_for_database(engine: Engine, deadline: float) -> None:
    """Wait (bounded by `deadline`, a time.monotonic() value) until the database answers.

    On a first deploy the proxy's target can still be registering when this runs.
    """
    delay = 1.0
    while True:
        try:
            with engine.connect() as connection:
                connection.execute(text("SELECT 1"))
            return
        except DBAPIError as error:
            if not is_unavailable(error) or time.monotonic() + delay > deadline:
                raise
            logger.info("Database not reachable yet; retrying", extra={"error": str(error.orig)})
        time.sleep(delay)
        delay = min(delay * 2, 10.0)


def apply_migrations(deadline: float) -> dict[str, Any]:
    """Bring the database to this code's head and provision the application role."""
    engine = get_engine()
    wait_for_database(engine, deadline)
    head = code_head()
    current = database_revision(engine)
    if current is not None and not is_known_revision(current):
        # A newer deploy already migrated further and CloudFormation is rolling back to this
        # code: migrations only move forward, and each release must run on the next schema.
        logger.warning("Database is ahead of this code; nothing to do", extra={"at": current})
        return {"Revision": current, "Skipped": "database is ahead of this code"}
    budget_ms = int((deadline - time.monotonic()) * 1000)
    timeout_ms = min(get_settings().migration_statement_timeout_ms, max(budget_ms, 1000))
    upgrade(engine, "head", statement_timeout_ms=timeout_ms)
    if get_settings().db_app_user_secret_arn:
        app_user = secret_store.app_user_credentials()
        provision_app_role(
            engine,
            app_user.username,
            app_user.password.get_secret_value(),
            # The API functions' statement timeout, as the role's default (no startup option).
            statement_timeout_ms=get_settings().db_statement_timeout_ms,
        )
    logger.info("Database migrated", extra={"from": current, "to": head})
    return {"Revision": head}


@logger.inject_lambda_context
def lambda_handler(event: dict[str, Any], context: LambdaContext) -> None:
    response = CloudFormationResponse(event, context)
    remaining = context.get_remaining_time_in_millis() / 1000
    timer = threading.Timer(max(remaining - TIMEOUT_MARGIN_SECONDS, 0.0), response.on_timeout)
    timer.daemon = True
    timer.start()
    try:
        request = event["RequestType"]
        logger.info("Custom resource request", extra={"request_type": request})
        if request == "Delete":
            response.send(SUCCESS, "Nothing to do on delete: the data is kept.")
            return
        if request not in ("Create", "Update"):
            response.send(FAILED, f"Unknown request type {request!r}.")
            return
        deadline = time.monotonic() + remaining - MIGRATION_MARGIN_SECONDS
        data = apply_migrations(deadline)
        window = _window_changed(event)
        if window is not None:
            data["RemindersReplanned"] = deadline_service.replan_default_lead(
                window, lambda: deadline - time.monotonic()
            )
        response.send(SUCCESS, f"Database at revision {data['Revision']}.", data)
    except Exception as error:
        logger.exception("Migration failed")
        response.send(FAILED, failure_reason(error))
    finally:
        timer.cancel()


def _window_changed(event: dict[str, Any]) -> int | None:
    """The new DueSoonWindowMinutes when this request changes it (the template passes the
    parameter as a property, so CloudFormation sends an Update when it changes), else None.
    Tasks planned with the old window move to the new one; a first deploy has none to move."""
    new = event.get("ResourceProperties", {}).get("DueSoonWindowMinutes")
    old = event.get("OldResourceProperties", {}).get("DueSoonWindowMinutes")
    if event["RequestType"] != "Update" or new is None or str(new) == str(old):
        return None
    return int(new)


def failure_reason(error: Exception) -> str:
    """What CloudFormation shows for a failure: the error, never the SQL text behind it."""
    if isinstance(error, DBAPIError) and error.orig is not None:
        details = error.orig.args[0] if error.orig.args else None
        if isinstance(details, dict):  # pg8000: the server's SQLSTATE and message
            return f"PostgreSQL error {details.get('C')}: {details.get('M')}"
        return f"{type(error.orig).__name__}: {error.orig}"
    return f"{type(error).__name__}: {error}"
