"""Load drivers: wrk for throughput, small Python clients for latency samples, bursts and key sweeps."""

from __future__ import annotations

import collections
import dataclasses
import http.client
import json
import re
import shutil
import statistics
import subprocess
import threading
import time
from collections.abc import Iterable, Iterator
from pathlib import Path
from urllib.parse import urlsplit

from bench.servers import cpu_list

WRK_SCRIPTS = Path(__file__).resolve().parent / "wrk"
SERVER_TIMING = re.compile(r"render;dur=([0-9.]+)")


@dataclasses.dataclass(frozen=True)
class WrkRun:
    """What wrk measured in one run."""

    rps: float
    requests: int
    duration_s: float
    bytes_per_response: float
    errors: dict[str, int]
    latency_ms: dict[str, float]
    connections: int
    threads: int

    def as_json(self) -> dict[str, object]:
        return dataclasses.asdict(self)


def wrk(url: str, *, script: str, args: Iterable[str] = (), headers: Iterable[str] = (), duration_s: float,
        connections: int, threads: int, cpus: frozenset[int]) -> WrkRun:
    """Run wrk pinned to ``cpus`` and parse the line report.lua prints."""
    binary = shutil.which("wrk")
    if binary is None:
        raise RuntimeError("wrk is not installed (apt-get install wrk)")
    seconds = max(1, round(duration_s))
    command = [binary, f"-t{threads}", f"-c{connections}", f"-d{seconds}s", "--timeout", "5s"]
    for header in headers:
        command += ["-H", header]
    command += ["-s", script, url, "--", *args]
    if shutil.which("taskset") and cpus:
        command = ["taskset", "-c", cpu_list(cpus), *command]
    done = subprocess.run(command, cwd=WRK_SCRIPTS, capture_output=True, text=True, timeout=duration_s + 60)
    line = next((line for line in done.stdout.splitlines() if line.startswith("BENCH_JSON ")), None)
    if done.returncode != 0 or line is None:
        raise RuntimeError(f"wrk failed ({done.returncode}): {done.stdout[-2000:]} {done.stderr[-2000:]}")
    data = json.loads(line.removeprefix("BENCH_JSON "))
    duration = data["duration_us"] / 1e6
    requests = data["requests"]
    latency = {key: round(value / 1000, 3) for key, value in data["latency_us"].items()}
    return WrkRun(rps=round(requests / duration, 1), requests=requests, duration_s=round(duration, 2),
                  bytes_per_response=round(data["bytes"] / requests, 1) if requests else 0.0,
                  errors=data["errors"], latency_ms=latency, connections=connections, threads=threads)


@dataclasses.dataclass
class Reply:
    status: int
    headers: dict[str, str]  # lower-case names; the last value of a repeated header
    header_list: list[tuple[str, str]]  # as sent, in order
    body: bytes
    elapsed_s: float


class Client:
    """One keep-alive HTTP/1.1 connection to the server under test; reconnects when the server closes."""

    def __init__(self, base_url: str, timeout: float = 30) -> None:
        parts = urlsplit(base_url)
        self.host, self.port, self.timeout = parts.hostname or "127.0.0.1", parts.port or 80, timeout
        self.connection: http.client.HTTPConnection | None = None

    def connect(self) -> None:
        self.close()
        self.connection = http.client.HTTPConnection(self.host, self.port, timeout=self.timeout)
        self.connection.connect()

    def request(self, method: str, path: str, headers: dict[str, str] | None = None, body: bytes | None = None
                ) -> Reply:
        for attempt in (1, 2):
            if self.connection is None:
                self.connect()
            assert self.connection is not None
            started = time.perf_counter()
            try:
                self.connection.request(method, path, body=body, headers=headers or {})
                response = self.connection.getresponse()
                data = response.read()
            except (http.client.RemoteDisconnected, ConnectionResetError, BrokenPipeError):
                # A keep-alive connection the server closed between requests: retry once on a new one.
                self.close()
                if attempt == 2:
                    raise
                continue
            elapsed = time.perf_counter() - started
            header_list = response.getheaders()
            if response.will_close:
                self.close()
            return Reply(response.status, {k.lower(): v for k, v in header_list}, header_list, data, elapsed)
        raise AssertionError("unreachable")

    def get(self, path: str, headers: dict[str, str] | None = None) -> Reply:
        return self.request("GET", path, headers)

    def close(self) -> None:
        if self.connection is not None:
            self.connection.close()
            self.connection = None


def percentiles(values: list[float]) -> dict[str, float]:
    """p50/p90/p99 (nearest rank), mean and max, rounded to microseconds; empty for no values."""
    if not values:
        return {}
    ordered = sorted(values)

    def rank(p: float) -> float:
        return ordered[min(len(ordered) - 1, max(0, int(round(p / 100 * len(ordered) + 0.5)) - 1))]

    return {"p50": round(rank(50), 3), "p90": round(rank(90), 3), "p99": round(rank(99), 3),
            "mean": round(statistics.fmean(ordered), 3), "max": round(ordered[-1], 3), "n": len(ordered)}


def cold_latencies(base_url: str, paths: Iterable[str], headers: dict[str, str],
                   warm_up: Iterable[str] = (), settle_s: float = 0.0) -> dict[str, object]:
    """One request per never-requested key, one at a time on one connection: the origin's miss latency.

    Client time is measured around the whole request (loopback, keep-alive); the server's own figure
    is the ``Server-Timing: render;dur=`` the project sends on a miss. ``warm_up``: paths asked
    first on the same connection (so of the same worker) and not measured, then ``settle_s`` of rest.
    """
    client = Client(base_url)
    client.get("/healthz")
    for path in warm_up:
        client.get(path, headers)
    time.sleep(settle_s)
    client_ms: list[float] = []
    server_ms: list[float] = []
    statuses: collections.Counter[str] = collections.Counter()
    try:
        for path in paths:
            reply = client.get(path, headers)
            statuses[f"{reply.status} {reply.headers.get('x-cache', '-')}"] += 1
            client_ms.append(reply.elapsed_s * 1000)
            found = SERVER_TIMING.search(reply.headers.get("server-timing", ""))
            if found:
                server_ms.append(float(found.group(1)))
    finally:
        client.close()
    return {"client_ms": percentiles(client_ms), "server_timing_render_ms": percentiles(server_ms),
            "responses": dict(statuses)}


def burst(base_url: str, path: str, headers: dict[str, str], count: int) -> dict[str, object]:
    """``count`` requests for one path sent at the same instant, each on its own connection."""
    clients = [Client(base_url) for _ in range(count)]
    for client in clients:
        client.connect()
    barrier = threading.Barrier(count)
    replies: list[Reply | BaseException] = [RuntimeError("not sent")] * count

    def send(index: int) -> None:
        barrier.wait()
        try:
            replies[index] = clients[index].get(path, headers)
        except BaseException as error:  # noqa: BLE001 - reported as a failed request
            replies[index] = error

    threads = [threading.Thread(target=send, args=(i,), daemon=True) for i in range(count)]
    started = time.perf_counter()
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(60)
    elapsed = time.perf_counter() - started
    for client in clients:
        client.close()
    outcomes: collections.Counter[str] = collections.Counter()
    etags = set()
    for reply in replies:
        if isinstance(reply, Reply):
            outcomes[f"{reply.status} {reply.headers.get('x-cache', '-')}"] += 1
            etags.add(reply.headers.get("etag"))
        else:
            outcomes[f"error {type(reply).__name__}"] += 1
    return {"responses": dict(outcomes), "distinct_etags": len(etags), "elapsed_s": round(elapsed, 3)}


def sweep(base_url: str, paths: Iterator[str], headers: dict[str, str], *, threads: int, deadline: float,
          reconnect_every: int) -> dict[str, object]:
    """Request each path once, from ``threads`` connections, until the paths or the time run out.

    Connections are reopened every ``reconnect_every`` requests so that the server's workers share
    the keys (a keep-alive connection stays with the worker that accepted it).
    """
    lock = threading.Lock()
    statuses: collections.Counter[str] = collections.Counter()
    body_bytes = [0]
    done = [0]

    def next_path() -> str | None:
        with lock:
            if time.monotonic() >= deadline:
                return None
            return next(paths, None)

    def work() -> None:
        client = Client(base_url)
        sent = failures = 0
        try:
            while (path := next_path()) is not None:
                if sent and sent % reconnect_every == 0:
                    client.close()
                try:
                    reply = client.get(path, headers)
                except (OSError, http.client.HTTPException) as error:
                    client.close()
                    failures += 1
                    with lock:
                        statuses[f"error {type(error).__name__}"] += 1
                    if failures >= 10:
                        return  # the server is gone: the counts say so
                    continue
                sent += 1
                failures = 0
                with lock:
                    statuses[f"{reply.status} {reply.headers.get('x-cache', '-')}"] += 1
                    body_bytes[0] += len(reply.body)
                    done[0] += 1
        finally:
            client.close()

    # Daemons: a stopped run (SIGTERM, Ctrl-C) exits without waiting for the sweep to finish.
    workers = [threading.Thread(target=work, daemon=True) for _ in range(threads)]
    started = time.perf_counter()
    for worker in workers:
        worker.start()
    for worker in workers:
        worker.join()
    return {"requests": done[0], "responses": dict(statuses), "body_bytes": body_bytes[0],
            "elapsed_s": round(time.perf_counter() - started, 2)}


METRIC_LINE = re.compile(r"^([a-zA-Z_:][a-zA-Z0-9_:]*)(?:\{([^}]*)\})?\s+([-+0-9.eEinfNa]+)$")
LABEL = re.compile(r'([a-zA-Z_][a-zA-Z0-9_]*)="((?:[^"\\]|\\.)*)"')
Metrics = dict[tuple[str, tuple[tuple[str, str], ...]], float]


def metrics(base_url: str) -> Metrics:
    """The project's /metrics (summed across workers by the app) as {(name, sorted labels): value}."""
    reply = Client(base_url).get("/metrics")
    if reply.status != 200:
        raise RuntimeError(f"/metrics answered {reply.status}")
    values = {}
    for line in reply.body.decode().splitlines():
        found = METRIC_LINE.match(line.strip())
        if found:
            labels = tuple(sorted(LABEL.findall(found.group(2) or "")))
            values[(found.group(1), labels)] = float(found.group(3))
    return values


def metric_sum(values: Metrics, name: str, **labels: str) -> float:
    """Sum of ``name`` over every series whose labels include ``labels``."""
    return sum(value for (metric, series), value in values.items()
               if metric == name and all((key, want) in series for key, want in labels.items()))
