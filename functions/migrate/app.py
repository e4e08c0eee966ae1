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

import contextlib
import http.client
import json
import ssl
import threading
import time
from typing import Any
from urllib.parse import urlsplit

import boto3
from aws_lambda_powertools import Logger
from aws_lambda_powertools.utilities.typing import LambdaContext
from sqlalchemy import Engine, text
from sqlalchemy.exc import DBAPIError

from taskline import secret_store
from taskline.db import build_engine, get_engine, is_unavailable, sqlstate
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
_LOGIN_FAILED_CLASS = "28"  # SQLSTATE class 28: invalid authorization specification


class CloudFormationResponse:
    """The one answer to one custom resource request."""

    def __init__(
        self,
        event: dict[str, Any],
        context: LambdaContext,
        physical_resource_id: str = PHYSICAL_RESOURCE_ID,
    ) -> None:
        self.event = event
        self.context = context
        self.physical_resource_id = physical_resource_id
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
            "PhysicalResourceId": self.event.get("PhysicalResourceId") or self.physical_resource_id,
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


def is_transient(error: BaseException, creating: bool) -> bool:
    """Whether waiting may cure `error`. On Create, the proxy's target may still be registering:
    CloudFormation's DBProxyTargetGroup reports success once the target is registered, not once
    it is available (registering > unavailable > available), and meanwhile connections are
    refused, hang, or fail the login (class 28):
    https://docs.aws.amazon.com/AmazonRDS/latest/APIReference/API_TargetHealth.html
    On Update the proxy has long served: a login error then is a real one, not worth waiting."""
    if isinstance(error, DBAPIError):
        code = sqlstate(error)
        if is_unavailable(error) or isinstance(error.orig, OSError):
            return True
        return creating and code is not None and code.startswith(_LOGIN_FAILED_CLASS)
    if isinstance(error, ssl.SSLCertVerificationError):
        return False  # the wrong CA or host name: no wait fixes it
    # Raw socket failures: refused, reset, or pg8000's socket timeout (TimeoutError).
    return isinstance(error, OSError)


def wait_for_database(engine: Engine, deadline: float, *, creating: bool) -> None:
    """Wait (bounded by `deadline`, a time.monotonic() value) until the database answers,
    retrying every transient failure (`is_transient`); the last one is raised at the deadline.
    """
    delay = 1.0
    attempts = 0
    while True:
        attempts += 1
        try:
            with engine.connect() as connection:
                connection.execute(text("SELECT 1"))
            if attempts > 1:
                logger.info("Database reachable", extra={"attempts": attempts})
            return
        except Exception as error:
            if not is_transient(error, creating) or time.monotonic() + delay > deadline:
                raise
            logger.info(
                "Database not reachable yet; retrying",
                extra={"error": f"{type(error).__name__}: {error}", "attempt": attempts},
            )
        time.sleep(delay)
        delay = min(delay * 2, 10.0)


def migration_engine() -> Engine:
    """An engine for the migrations alone, whose socket timeout (MIGRATION_SOCKET_TIMEOUT_SECONDS)
    outlasts their statement timeout: the container's engine would give up on the socket after
    the API functions' DB_CONNECT_TIMEOUT_SECONDS + DB_STATEMENT_TIMEOUT_MS (8 s in AWS)."""
    settings = get_settings()
    return build_engine(settings, socket_timeout=settings.migration_socket_timeout_seconds)


def apply_migrations(deadline: float, *, creating: bool = False) -> dict[str, Any]:
    """Bring the database to this code's head and provision the application role."""
    # Probed with the container's engine (short timeouts: a hanging connection is retried
    # soon), migrated with one whose socket waits as long as a migration step may run.
    wait_for_database(get_engine(), deadline, creating=creating)
    engine = migration_engine()
    try:
        return _migrate(engine, deadline)
    finally:
        engine.dispose()


def _migrate(engine: Engine, deadline: float) -> dict[str, Any]:
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
            # Idle sessions end, so an idle stack's database can pause (auto-pause).
            idle_session_timeout_seconds=get_settings().db_idle_session_timeout_seconds,
        )
    if iam_user := get_settings().db_app_iam_user:
        provision_app_role(
            engine,
            iam_user,
            None,  # IAM database authentication: no password
            statement_timeout_ms=get_settings().db_statement_timeout_ms,
            idle_session_timeout_seconds=get_settings().db_idle_session_timeout_seconds,
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
        data = apply_migrations(deadline, creating=request == "Create")
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


# --- DatabaseProtection: deletion protection once the create succeeded ------------------
# Deletion protection of the database, switched on only once the stack's create succeeded.
#
# CloudFormation's RDS delete handler never clears DeletionProtection, so an instance created
# with it on cannot be deleted by the rollback of a failed first deploy: the stack ends in
# ROLLBACK_FAILED. The instance is therefore created without it, and this function, serving the
# `DatabaseProtection` custom resource (created after the first migration), sets the
# DatabaseDeletionProtection parameter's value on Create and Update. On Delete it clears the
# flag only while the stack rolls back a failed create (ROLLBACK_IN_PROGRESS), so the rollback
# can delete the instance; a stack deletion, or the rollback of an update, leaves the flag alone
# (deleting a protected database is exactly what it refuses).
# https://docs.aws.amazon.com/AWSCloudFormation/latest/UserGuide/aws-attribute-deletionpolicy.html
#
# It runs outside the VPC (the RDS and CloudFormation APIs are reached over Lambda's own network,
# with no endpoint to pay for) and never touches the database's data.

PROTECTION_RESOURCE_ID = "taskline-database-protection"
# The stack status in which a Delete is the clean-up of a failed create.
# https://docs.aws.amazon.com/AWSCloudFormation/latest/UserGuide/using-cfn-describing-stacks.html
ROLLING_BACK_A_CREATE = "ROLLBACK_IN_PROGRESS"
POLL_SECONDS = 5.0


def rds() -> Any:
    return boto3.client("rds")  # created per call: runs a few times per deploy


def stack_status(stack_id: str) -> str:
    [stack] = boto3.client("cloudformation").describe_stacks(StackName=stack_id)["Stacks"]
    status: str = stack["StackStatus"]
    return status


def set_deletion_protection(database: dict[str, str], wanted: bool, deadline: float) -> None:
    """Set the flag on the instance (DBInstanceIdentifier) or the Aurora cluster
    (DBClusterIdentifier, the starter profile) and wait, bounded by `deadline`, until RDS reports
    it: the rollback deletes the database right after this answers, and RDS refuses to delete
    one that is still being modified."""
    client = rds()
    if "DBClusterIdentifier" in database:
        name = database["DBClusterIdentifier"]
        client.modify_db_cluster(
            DBClusterIdentifier=name, DeletionProtection=wanted, ApplyImmediately=True
        )
    else:
        name = database["DBInstanceIdentifier"]
        client.modify_db_instance(
            DBInstanceIdentifier=name, DeletionProtection=wanted, ApplyImmediately=True
        )
    while True:
        if "DBClusterIdentifier" in database:
            [found] = client.describe_db_clusters(DBClusterIdentifier=name)["DBClusters"]
            status = found["Status"]
        else:
            [found] = client.describe_db_instances(DBInstanceIdentifier=name)["DBInstances"]
            status = found["DBInstanceStatus"]
        if found["DeletionProtection"] == wanted and status in (
            "available",
            "storage-optimization",
        ):
            return
        if time.monotonic() + POLL_SECONDS > deadline:
            raise TimeoutError(f"{name} did not report DeletionProtection={wanted} in time")
        time.sleep(POLL_SECONDS)


@logger.inject_lambda_context
def protection_handler(event: dict[str, Any], context: LambdaContext) -> None:
    response = CloudFormationResponse(event, context, PROTECTION_RESOURCE_ID)
    deadline = time.monotonic() + context.get_remaining_time_in_millis() / 1000 - 10
    try:
        request = event["RequestType"]
        properties = event["ResourceProperties"]
        database = {
            key: str(properties[key])
            for key in ("DBInstanceIdentifier", "DBClusterIdentifier")
            if key in properties
        }
        wanted = str(properties["DeletionProtection"]).lower() == "true"
        if request in ("Create", "Update"):
            set_deletion_protection(database, wanted, deadline)
            response.send(SUCCESS, f"DeletionProtection={str(wanted).lower()}.")
        elif request == "Delete":
            status = stack_status(event["StackId"])
            if status == ROLLING_BACK_A_CREATE:
                client = rds()
                gone = (
                    client.exceptions.DBInstanceNotFoundFault,
                    client.exceptions.DBClusterNotFoundFault,
                )
                with contextlib.suppress(*gone):  # never created, or already gone
                    set_deletion_protection(database, False, deadline)
                response.send(SUCCESS, "Protection cleared for the rollback of a failed create.")
            else:
                response.send(SUCCESS, f"Protection left as it is (stack {status}).")
        else:
            response.send(FAILED, f"Unknown request type {request!r}.")
    except Exception as error:
        logger.exception("Deletion protection failed")
        response.send(FAILED, failure_reason(error))
