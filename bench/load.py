"""`make load`: a bounded load test of the local API, checking that nothing is lost.

    make load                                   # 4 workers, 8 clients, 20 s
    make load LOAD_ARGS="--workers 2 --clients 4 --seconds 10"

Starts several copies of the local server (localdev.server: the real handlers behind the local
API Gateway, one warm "container" per function each) on ports 3105.., against a fresh database
(taskline_load), all on loopback. Concurrent clients, each its own account, then run for a fixed
time over a realistic mix: log in, create (half with an Idempotency-Key), create retried
concurrently on two workers with one key, list with paging, get, patch and delete (with
If-Match). Each client keeps a ledger of what the API acknowledged.

It reports throughput and p50/p99 latency per action, samples pg_stat_activity for the number of
database connections, and afterwards reads every task back from PostgreSQL. It fails (exit 1) on
any 5xx or transport error, any acknowledged write missing or different in the database, any
task nobody was told about, any key that created more than one task, a stale read, or more
connections than the workers' pools allow.
"""

from __future__ import annotations

import argparse
import http.client
import json
import random
import sys
import threading
import time
import uuid
from collections import Counter, defaultdict
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any
from urllib.parse import urlencode, urlsplit

ROOT = Path(__file__).resolve().parent.parent
sys.path[:0] = [str(ROOT), str(ROOT / "shared")]

from sqlalchemy import create_engine, text  # noqa: E402

from localdev.cluster import local_servers  # noqa: E402
from taskline.db import sqlalchemy_url  # noqa: E402

DATABASE = "taskline_load"
PASSWORD = "load-test password"
# Relative weights of what a client does next.
MIX = {
    "login": 4,
    "create": 18,
    "create_retry": 4,
    "list": 20,
    "get": 26,
    "patch": 16,
    "delete": 12,
}
STATUSES = ["To Do", "In Progress", "Done"]


@dataclass
class Stats:
    lock: threading.Lock = field(default_factory=threading.Lock)
    latencies: dict[str, list[float]] = field(default_factory=lambda: defaultdict(list))
    statuses: Counter[tuple[str, int]] = field(default_factory=Counter)
    problems: list[str] = field(default_factory=list)

    def record(self, action: str, status: int, seconds: float) -> None:
        with self.lock:
            self.latencies[action].append(seconds)
            self.statuses[(action, status)] += 1

    def problem(self, message: str) -> None:
        with self.lock:
            if len(self.problems) < 1000:
                self.problems.append(message)


@dataclass
class Response:
    status: int
    headers: dict[str, str]
    body: bytes

    def json(self) -> Any:
        return json.loads(self.body)


class Client:
    """One user of the API, with a keep-alive connection to each worker."""

    def __init__(self, index: int, urls: list[str], stats: Stats, seed: int) -> None:
        self.index = index
        self.urls = urls
        self.stats = stats
        self.random = random.Random(seed)
        self.connections: dict[str, http.client.HTTPConnection] = {}
        self.email = f"load-{index}-{uuid.uuid4().hex[:8]}@example.com"
        self.token = ""
        # What the API acknowledged: task id -> last body and ETag; deleted ids.
        self.tasks: dict[int, tuple[dict[str, Any], str]] = {}
        self.deleted: set[int] = set()
        self.retried_keys: list[str] = []

    def _connection(self, url: str) -> http.client.HTTPConnection:
        if url not in self.connections:
            parts = urlsplit(url)
            self.connections[url] = http.client.HTTPConnection(
                parts.hostname or "127.0.0.1", parts.port, timeout=30
            )
        return self.connections[url]

    def request(
        self,
        action: str,
        method: str,
        path: str,
        body: Any = None,
        headers: dict[str, str] | None = None,
        url: str | None = None,
        form: bool = False,
    ) -> Response | None:
        url = url or self.random.choice(self.urls)
        sent = {"Authorization": f"Bearer {self.token}"} if self.token else {}
        sent.update(headers or {})
        payload = None
        if body is not None:
            payload = (urlencode(body) if form else json.dumps(body)).encode()
            sent["Content-Type"] = (
                "application/x-www-form-urlencoded" if form else "application/json"
            )
        connection = self._connection(url)
        started = time.perf_counter()
        try:
            connection.request(method, path, body=payload, headers=sent)
            raw = connection.getresponse()
            data = raw.read()
        except (OSError, http.client.HTTPException) as error:
            connection.close()
            self.connections.pop(url, None)
            self.stats.problem(f"{action}: transport error {error!r}")
            self.stats.record(action, 0, time.perf_counter() - started)
            return None
        elapsed = time.perf_counter() - started
        self.stats.record(action, raw.status, elapsed)
        response = Response(raw.status, {k.lower(): v for k, v in raw.getheaders()}, data)
        if raw.status >= 500:
            self.stats.problem(f"{action}: {raw.status} {data[:300]!r}")
        return response

    def expect(self, response: Response | None, status: int, action: str) -> bool:
        if response is None:
            return False
        if response.status != status:
            self.stats.problem(f"{action}: expected {status}, got {response.status}")
            return False
        return True

    # Setup (not timed)

    def sign_up(self) -> None:
        created = self.request(
            "setup", "POST", "/users", {"email": self.email, "password": PASSWORD}
        )
        if not self.expect(created, 201, "sign up"):
            raise RuntimeError(f"sign up failed: {created}")
        self.login()

    # Actions

    def login(self) -> None:
        self.token = ""
        issued = self.request(
            "login", "POST", "/token", {"username": self.email, "password": PASSWORD}, form=True
        )
        if self.expect(issued, 200, "login") and issued is not None:
            self.token = issued.json()["access_token"]

    def _new_task(self) -> dict[str, Any]:
        deadline = datetime.now(UTC) + timedelta(minutes=self.random.randrange(1, 60 * 24 * 60))
        return {
            "description": f"Task {uuid.uuid4().hex[:12]} of client {self.index}",
            "category": self.random.choice(["work", "home", "errands", "study"]),
            "deadline": deadline.isoformat(timespec="microseconds").replace("+00:00", "Z"),
            "status": self.random.choice(STATUSES),
        }

    def create(self) -> None:
        headers = {"Idempotency-Key": str(uuid.uuid4())} if self.random.random() < 0.5 else None
        created = self.request("create", "POST", "/tasks", self._new_task(), headers)
        if self.expect(created, 201, "create") and created is not None:
            task = created.json()
            self.tasks[task["id"]] = (task, created.headers["etag"])

    def create_retry(self) -> None:
        """The same create sent at once to two workers with one key: both get the one task."""
        key = str(uuid.uuid4())
        body = self._new_task()
        first, second = self.random.sample(self.urls, 2) if len(self.urls) > 1 else self.urls * 2
        answers: list[Response | None] = [None, None]
        twin = Client(self.index, self.urls, self.stats, self.random.randrange(2**32))
        twin.token = self.token

        def send(client: Client, slot: int, url: str) -> None:
            headers = {"Idempotency-Key": key}
            answers[slot] = client.request("create_retry", "POST", "/tasks", body, headers, url)

        threads = [
            threading.Thread(target=send, args=(self, 0, first)),
            threading.Thread(target=send, args=(twin, 1, second)),
        ]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join(timeout=60)
        for connection in twin.connections.values():
            connection.close()
        if not all(self.expect(answer, 201, "create_retry") for answer in answers):
            return
        one, other = (answer.json() for answer in answers if answer is not None)
        if one != other:
            self.stats.problem(f"create_retry: two different results for one key: {one} {other}")
            return
        replayed = [answer.headers.get("idempotent-replayed") for answer in answers if answer]
        if sorted(replayed, key=str) != sorted([None, "true"], key=str):
            self.stats.problem(
                f"create_retry: expected one first result and one replay: {replayed}"
            )
        self.tasks[one["id"]] = (one, answers[0].headers["etag"] if answers[0] else "")
        self.retried_keys.append(key)

    def list_pages(self) -> None:
        query: dict[str, Any] = {"limit": 10}
        if self.random.random() < 0.3:
            query["status"] = self.random.choice(STATUSES)
        path = f"/tasks?{urlencode(query)}"
        for _ in range(3):  # at most three pages
            page = self.request("list", "GET", path)
            if not self.expect(page, 200, "list") or page is None:
                return
            link = page.headers.get("link")
            if not link:
                return
            target = urlsplit(link.split(";", 1)[0].strip("<> "))
            path = f"{target.path}?{target.query}"

    def _pick(self) -> int | None:
        return self.random.choice(list(self.tasks)) if self.tasks else None

    def get(self) -> None:
        task_id = self._pick()
        if task_id is None:
            return self.create()
        fetched = self.request("get", "GET", f"/tasks/{task_id}")
        if self.expect(fetched, 200, "get") and fetched is not None:
            known, etag = self.tasks[task_id]
            if fetched.json() != known or fetched.headers.get("etag") != etag:
                self.stats.problem(f"get: task {task_id} is not as last acknowledged")
        return None

    def patch(self) -> None:
        task_id = self._pick()
        if task_id is None:
            return self.create()
        _, etag = self.tasks[task_id]
        change = self.random.choice(
            [
                {"status": self.random.choice(STATUSES)},
                {"description": f"Edited {uuid.uuid4().hex[:12]}"},
                {"category": self.random.choice(["work", "home", "errands"]), "status": "Done"},
            ]
        )
        changed = self.request("patch", "PATCH", f"/tasks/{task_id}", change, {"If-Match": etag})
        if self.expect(changed, 200, "patch") and changed is not None:
            self.tasks[task_id] = (changed.json(), changed.headers["etag"])
        return None

    def delete(self) -> None:
        task_id = self._pick()
        if task_id is None:
            return self.create()
        _, etag = self.tasks[task_id]
        deleted = self.request("delete", "DELETE", f"/tasks/{task_id}", headers={"If-Match": etag})
        if self.expect(deleted, 204, "delete"):
            del self.tasks[task_id]
            self.deleted.add(task_id)
        return None

    def run(self, until: float) -> None:
        actions = list(MIX)
        weights = [MIX[name] for name in actions]
        handlers = {
            "login": self.login,
            "create": self.create,
            "create_retry": self.create_retry,
            "list": self.list_pages,
            "get": self.get,
            "patch": self.patch,
            "delete": self.delete,
        }
        while time.monotonic() < until:
            handlers[self.random.choices(actions, weights)[0]]()
        for connection in self.connections.values():
            connection.close()


def sample_connections(url: str, stop: threading.Event, samples: list[tuple[int, int]]) -> None:
    """Every 0.25 s: (connections from the API, all connections) to the load database."""
    engine = create_engine(sqlalchemy_url(url), pool_size=1)
    query = text(
        "SELECT count(*) FILTER (WHERE application_name = 'taskline'), count(*) "
        "FROM pg_stat_activity WHERE datname = :name"
    )
    with engine.connect() as connection:
        while not stop.is_set():
            api, total = connection.execute(query, {"name": DATABASE}).one()
            connection.commit()
            samples.append((int(api), int(total)))
            stop.wait(0.25)
    engine.dispose()


def created_task_id(
    status: int | None,
    headers: dict[str, str] | None,
    body: str | None,
    legacy: dict[str, Any] | None,
) -> int | None:
    """The task an idempotency key's stored first answer created: its Location header (the key
    stores the response as sent since migration 0005), else its body's id; keys stored before
    that migration hold the task in the old `response` column."""
    if status is not None:
        location = {name.lower(): value for name, value in (headers or {}).items()}.get("location")
        if location:
            return int(location.rstrip("/").rpartition("/")[2])
        if body and status == 201:
            return int(json.loads(body)["id"])
        return None
    return int(legacy["id"]) if legacy else None


def verify(url: str, clients: list[Client], stats: Stats) -> dict[str, int]:
    """Read everything back from PostgreSQL and hold it against the clients' ledgers."""
    from taskline.api.etags import etag_for
    from taskline.schemas import TaskOut

    engine = create_engine(sqlalchemy_url(url))
    with engine.connect() as connection:
        rows = connection.execute(
            text(
                # Every column: TaskOut picks the task's fields (and ignores the rest).
                "SELECT t.*, u.email FROM tasks t JOIN users u ON u.id = t.user_id"
            )
        ).mappings()
        in_db = {row["id"]: row for row in rows}
        keys = connection.execute(
            text(
                "SELECT response_status, response_headers, response_body, response"
                " FROM idempotency_keys"
            )
        ).all()
    engine.dispose()
    keys_per_task = Counter(created_task_id(*key) for key in keys)
    acknowledged = 0
    for client in clients:
        for task_id, (body, etag) in client.tasks.items():
            acknowledged += 1
            row = in_db.pop(task_id, None)
            if row is None:
                stats.problem(f"lost: task {task_id} acknowledged to client {client.index}")
                continue
            stored = TaskOut.model_validate(dict(row)).model_dump(mode="json")
            if (
                row["email"] != client.email
                or stored != body
                or etag_for(TaskOut(**stored)) != etag
            ):
                stats.problem(f"changed: task {task_id} differs from its last acknowledged state")
        for task_id in client.deleted:
            if in_db.pop(task_id, None) is not None:
                stats.problem(f"resurrected: task {task_id} was acknowledged as deleted")
    for task_id in in_db:
        stats.problem(f"unacknowledged: task {task_id} exists but no client was told of it")
    for key_task, count in keys_per_task.items():
        if key_task is None:
            stats.problem(f"lost: {count} idempotency keys point at no task")
        elif count != 1:
            stats.problem(f"duplicate: {count} idempotency keys point at task {key_task}")
    return {
        "acknowledged_live_tasks": acknowledged,
        "acknowledged_deletes": sum(len(client.deleted) for client in clients),
        "concurrent_retries": sum(len(client.retried_keys) for client in clients),
    }


def percentile(values: list[float], fraction: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(fraction * len(ordered)))]


def main() -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawTextHelpFormatter
    )
    parser.add_argument("--workers", type=int, default=4, help="server processes (default 4)")
    parser.add_argument("--clients", type=int, default=8, help="concurrent clients (default 8)")
    parser.add_argument("--seconds", type=float, default=20, help="timed run (default 20)")
    parser.add_argument("--port", type=int, default=3105, help="first worker port (default 3105)")
    parser.add_argument("--bcrypt-rounds", default="10", help="server bcrypt cost (default 10)")
    parser.add_argument("--seed", type=int, default=20261126)
    parser.add_argument("--json", type=Path, help="also write the summary here")
    args = parser.parse_args()
    if not (1 <= args.workers <= 16 and 1 <= args.clients <= 64 and 1 <= args.seconds <= 300):
        parser.error("keep it bounded: 1-16 workers, 1-64 clients, 1-300 seconds")

    stats = Stats()
    extra_env = {
        "BCRYPT_ROUNDS": args.bcrypt_rounds,
        "POWERTOOLS_LOG_LEVEL": "WARNING",
        "DB_POOL_SIZE": "1",
    }
    print(f"starting {args.workers} workers on ports {args.port}..{args.port + args.workers - 1}")
    with local_servers(args.workers, args.port, DATABASE, extra_env) as servers:
        database_url = servers.database_url
        clients = [Client(i, servers.urls, stats, args.seed + i) for i in range(args.clients)]
        for client in clients:
            client.sign_up()
        samples: list[tuple[int, int]] = []
        stop = threading.Event()
        sampler = threading.Thread(target=sample_connections, args=(database_url, stop, samples))
        sampler.start()
        started = time.monotonic()
        until = started + args.seconds
        threads = [threading.Thread(target=client.run, args=(until,)) for client in clients]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join(timeout=args.seconds + 120)
        elapsed = time.monotonic() - started
        stop.set()
        sampler.join(timeout=10)
        ledger = verify(database_url, clients, stats)

    timed = {action: values for action, values in stats.latencies.items() if action != "setup"}
    total = sum(len(values) for values in timed.values())
    every = [value for values in timed.values() for value in values]
    server_errors = sum(n for (action, status), n in stats.statuses.items() if status >= 500)
    transport_errors = sum(n for (action, status), n in stats.statuses.items() if status == 0)
    api_connections = max((api for api, _ in samples), default=0)
    bound = args.workers * int(extra_env["DB_POOL_SIZE"])
    summary: dict[str, Any] = {
        "workers": args.workers,
        "clients": args.clients,
        "seconds": round(elapsed, 1),
        "bcrypt_rounds": int(args.bcrypt_rounds),
        "requests": total,
        "throughput_rps": round(total / elapsed, 1),
        "p50_ms": round(percentile(every, 0.50) * 1000, 1),
        "p99_ms": round(percentile(every, 0.99) * 1000, 1),
        "server_errors_5xx": server_errors,
        "transport_errors": transport_errors,
        "db_connections_max": api_connections,
        "db_connections_bound": bound,
        "db_connections_samples": len(samples),
        **ledger,
        "problems": len(stats.problems),
        "per_action": {
            action: {
                "requests": len(values),
                "p50_ms": round(percentile(values, 0.50) * 1000, 1),
                "p99_ms": round(percentile(values, 0.99) * 1000, 1),
                "statuses": {
                    str(status): n
                    for (name, status), n in sorted(stats.statuses.items())
                    if name == action
                },
            }
            for action, values in sorted(timed.items())
        },
    }
    print(f"\n{'action':<13}{'requests':>9}{'p50 ms':>9}{'p99 ms':>9}  statuses")
    for action, figures in summary["per_action"].items():
        print(
            f"{action:<13}{figures['requests']:>9}{figures['p50_ms']:>9}{figures['p99_ms']:>9}"
            f"  {figures['statuses']}"
        )
    print(
        f"\n{total} requests in {elapsed:.1f} s = {summary['throughput_rps']} req/s; "
        f"p50 {summary['p50_ms']} ms, p99 {summary['p99_ms']} ms; "
        f"5xx {server_errors}, transport errors {transport_errors}"
    )
    print(
        f"database connections from the API: max {api_connections} "
        f"(bound {bound} = {args.workers} workers x DB_POOL_SIZE 1) over {len(samples)} samples"
    )
    print(
        f"read back: {ledger['acknowledged_live_tasks']} acknowledged tasks present as last "
        f"acknowledged, {ledger['acknowledged_deletes']} acknowledged deletes absent, "
        f"{ledger['concurrent_retries']} concurrent same-key creates -> one task each"
    )
    for problem in stats.problems[:20]:
        print(f"PROBLEM: {problem}")
    if args.json:
        args.json.write_text(json.dumps(summary, indent=2) + "\n")
    failed = stats.problems or server_errors or transport_errors or api_connections > bound
    print("LOAD TEST FAILED" if failed else "load test passed")
    return 1 if failed else 0


if __name__ == "__main__":
    raise SystemExit(main())
