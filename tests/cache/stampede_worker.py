"""The stampede test's processes: many threads in each asking a shared RenderCache for one key at once.

One worker for both shared tiers: a single Redis (``cluster=False``) and a Redis Cluster seeded by
``url`` (``cluster=True``). ``run_stampede`` starts the processes and collects what they report.
"""

from __future__ import annotations

import multiprocessing
import os
import queue
import threading
import time
import uuid
from typing import Any

import pytest
import redis
from redis.cluster import RedisCluster

from storefront.cache import LocalCache, RedisCache, RedisClusterCache, RenderCache


def run_worker(
    url: str, cluster: bool, key_prefix: str, counter_key: str, key: str, threads: int, ready: Any,
    results: Any,
) -> None:
    """Start ``threads`` threads, wait until every process is ready, release them together, report."""
    # Timeouts generous enough for 200 threads on two cores: this test is about single flight, not faults.
    shared_class = RedisClusterCache if cluster else RedisCache
    shared = shared_class(url, key_prefix=key_prefix, connect_timeout_ms=2000, timeout_ms=2000)
    cache = RenderCache(
        LocalCache(8 * 1024 * 1024), shared, render_ttl_s=60, stale_ttl_s=60, local_ttl_s=5,
        lock_ttl_ms=20_000, lock_wait_ms=15_000, negative_ttl_s=5,
    )
    counter: Any = RedisCluster.from_url(url, socket_timeout=10) if cluster else redis.Redis.from_url(url)

    def render() -> tuple[bytes, str]:
        number = counter.incr(counter_key)
        time.sleep(0.1)
        return f"render {number} in pid {os.getpid()} ({uuid.uuid4()})".encode(), "text/html"

    go = threading.Barrier(threads + 1)
    outcomes: list[Any] = [None] * threads

    def ask(index: int) -> None:
        go.wait()
        try:
            result = cache.get_or_render(key, render)
            outcomes[index] = (result.status, result.tier, result.entry.identity)
        except Exception as exc:  # reported to the parent, which fails the test with it
            outcomes[index] = ("ERROR", type(exc).__name__, str(exc).encode())

    workers = [threading.Thread(target=ask, args=(index,)) for index in range(threads)]
    for worker in workers:
        worker.start()
    ready.wait(60)
    go.wait(60)
    for worker in workers:
        worker.join(60)
    results.put((outcomes, shared.stats()))
    if cluster:
        counter.disconnect_connection_pools()
    counter.close()
    shared.close()


def run_stampede(
    url: str, cluster: bool, key_prefix: str, counter_key: str, key: str, processes: int, threads: int
) -> tuple[list[Any], list[dict[str, Any]], list[int | None]]:
    """``processes`` x ``threads`` ask for ``key`` at once: (every outcome, each process's Redis
    stats, the exit codes). Fails the test if a process does not report back."""
    context = multiprocessing.get_context("spawn")
    ready = context.Barrier(processes + 1)
    results = context.Queue()
    started = [
        context.Process(target=run_worker,
                        args=(url, cluster, key_prefix, counter_key, key, threads, ready, results))
        for _ in range(processes)
    ]
    for process in started:
        process.start()
    outcomes: list[Any] = []
    stats: list[dict[str, Any]] = []
    try:
        ready.wait(60)
        for _ in range(processes):
            worker_outcomes, worker_stats = results.get(timeout=60)
            outcomes.extend(worker_outcomes)
            stats.append(worker_stats)
    except (queue.Empty, multiprocessing.BrokenBarrierError):
        pytest.fail("a worker process did not report back")
    finally:
        for process in started:
            process.join(30)
            if process.is_alive():
                process.kill()
    return outcomes, stats, [process.exitcode for process in started]
