"""Aurora Serverless v2 auto-pause as users meet it, through the strict stand-in: the database
pauses once traffic stops (idle sessions end), never under an open connection, and the first
request after a pause gets its answer, or a 503 with Retry-After, within the gateway's limit."""

from __future__ import annotations

import threading
import time
import uuid

import pytest
from sqlalchemy import Engine, QueuePool, text

from localdev.aurora import AVAILABLE
from localdev.gateway import LocalGateway
from tests.aurora.conftest import (
    IDLE_SESSION_TIMEOUT_SECONDS,
    PAUSE_AFTER,
    RESUME_SECONDS,
    SCALED_GATEWAY_LIMIT,
    use_aurora,
)
from tests.support.api import ApiClient, task_body
from tests.support.aurora import RunningAurora, running_aurora

# How long traffic may take to let go: the server ends idle sessions, then the pause timer runs.
LET_GO = IDLE_SESSION_TIMEOUT_SECONDS + PAUSE_AFTER + 2.0


def signed_in(gateway: LocalGateway) -> ApiClient:
    anonymous = ApiClient(gateway)
    return ApiClient(gateway, anonymous.login(anonymous.sign_up()))


def test_it_never_pauses_while_a_connection_is_open(through_aurora: RunningAurora) -> None:
    from taskline.db import get_engine

    stand_in = through_aurora.stand_in
    with get_engine().connect() as connection:
        connection.execute(text("SELECT 1"))
        time.sleep(PAUSE_AFTER * 4)
        assert stand_in.state == AVAILABLE, "paused under an open connection"
    get_engine().dispose()  # the only connection closes: now it may pause
    assert stand_in.wait_until_paused(PAUSE_AFTER + 2.0)
    assert set(stand_in.open_at_pause) == {0}


def test_after_traffic_stops_every_connection_closes_and_it_pauses(
    through_aurora: RunningAurora, gateway: LocalGateway
) -> None:
    from taskline.db import get_engine

    stand_in = through_aurora.stand_in
    user = signed_in(gateway)
    assert user.post("/tasks", json_body=task_body()).status == 201
    assert stand_in.open_connections >= 1  # the warm container's pooled connection
    pauses = stand_in.pauses
    # Nothing is closed by the test: the server ends the idle session (idle_session_timeout,
    # a role default), the pool keeps its dead connection, and the database pauses.
    assert stand_in.wait_until_paused(LET_GO)
    assert stand_in.pauses == pauses + 1
    assert stand_in.open_connections == 0
    pool = get_engine().pool
    assert isinstance(pool, QueuePool)
    assert pool.checkedin() == 1  # still pooled client-side, closed by the server
    # The warm container's next request finds out by its ping and gets its answer.
    assert user.get("/tasks").status == 200


def test_first_request_after_a_pause_answers_within_the_gateway_limit_20_times(
    through_aurora: RunningAurora, gateway: LocalGateway
) -> None:
    stand_in = through_aurora.stand_in
    user = signed_in(gateway)
    timings: list[float] = []
    for attempt in range(20):
        assert stand_in.wait_until_paused(LET_GO), f"attempt {attempt}: never paused"
        started = time.monotonic()
        response = user.get("/tasks")
        elapsed = time.monotonic() - started
        timings.append(elapsed)
        assert response.status in (200, 503), response.body
        if response.status == 503:
            assert response.header("Retry-After")
        assert elapsed < SCALED_GATEWAY_LIMIT, f"attempt {attempt}: {elapsed:.2f} s"
        assert stand_in.state == AVAILABLE
    print(f"first request after a pause: {min(timings):.2f}-{max(timings):.2f} s")
    # Each request met a resume (it was held), not a connection kept from before.
    assert len(stand_in.resumes) >= 20
    assert all(t >= RESUME_SECONDS * 0.9 for t in timings)


def test_a_resume_longer_than_the_connect_bound_is_a_503_with_retry_after_and_writes_once(
    database_url: str,
    app_database_url: str,
    monkeypatch: pytest.MonkeyPatch,
    admin_engine: Engine,
    gateway: LocalGateway,
) -> None:
    """Aurora after a long pause (30 s and more) outlasts the function's connect bound: the
    request answers 503 with Retry-After, nothing written; a retry storm with one
    Idempotency-Key creates one task."""
    with running_aurora(database_url, pause_after=PAUSE_AFTER, resume_seconds=2.0) as slow:
        use_aurora(slow, monkeypatch, admin_engine, connect_timeout=0.5)
        user = signed_in(gateway)
        from taskline.db import get_engine

        get_engine().dispose()
        assert slow.stand_in.wait_until_paused(PAUSE_AFTER + 2.0)
        key = str(uuid.uuid4())
        body = task_body(description="written once")
        started = time.monotonic()
        first = user.post("/tasks", json_body=body, headers={"Idempotency-Key": key})
        assert time.monotonic() - started < SCALED_GATEWAY_LIMIT
        assert first.status == 503, first.body
        assert first.header("Retry-After") == "15"
        assert first.json()["type"] == "urn:taskline:problem:database-unavailable"

        statuses: list[int] = []

        def retry() -> None:
            for _ in range(30):
                response = user.post("/tasks", json_body=body, headers={"Idempotency-Key": key})
                statuses.append(response.status)
                if response.status != 503:
                    return
                assert response.header("Retry-After")
                time.sleep(0.2)

        storm = [threading.Thread(target=retry) for _ in range(6)]
        for thread in storm:
            thread.start()
        for thread in storm:
            thread.join()
        assert set(statuses) <= {201, 503}, statuses
        assert 201 in statuses
        with admin_engine.connect() as connection:
            count = connection.execute(
                text("SELECT count(*) FROM tasks WHERE description = 'written once'")
            ).scalar_one()
        assert count == 1
        get_engine().dispose()


def test_the_deadline_check_runs_through_a_paused_database(
    through_aurora: RunningAurora, gateway: LocalGateway
) -> None:
    from datetime import UTC, datetime, timedelta

    from taskline.db import get_engine
    from taskline.services import deadline_service

    user = signed_in(gateway)
    soon = (datetime.now(UTC) + timedelta(minutes=30)).isoformat()
    assert user.post("/tasks", json_body=task_body(deadline=soon)).status == 201
    get_engine().dispose()
    assert through_aurora.stand_in.wait_until_paused(PAUSE_AFTER + 2.0)
    summary = deadline_service.check_deadlines()
    assert summary.due_soon == 1
    assert through_aurora.stand_in.state == AVAILABLE
    assert through_aurora.stand_in.resumes
