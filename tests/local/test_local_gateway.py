"""The local API Gateway under concurrent requests (as `make run`'s threaded server makes them)."""

from __future__ import annotations

import sys
import threading
import time
from typing import Any

import pytest

from localdev import loader
from localdev.gateway import LocalGateway
from localdev.template import Function, load
from tests.support.api import ApiClient, task_body


def test_one_invocation_at_a_time_whatever_the_function(
    gateway: LocalGateway, user: ApiClient, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Powertools keeps the current event in a class attribute shared by all resolvers of a
    process, so two functions running at once in one process would read each other's request."""
    real_load_handler = loader.load_handler
    guard = threading.Lock()
    running = 0
    peak = 0

    def load_handler(function: Function) -> loader.Handler:
        handler = real_load_handler(function)

        def observed(event: dict[str, Any], context: Any) -> Any:
            nonlocal running, peak
            with guard:
                running += 1
                peak = max(peak, running)
            time.sleep(0.02)  # room for another invocation to overlap, if one could
            try:
                return handler(event, context)
            finally:
                with guard:
                    running -= 1

        return observed

    monkeypatch.setattr(loader, "load_handler", load_handler)
    start = threading.Barrier(4)
    statuses: list[int] = []

    def call(method: str, path: str) -> None:
        start.wait(timeout=10)
        for _ in range(5):
            statuses.append(user.request(method, path).status)

    requests = [("GET", "/users/me"), ("GET", "/tasks"), ("GET", "/openapi.json"), ("GET", "/x")]
    threads = [threading.Thread(target=call, args=request) for request in requests]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=60)
    assert sorted(set(statuses)) == [200, 404]
    assert peak == 1


def test_concurrent_users_each_see_only_their_own_data(
    user: ApiClient, other_user: ApiClient
) -> None:
    mine = user.post("/tasks", json_body=task_body(description="mine")).json()
    me = user.get("/users/me").json()
    other = other_user.get("/users/me").json()
    seen: list[tuple[str, Any]] = []
    start = threading.Barrier(2)

    def as_user() -> None:
        start.wait(timeout=10)
        for _ in range(20):
            seen.append(("tasks", user.get("/tasks").json()))

    def as_other() -> None:
        start.wait(timeout=10)
        for _ in range(20):
            seen.append(("me", other_user.get("/users/me").json()))

    threads = [threading.Thread(target=as_user), threading.Thread(target=as_other)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=60)
    assert len(seen) == 40
    for kind, body in seen:
        assert body == ([mine] if kind == "tasks" else other), (kind, body)
    assert me != other


def test_concurrent_first_requests_load_a_function_once(monkeypatch: pytest.MonkeyPatch) -> None:
    function = load().functions["MetaFunction"]
    monkeypatch.delitem(sys.modules, f"_taskline_fn_{function.logical_id}", raising=False)
    start = threading.Barrier(4)
    handlers: list[loader.Handler] = []
    failures: list[BaseException] = []

    def first_request() -> None:
        start.wait(timeout=10)
        try:
            handlers.append(loader.load_handler(function))
        except Exception as error:  # the half-imported module showed as a missing handler
            failures.append(error)

    threads = [threading.Thread(target=first_request) for _ in range(4)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=60)
    assert failures == []
    assert len(handlers) == 4
    assert all(handler is handlers[0] for handler in handlers)
