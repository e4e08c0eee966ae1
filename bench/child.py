"""One Lambda container in a fresh interpreter: `python -I -S bench/child.py SPEC.json`.

Started by `bench/run.py`. Like the Lambda runtime, it puts the function's code and its
dependencies on sys.path, imports the handler module, and calls the handler with HTTP API 2.0
events. It uses the standard library only, so nothing is imported on the handlers' behalf.

It reports one JSON line on the stdout it was started with; the handlers' own stdout (logs,
EMF metrics) goes to /dev/null, as cheap a sink as CloudWatch's agent is for a real function.

Modes:
- `cold`: import, answer the first request, report, exit (the parent times the whole process).
- `imports`: only import the libraries listed (what every design on this stack must load).
- `restore`: a SnapStart restore: import, run the before-snapshot hook named in the spec
  (everything imported, the engine built, no connection), then the first request alone, its
  round trips counted and its time split into phases (report, exit).
- `warm`: the same first request, then per route: the database round trips and statements of
  one request (counted on the wire), then the latency of thousands of invocations; optionally
  the same SQL replayed through raw pg8000 in this same process (the floor), in blocks that
  take turns with the function's.
"""

from __future__ import annotations

import time

STARTED = time.perf_counter()

import importlib  # noqa: E402 - the clock starts before anything else is imported
import json  # noqa: E402
import os  # noqa: E402
import re  # noqa: E402
import socket  # noqa: E402
import struct  # noqa: E402
import sys  # noqa: E402
import uuid  # noqa: E402
from typing import Any  # noqa: E402


class Context:
    """The attributes of the Lambda context object that handlers and Powertools read."""

    function_name = "bench"
    function_version = "$LATEST"
    invoked_function_arn = "arn:aws:lambda:us-east-1:123456789012:function:bench"
    memory_limit_in_mb = 1024
    log_group_name = "/aws/lambda/bench"
    log_stream_name = "bench"

    def __init__(self) -> None:
        self.aws_request_id = str(uuid.uuid4())

    def get_remaining_time_in_millis(self) -> int:
        return 10_000


class Wire:
    """Counts what crosses the PostgreSQL socket, whatever driver code sits above it.

    A round trip is a turn of the conversation: the client sends (one or more writes) and then
    waits for the server's answer. Statements are the Parse ('P') and simple Query ('Q')
    messages in what the client sent; Bind ('B') messages carry the parameter values.
    """

    def __init__(self) -> None:
        self.round_trips = 0
        self.statements: list[list[Any]] = []  # [sql, [text parameters] or None]
        # Each round trip: when the client began it, and the first message it sent.
        self.turns: list[tuple[float, str]] = []
        self._state: dict[int, dict[str, Any]] = {}
        self._write = socket.SocketIO.write
        self._readinto = socket.SocketIO.readinto

    def start(self) -> None:
        self.round_trips = 0
        self.statements = []
        self.turns = []
        wire = self

        def write(io: socket.SocketIO, data: Any) -> Any:
            state = wire._state.setdefault(id(io), {"buffer": b"", "startup": True})
            if state.get("last") != "write":
                wire.round_trips += 1
                first = bytes(data[:1])
                kind = "startup" if state["startup"] else first.decode("latin-1")
                wire.turns.append((time.perf_counter(), kind))
            state["last"] = "write"
            state["buffer"] += bytes(data)
            wire._parse(state)
            return wire._write(io, data)

        def readinto(io: socket.SocketIO, buffer: Any) -> Any:
            wire._state.setdefault(id(io), {"buffer": b"", "startup": False})["last"] = "read"
            return wire._readinto(io, buffer)

        socket.SocketIO.write = write  # type: ignore[method-assign]
        socket.SocketIO.readinto = readinto  # type: ignore[method-assign]

    def stop(self) -> None:
        socket.SocketIO.write = self._write  # type: ignore[method-assign]
        socket.SocketIO.readinto = self._readinto  # type: ignore[method-assign]

    def _parse(self, state: dict[str, Any]) -> None:
        buffer: bytes = state["buffer"]
        while True:
            if state["startup"]:  # the startup packet: length, then payload, no type byte
                if len(buffer) < 4:
                    break
                (length,) = struct.unpack("!i", buffer[:4])
                if len(buffer) < length:
                    break
                buffer, state["startup"] = buffer[length:], False
                continue
            if len(buffer) < 5:
                break
            kind, (length,) = buffer[:1], struct.unpack("!i", buffer[1:5])
            if len(buffer) < 1 + length:
                break
            payload, buffer = buffer[5 : 1 + length], buffer[1 + length :]
            if kind == b"Q":
                self.statements.append([payload[:-1].decode(), None])
            elif kind == b"P":
                self.statements.append([payload.split(b"\0")[1].decode(), []])
            elif kind == b"B" and self.statements:
                self.statements[-1][1] = _bind_values(payload)
        state["buffer"] = buffer


def _bind_values(payload: bytes) -> list[str | None]:
    portal_end = payload.index(b"\0")
    offset = payload.index(b"\0", portal_end + 1) + 1
    (formats,) = struct.unpack_from("!h", payload, offset)
    offset += 2 + 2 * formats
    (count,) = struct.unpack_from("!h", payload, offset)
    offset += 2
    values: list[str | None] = []
    for _ in range(count):
        (length,) = struct.unpack_from("!i", payload, offset)
        offset += 4
        if length < 0:
            values.append(None)
        else:
            values.append(payload[offset : offset + length].decode())
            offset += length
    return values


def phases(turns: list[tuple[float, str]], begun: float, ended: float) -> dict[str, float]:
    """The first request's time by phase, from when each round trip began: before the first
    byte to the database (routing, the token, the pool), connecting (TLS, startup and
    authentication), the first connection's other queries (the dialect's), and the request's
    own statement with the response."""
    statements = [t for t, kind in turns if kind in ("P", "Q")]
    if not turns or not statements:
        return {"before_database": (ended - begun) * 1e3}
    first_byte, first_statement, last = turns[0][0], statements[0], statements[-1]
    return {
        "before_database": (first_byte - begun) * 1e3,
        "connect": (first_statement - first_byte) * 1e3,
        "first_connection_queries": (last - first_statement) * 1e3,
        "query_and_response": (ended - last) * 1e3,
    }


def peak_rss_kb() -> int:
    """VmHWM: this process's peak resident set. (ru_maxrss would not do: Linux carries the
    parent's peak over into a forked child.)"""
    with open("/proc/self/status") as status:  # noqa: PTH123
        for line in status:
            if line.startswith("VmHWM:"):
                return int(line.split()[1])
    return -1


def percentiles(samples_ns: list[int]) -> dict[str, float]:
    ordered = sorted(samples_ns)

    def at(q: float) -> float:
        return ordered[min(len(ordered) - 1, int(q * len(ordered)))] / 1e6

    return {
        "n": len(ordered),
        "p50_ms": at(0.50),
        "p99_ms": at(0.99),
        "mean_ms": sum(ordered) / len(ordered) / 1e6,
    }


def invoke(handler: Any, event: dict[str, Any]) -> dict[str, Any]:
    result: dict[str, Any] = handler(event, Context())
    return result


def check(name: str, result: dict[str, Any], expected: int) -> None:
    if result.get("statusCode") != expected:
        raise SystemExit(
            f"{name}: expected {expected}, got {result.get('statusCode')}: "
            f"{str(result.get('body'))[:300]}"
        )


BLOCK = 250  # invocations in a row before the floor's turn: each keeps its caches warm


class Lane:
    """One thing timed in blocks: a route's handler, or one of its floors."""

    def __init__(self, route: str, label: str | None, call: Any, iterations: int) -> None:
        self.route, self.label, self.call, self.remaining = route, label, call, iterations
        self.samples: list[int] = []


def timed(
    handler: Any,
    group: list[tuple[str, dict[str, Any], int, dict[str, Any], dict[str, Any]]],
) -> dict[str, tuple[dict[str, float], dict[str, dict[str, float]]]]:
    """p50/p99 of the handler for each route of `group` (name, event, status, options, floors).

    Blocks of each route's invocations and blocks of each of its floors take turns, so all of
    them see the machine at the same moments (a noisy neighbour slows every one) while each
    runs warm, as in a loop of its own. Routes compared with each other (page 1 and page
    1,000) are timed in one group for the same reason: measured one after the other, their
    ratio would be that of the machine's load in two different windows.
    """
    lanes: list[Lane] = []
    for name, event, expected, options, floors in group:
        for _ in range(options["warmup"]):
            check(name, invoke(handler, event), expected)
            for call in floors.values():
                call()
        lanes.append(Lane(name, None, (event, expected), options["iterations"]))
        lanes.extend(
            Lane(name, label, call, options["iterations"]) for label, call in floors.items()
        )
    clock = time.perf_counter_ns
    while any(lane.remaining > 0 for lane in lanes):
        for lane in lanes:
            block = min(BLOCK, lane.remaining)
            lane.remaining -= block
            samples = lane.samples
            if lane.label is None:
                event, expected = lane.call
                for _ in range(block):
                    context = Context()
                    begun = clock()
                    result = handler(event, context)
                    samples.append(clock() - begun)
                    if result.get("statusCode") != expected:
                        check(lane.route, result, expected)
            else:
                call = lane.call
                for _ in range(block):
                    begun = clock()
                    call()
                    samples.append(clock() - begun)
    figures: dict[str, tuple[dict[str, float], dict[str, dict[str, float]]]] = {}
    for name, *_ in group:
        own = [lane for lane in lanes if lane.route == name]
        handler_figures = percentiles(next(lane for lane in own if lane.label is None).samples)
        floor_figures = {
            lane.label: percentiles(lane.samples) for lane in own if lane.label is not None
        }
        figures[name] = (handler_figures, floor_figures)
    return figures


CONTROL = re.compile(r"\s*(begin|commit|rollback|select 1\s*$|set |show )", re.IGNORECASE)


class Floor:
    """The same SQL the function sent, replayed through raw pg8000 in this process.

    `run`: pg8000.native.Connection.run, the way raw pg8000 is normally called (its protocol
    exchange costs 3 round trips per parameterized statement). `prepared`: a named prepared
    statement executed again and again (1 round trip each), the cheapest pg8000 can do.
    Transaction control and pings are left out: the floor is the data statements alone.
    """

    def __init__(self, connect: dict[str, Any]) -> None:
        import pg8000.native

        self.connection = pg8000.native.Connection(**connect)
        self.prepared: list[Any] = []

    def calls(self, sent: list[list[Any]]) -> dict[str, Any]:
        connection = self.connection
        statements = []
        for sql, values in sent:
            if values is None or CONTROL.match(sql):
                continue
            named = re.sub(r"\$(\d+)", r":p\1", sql)
            statements.append((named, {f"p{i}": v for i, v in enumerate(values, 1)}))
        prepared = [(connection.prepare(sql), params) for sql, params in statements]
        self.prepared.extend(statement for statement, _ in prepared)

        def run() -> None:
            for sql, params in statements:
                connection.run(sql, **params)

        def run_prepared() -> None:
            for statement, params in prepared:
                statement.run(**params)

        return {"run": run, "prepared": run_prepared}

    def close(self) -> None:
        for statement in self.prepared:
            statement.close()
        self.connection.close()


def main() -> None:
    with open(sys.argv[1]) as file:  # noqa: PTH123 - pathlib would be one more import to time
        spec = json.load(file)
    report = os.fdopen(os.dup(1), "w")
    sink = os.open(os.devnull, os.O_WRONLY)
    os.dup2(sink, 1)
    os.dup2(sink, 2) if spec.get("quiet_stderr") else None
    sys.path[:0] = spec["sys_path"]
    events: dict[str, dict[str, Any]] = spec["events"]
    wire = Wire()
    counting = spec["mode"] == "warm"

    imported_at = time.perf_counter()
    if spec["mode"] == "imports":  # the libraries alone, no handler: a lower bound
        for name in spec["imports"]:
            importlib.import_module(name)
        done_at = time.perf_counter()
        report.write(
            json.dumps(
                {
                    "started_to_import_ms": (imported_at - STARTED) * 1e3,
                    "import_ms": (done_at - imported_at) * 1e3,
                    "first_request_ms": 0.0,
                    "peak_rss_kb_after_first": peak_rss_kb(),
                    "modules_after_first": len(sys.modules),
                }
            )
            + "\n"
        )
        report.flush()
        return
    module = importlib.import_module(spec["module"])
    handler = getattr(module, spec["handler"])
    restoring = spec["mode"] == "restore"
    if restoring and spec.get("before_first"):
        hook_module, hook = spec["before_first"]
        getattr(importlib.import_module(hook_module), hook)()
    ready_at = time.perf_counter()
    first_name, first_status = spec["first"]
    if counting or restoring:
        wire.start()
    result = invoke(handler, events[first_name])
    answered_at = time.perf_counter()
    if counting or restoring:
        wire.stop()
    check(first_name, result, first_status)
    out: dict[str, Any] = {
        "started_to_import_ms": (imported_at - STARTED) * 1e3,
        "import_ms": (ready_at - imported_at) * 1e3,
        "first_request_ms": (answered_at - ready_at) * 1e3,
        "peak_rss_kb_after_first": peak_rss_kb(),
        "modules_after_first": len(sys.modules),
    }
    if restoring:
        out["first_round_trips"] = wire.round_trips
        out["first_statements"] = wire.statements
        out["first_turns"] = [kind for _, kind in wire.turns]
        out["first_phases_ms"] = phases(wire.turns, ready_at, answered_at)
    if not counting:
        report.write(json.dumps(out) + "\n")
        report.flush()
        return
    out["first_round_trips"] = wire.round_trips
    out["first_statements"] = wire.statements

    routes: dict[str, Any] = {}
    floors: dict[str, Any] = {}
    floor = Floor(spec["floor"]["connect"]) if spec.get("floor") else None
    # Routes named together in spec["together"] are timed in one group (see timed()).
    groups: list[list[str]] = []
    for name in spec["routes"]:
        if any(name in group for group in groups):
            continue
        together = next((g for g in spec.get("together", []) if name in g), [name])
        groups.append([n for n in together if n in spec["routes"]])
    for group in groups:
        members = []
        for name in group:
            options = spec["routes"][name]
            event, expected = events[options.get("event", name)], options["status"]
            wire.start()
            check(name, invoke(handler, event), expected)
            wire.stop()
            sent = wire.statements
            routes[name] = {"round_trips": wire.round_trips, "statements": sent}
            calls = floor.calls(sent) if floor and name in spec["floor"]["routes"] else {}
            trips = {}
            for label, call in calls.items():
                wire.start()
                call()
                wire.stop()
                trips[label] = wire.round_trips
            members.append((name, event, expected, options, calls, trips))
        timings = timed(handler, [(n, e, x, o, c) for n, e, x, o, c, _ in members])
        for name, _, _, _, calls, trips in members:
            figures, floor_figures = timings[name]
            routes[name].update(figures)
            if calls:
                floors[name] = {k: {**v, "round_trips": trips[k]} for k, v in floor_figures.items()}
    if floor:
        floor.close()
        out["floor"] = floors
    out["routes"] = routes
    if spec.get("bcrypt"):  # the password check alone, in this process, for POST /token
        import bcrypt

        given = spec["bcrypt"]
        password, hashed = given["password"].encode(), given["hash"].encode()
        samples = []
        for _ in range(given["iterations"]):
            begun = time.perf_counter_ns()
            bcrypt.checkpw(password, hashed)
            samples.append(time.perf_counter_ns() - begun)
        out["bcrypt"] = percentiles(samples)
    out["peak_rss_kb_end"] = peak_rss_kb()
    report.write(json.dumps(out) + "\n")
    report.flush()


if __name__ == "__main__":
    main()
