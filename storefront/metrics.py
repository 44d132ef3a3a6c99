"""Prometheus metrics under the contract's names, summed across gunicorn workers in multiprocess mode."""

from __future__ import annotations

import os
from typing import Any

from prometheus_client import (
    CONTENT_TYPE_LATEST,
    CollectorRegistry,
    Counter,
    Histogram,
    generate_latest,
)
from prometheus_client import multiprocess as prometheus_multiprocess

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


def on_cache_event(name: str, **labels: Any) -> None:
    """The render cache's event hook, mapped onto counters."""
    if name == "cache":
        CACHE_REQUESTS.labels(labels.get("tier", "unknown"), labels.get("result", "unknown")).inc()
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
    if os.environ.get("PROMETHEUS_MULTIPROC_DIR"):
        registry = CollectorRegistry()
        prometheus_multiprocess.MultiProcessCollector(registry)
        return generate_latest(registry), CONTENT_TYPE_LATEST
    from prometheus_client import REGISTRY

    return generate_latest(REGISTRY), CONTENT_TYPE_LATEST
