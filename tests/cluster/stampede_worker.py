"""One worker process of the cluster stampede test: many threads asking a cluster-backed RenderCache."""

from __future__ import annotations

import os
import threading
import time
import uuid
from typing import Any

from redis.cluster import RedisCluster

from storefront.cache import LocalCache, RedisClusterCache, RenderCache


def run_worker(
    seed_url: str, key_prefix: str, counter_key: str, key: str, threads: int, ready: Any, results: Any
) -> None:
    """Start ``threads`` threads, wait until every process is ready, release them together, report."""
    # Timeouts generous enough for 200 threads on two cores: this test is about single flight, not faults.
    shared = RedisClusterCache(seed_url, key_prefix=key_prefix, connect_timeout_ms=2000, timeout_ms=2000)
    cache = RenderCache(
        LocalCache(8 * 1024 * 1024), shared, render_ttl_s=60, stale_ttl_s=60, local_ttl_s=5,
        lock_ttl_ms=20_000, lock_wait_ms=15_000, negative_ttl_s=5,
    )
    counter = RedisCluster.from_url(seed_url, socket_timeout=10)

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
    counter.disconnect_connection_pools()
    counter.close()
    shared.close()
