"""The deadline gate: the scheduled check touches the database only when a reminder can be due
(a DynamoDB item, moto here, says when), so it does not wake a paused Aurora instance 96 times a
day; a write that schedules an earlier reminder lowers the item, so the next check runs."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from datetime import UTC, datetime, timedelta

import boto3
import pytest
from moto import mock_aws
from sqlalchemy import Engine, text

from localdev.rdsproxy import RdsProxyStandIn
from taskline import deadline_gate
from taskline.schemas import DeadlineCheckSummary
from taskline.services import deadline_service
from tests.http.lists_support import Account, join, new_list
from tests.support.api import ApiClient, task_body
from tests.support.caches import clear_caches

TABLE = "taskline-deadline-gate"


@pytest.fixture
def gate(monkeypatch: pytest.MonkeyPatch) -> Iterator[str]:
    with mock_aws():
        boto3.client("dynamodb", region_name="us-east-1").create_table(
            TableName=TABLE,
            KeySchema=[{"AttributeName": "pk", "KeyType": "HASH"}],
            AttributeDefinitions=[{"AttributeName": "pk", "AttributeType": "S"}],
            BillingMode="PAY_PER_REQUEST",
        )
        monkeypatch.setenv("DEADLINE_GATE_TABLE", TABLE)
        clear_caches()
        yield TABLE
        clear_caches()


def in_minutes(minutes: float) -> str:
    return (datetime.now(UTC) + timedelta(minutes=minutes)).isoformat()


def check_later(minutes: float = 3) -> DeadlineCheckSummary:
    """A scheduled run a few minutes on: past FRESH_WRITE_SECONDS after the test's writes (a run
    right after a write keeps the write's time and runs again next time: one run too many)."""
    return deadline_service.check_deadlines(now=datetime.now(UTC) + timedelta(minutes=minutes))


def database_sessions(rds_proxy: RdsProxyStandIn) -> int:
    return len(rds_proxy.sessions)


def test_the_first_run_without_an_item_checks_the_database(gate: str, user: ApiClient) -> None:
    first = deadline_service.check_deadlines()
    assert not first.skipped
    assert first.next_due is None  # nothing scheduled at all
    assert deadline_service.check_deadlines(now=datetime.now(UTC) + timedelta(days=30)).skipped


def test_nothing_can_be_due_so_the_check_opens_no_database_connection(
    gate: str, user: ApiClient, rds_proxy: RdsProxyStandIn
) -> None:
    # A reminder due in two days (lead time: 24 h before a deadline three days away).
    assert user.post("/tasks", json_body=task_body(deadline=in_minutes(3 * 1440))).status == 201
    # The write lowered the gate to that reminder's time.
    state = deadline_gate.read(gate)
    assert state is not None
    assert state.next_due is not None
    assert state.next_due > datetime.now(UTC) + timedelta(hours=47)
    clear_caches()  # a fresh container: no pooled connection, no engine
    from taskline.db import get_engine

    before = database_sessions(rds_proxy)
    for hours in (0, 1, 24, 47):
        summary = deadline_service.check_deadlines(now=datetime.now(UTC) + timedelta(hours=hours))
        assert summary.skipped
        assert summary.due_soon == 0
    assert database_sessions(rds_proxy) == before  # not one connection: nothing woke up
    assert get_engine.cache_info().currsize == 0
    later = deadline_service.check_deadlines(now=datetime.now(UTC) + timedelta(hours=49))
    assert not later.skipped
    assert later.due_soon == 1
    assert later.next_due is not None  # the overdue stage, at the deadline


def test_a_newly_written_earlier_reminder_makes_the_next_check_run(
    gate: str, user: ApiClient
) -> None:
    assert user.post("/tasks", json_body=task_body(deadline=in_minutes(3 * 1440))).status == 201
    assert deadline_service.check_deadlines().skipped
    # A new task whose reminder is due now (deadline in 30 min, lead time 24 h).
    assert user.post("/tasks", json_body=task_body(deadline=in_minutes(30))).status == 201
    run = check_later(3)
    assert not run.skipped
    assert run.due_soon == 1
    assert check_later(4).skipped  # and then closes again, until the deadline (overdue)


def test_moving_a_deadline_earlier_and_a_shorter_lead_time_lower_the_gate(
    gate: str, user: ApiClient
) -> None:
    created = user.post("/tasks", json_body=task_body(deadline=in_minutes(5 * 1440)))
    state = deadline_gate.read(gate)
    assert state is not None
    assert state.next_due is not None
    task_id = created.json()["id"]
    assert user.patch(f"/tasks/{task_id}", json_body={"deadline": in_minutes(60)}).status == 200
    lowered = deadline_gate.read(gate)
    assert lowered is not None
    assert lowered.next_due is not None
    assert lowered.next_due < state.next_due
    assert not check_later(3).skipped
    # Preferences: a longer account lead time brings a later task's reminder forward.
    user.post("/tasks", json_body=task_body(deadline=in_minutes(3 * 1440)))
    assert check_later(4).skipped
    changed = user.patch("/users/me/notifications", json_body={"due_soon_minutes": 4 * 1440})
    assert changed.status == 200
    assert check_later(5).due_soon == 1


def test_a_renamed_task_does_not_write_to_the_gate(gate: str, user: ApiClient) -> None:
    created = user.post("/tasks", json_body=task_body(deadline=in_minutes(3 * 1440)))
    state = deadline_gate.read(gate)
    assert state is not None
    user.patch(f"/tasks/{created.json()['id']}", json_body={"description": "renamed"})
    after = deadline_gate.read(gate)
    assert after is not None
    assert after.version == state.version


def test_a_write_racing_a_run_keeps_its_earlier_time(gate: str, admin_engine: Engine) -> None:
    """A write lowered the gate just before the check read it, and commits after the check's
    query: the check must not raise the gate past that write's time."""
    now = datetime.now(UTC)
    deadline_gate.lower_to(gate, now, now)  # the racing write (its task not committed yet)
    seen = deadline_gate.read(gate)
    deadline_gate.settle(gate, now + timedelta(days=3), seen, now)
    kept = deadline_gate.read(gate)
    assert kept is not None
    assert kept.next_due is not None
    assert kept.next_due <= now
    with admin_engine.connect() as connection:
        assert connection.execute(text("SELECT count(*) FROM tasks")).scalar_one() == 0


def test_without_the_gate_table_every_write_and_run_is_as_before(user: ApiClient) -> None:
    assert user.post("/tasks", json_body=task_body(deadline=in_minutes(30))).status == 201
    summary = deadline_service.check_deadlines()
    assert not summary.skipped
    assert summary.due_soon == 1


def test_the_gate_unreachable_refuses_the_write_with_503(
    gate: str, user: ApiClient, monkeypatch: pytest.MonkeyPatch, admin_engine: Engine
) -> None:
    monkeypatch.setenv("DEADLINE_GATE_TABLE", "no-such-table")
    clear_caches()
    refused = user.post("/tasks", json_body=task_body(deadline=in_minutes(30)))
    assert refused.status == 503
    assert refused.header("Retry-After")
    with admin_engine.connect() as connection:
        assert connection.execute(text("SELECT count(*) FROM tasks")).scalar_one() == 0


def test_the_earliest_deadline_a_task_can_have_is_written_through_the_gate(
    gate: str, user: ApiClient
) -> None:
    """A deadline at the start of year 1 puts its reminder before anything Python can hold."""
    created = user.post("/tasks", json_body=task_body(deadline="0001-01-01T00:00:00Z"))
    assert created.status in (201, 422), created.body


def test_a_membership_change_that_brings_a_reminder_earlier_lowers_the_gate(
    gate: str, make_account: Callable[..., Account]
) -> None:
    """A member leaves: their assigned task now reminds the list's owner, with the owner's
    longer lead time, so the reminder moves earlier and the gate must follow it."""
    owner, member = make_account(), make_account()
    preferences = member.patch("/users/me/notifications", json_body={"due_soon_minutes": 60})
    assert preferences.status == 200
    created = new_list(owner)
    join(owner, member, created["id"])
    body = {
        **task_body(deadline=in_minutes(3 * 1440)),
        "list_id": created["id"],
        "assignee_id": member.id,
    }
    assert owner.post("/tasks", json_body=body).status == 201
    assigned = deadline_gate.read(gate)
    assert assigned is not None
    assert assigned.next_due is not None
    assert assigned.next_due > datetime.now(UTC) + timedelta(hours=70)  # the member's hour ahead
    assert member.delete(f"/lists/{created['id']}/members/{member.id}").status == 204
    left = deadline_gate.read(gate)
    assert left is not None
    assert left.next_due is not None
    assert left.next_due < datetime.now(UTC) + timedelta(hours=49)  # the owner's 24 h ahead
