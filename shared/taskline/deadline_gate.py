"""When the deadline check next has work: a DynamoDB item, so asking costs no database wake-up.

A check every 15 minutes that always queried the database would wake a paused Aurora
Serverless v2 instance 96 times a day. Instead the check first reads one item
(DEADLINE_GATE_TABLE): the earliest time a reminder can be due. It touches the database only
once that time has come, and writes the next one when it is done. Every write that schedules a
reminder (a task created or rescheduled, an account's lead time changed) lowers the item to its
earliest due time first, conditionally, inside its transaction: if DynamoDB cannot be reached
the write fails (503) rather than leave a reminder the check would not wake up for.

DynamoDB is reached from inside the VPC through its gateway endpoint, which is free and needs
no NAT: https://docs.aws.amazon.com/vpc/latest/privatelink/gateway-endpoints.html
Conditional writes: https://docs.aws.amazon.com/amazondynamodb/latest/developerguide/Expressions.ConditionExpressions.html

Races. A write lowers the item before it commits; the check reads the item (with its version)
before it queries the database, and writes its result only if no write touched the item since
(the version) and none did recently (`written_at`, within FRESH_WRITE_SECONDS: a write that
lowered the item just before the check read it may commit after the check's query). Otherwise
it only lowers the item, keeping the writes' earlier times: at worst one run too many.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime
from functools import lru_cache
from typing import Any

from aws_lambda_powertools import Logger

from taskline.errors import DeadlineGateUnavailable

logger = Logger(child=True)

_KEY = {"pk": {"S": "deadline-check"}}
# Longer than any write's transaction can last (the API functions' timeout).
FRESH_WRITE_SECONDS = 120


@dataclass(frozen=True)
class Gate:
    """The item as the check read it. `next_due` None: nothing is scheduled at all."""

    next_due: datetime | None
    version: int
    written_at: float  # when a write last lowered it (epoch seconds; 0: never)

    def closed_at(self, now: datetime) -> bool:
        """True when no reminder can be due at `now`: the check can skip the database."""
        return self.next_due is None or self.next_due > now


@lru_cache(maxsize=1)
def _client() -> Any:
    import boto3

    return boto3.client("dynamodb")


def reset() -> None:
    _client.cache_clear()


def _epoch(moment: datetime) -> str:
    return str(int(moment.timestamp()))  # whole seconds, rounded down: never later than due


def read(table: str) -> Gate | None:
    """The item (a strongly consistent read), or None if it was never written."""
    try:
        item = _client().get_item(TableName=table, Key=_KEY, ConsistentRead=True).get("Item")
    except Exception as error:  # botocore's errors: unreachable, throttled, denied
        raise DeadlineGateUnavailable(str(error)) from error
    if item is None:
        return None
    next_due = item.get("next_due")
    return Gate(
        next_due=None if next_due is None else datetime.fromtimestamp(int(next_due["N"]), UTC),
        version=int(item.get("version", {"N": "0"})["N"]),
        written_at=float(item.get("written_at", {"N": "0"})["N"]),
    )


def lower_to(table: str, when: datetime, now: datetime | None) -> None:
    """Make the check run at `when` at the latest (no change if it already runs earlier).
    `now`: the time of the write that needs it (None: the check itself, which is no write)."""
    values = {":due": {"N": _epoch(when)}, ":one": {"N": "1"}}
    update = "SET next_due = :due ADD version :one"
    if now is not None:
        update = "SET next_due = :due, written_at = :now ADD version :one"
        values[":now"] = {"N": str(now.timestamp())}
    try:
        _client().update_item(
            TableName=table,
            Key=_KEY,
            UpdateExpression=update,
            ConditionExpression="attribute_not_exists(next_due) OR next_due > :due",
            ExpressionAttributeValues=values,
        )
    except Exception as error:
        if _condition_failed(error):
            return  # it already runs at or before `when`
        raise DeadlineGateUnavailable(str(error)) from error


def settle(table: str, next_due: datetime | None, seen: Gate | None, now: datetime) -> None:
    """After a run: the check next has work at `next_due` (None: nothing scheduled)."""
    values: dict[str, Any] = {":one": {"N": "1"}}
    if next_due is None:
        update = "REMOVE next_due ADD version :one"
    else:
        update = "SET next_due = :due ADD version :one"
        values[":due"] = {"N": _epoch(next_due)}
    if seen is None:
        condition = "attribute_not_exists(version)"
    else:
        condition = "version = :seen AND (attribute_not_exists(written_at) OR written_at < :fresh)"
        values[":seen"] = {"N": str(seen.version)}
        values[":fresh"] = {"N": str(now.timestamp() - FRESH_WRITE_SECONDS)}
    try:
        _client().update_item(
            TableName=table,
            Key=_KEY,
            UpdateExpression=update,
            ConditionExpression=condition,
            ExpressionAttributeValues=values,
        )
    except Exception as error:
        if not _condition_failed(error):
            raise DeadlineGateUnavailable(str(error)) from error
        # A write lowered the item since (or just before) this run read it: keep its time.
        logger.info("A write lowered the deadline gate during the run; keeping its time")
        if next_due is not None:
            lower_to(table, next_due, None)


def _condition_failed(error: Exception) -> bool:
    response = getattr(error, "response", None)
    if not isinstance(response, dict):
        return False
    code = response.get("Error", {}).get("Code")
    return bool(code == "ConditionalCheckFailedException")
