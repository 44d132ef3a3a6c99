"""Prometheus metrics under the contract's names, summed across gunicorn workers in multiprocess mode."""

from __future__ import annotations

import bisect
import collections
import os
import threading
from typing import Any

from prometheus_client import (
    CONTENT_TYPE_LATEST,
    CollectorRegistry,
    Counter,
    Histogram,
    generate_latest,
)
from prometheus_client import multiprocess as prometheus_multiprocess

from storefront.per_process import ProcessLoop

# Metrics live in prometheus_client's default registry: in multiprocess mode (gunicorn sets
# PROMETHEUS_MULTIPROC_DIR before any worker starts) each worker writes its own files and /metrics
# sums them, so every counter reads the same from whichever worker answers.
RENDERS = Counter("storefront_renders_total", "Widget renders (cache misses that rendered).", ["kind"])
CACHE_REQUESTS = Counter("storefront_cache_requests_total", "Render cache lookups by tier and result.",
                         ["tier", "result"])
STALE_SERVED = Counter("storefront_stale_served_total", "Responses served from a stale render.")
BACKEND_ERRORS = Counter("storefront_backend_errors_total", "Failures of a backend, answered by degrading.",
                         ["backend"])
REQUEST_DURATION = Histogram(
    "storefront_request_duration_seconds", "Time to answer a widget request.", ["endpoint"],
    buckets=(0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5),
)
RENDER_DURATION = Histogram(
    "storefront_render_duration_seconds", "Time to render a widget on a cache miss.", ["kind"],
    buckets=(0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0),
)

class HotPathMetrics:
    """Answers, their latencies and the render cache's lookups, queued in plain Python and moved to
    the metrics each second.

    In multiprocess mode every counter step writes an mmap'd file under a lock (about 3 us each,
    and a hit takes three), a large share of an answer that otherwise costs a few dict lookups.
    Here a request only appends to a deque (atomic, no lock: threads never wait for one another);
    a daemon thread in each process adds the queue up every ``FLUSH_S`` seconds, in one warm loop,
    and moves the sums to the shared metrics, and ``exposition`` flushes the answering process
    first. Other workers' last second may therefore show up one scrape later.
    """

    FLUSH_S = 1.0

    def __init__(self) -> None:
        self._duration = REQUEST_DURATION.labels("widgets")
        self._bounds = list(self._duration._upper_bounds)
        # (True: an in-process hit, seconds) per answer; (tier, result) per render cache lookup.
        self._answers: collections.deque[tuple[bool, float]] = collections.deque()
        self._lookups: collections.deque[tuple[str, str]] = collections.deque()
        # Flushes (the loop and a scrape) take turns: each queued item is counted exactly once.
        self._lock = threading.Lock()
        self._flusher = ProcessLoop(self.flush, self.FLUSH_S, "hot-path-metrics")

    def cache_lookup(self, tier: str, result: str) -> None:
        """One render cache lookup (storefront_cache_requests_total), counted with the next flush."""
        self._lookups.append((tier, result))
        self._flusher.ensure_running()

    def answered(self, local: bool, seconds: float) -> None:
        """An answer in ``seconds``; ``local``: a hit in the in-process tier (the render cache counts
        its own Redis hits and misses as it finds them)."""
        self._answers.append((local, seconds))
        self._flusher.ensure_running()

    def flush(self) -> None:
        with self._lock:
            # Only what was queued before now: items appended meanwhile wait for the next flush.
            answers, lookups = self._answers, self._lookups
            answered = [answers.popleft() for _ in range(len(answers))]
            lookup_counts = collections.Counter(lookups.popleft() for _ in range(len(lookups)))
            buckets = [0] * len(self._bounds)
            seconds = 0.0
            bounds = self._bounds
            for local, elapsed in answered:
                # The bucket prometheus_client's observe would pick: the first bound >= elapsed.
                buckets[bisect.bisect_left(bounds, elapsed)] += 1
                seconds += elapsed
                if local:
                    lookup_counts[("local", "hit")] += 1
            for labels, count in lookup_counts.items():
                CACHE_REQUESTS.labels(*labels).inc(count)
            if answered:
                # What ``observe`` does per value, once per bucket (prometheus_client's own fields,
                # pinned with the exact version in requirements.txt; tests/web/test_hot_path.py checks).
                self._duration._sum.inc(seconds)
                for index, count in enumerate(buckets):
                    if count:
                        self._duration._buckets[index].inc(count)


HOT_PATH = HotPathMetrics()


def on_cache_event(name: str, **labels: Any) -> None:
    """The render cache's event hook, mapped onto counters."""
    if name == "cache":
        HOT_PATH.cache_lookup(labels.get("tier", "unknown"), labels.get("result", "unknown"))
    elif name == "stale":
        STALE_SERVED.inc()
    elif name == "backend_error":
        BACKEND_ERRORS.labels(labels.get("backend", "unknown")).inc()


CDN_PURGES = Counter("storefront_cdn_purges_total", "CDN purge calls by outcome.", ["cdn", "result"])


def on_purge_event(name: str, **labels: Any) -> None:
    """The purge queue's event hook: outcomes counted, failures and drops as backend errors."""
    if name != "purge":
        return
    result = labels.get("result", "unknown")
    CDN_PURGES.labels(labels.get("cdn", "unknown"), result).inc()
    if result in ("failed", "dropped"):
        BACKEND_ERRORS.labels("cdn").inc()


def exposition() -> tuple[bytes, str]:
    """The text exposition of every worker's metrics (or this process's, outside gunicorn)."""
    HOT_PATH.flush()
    if os.environ.get("PROMETHEUS_MULTIPROC_DIR"):
        registry = CollectorRegistry()
        prometheus_multiprocess.MultiProcessCollector(registry)
        return generate_latest(registry), CONTENT_TYPE_LATEST
    from prometheus_client import REGISTRY

    return generate_latest(REGISTRY), CONTENT_TYPE_LATEST
