"""Operations under gunicorn: metrics summed over 4 workers, and a graceful shutdown that loses nothing."""

from __future__ import annotations

import json
import re
import signal
import socket
import threading
import time
from concurrent.futures import ThreadPoolExecutor

import pytest
import requests

from storefront.metrics import HotPathMetrics
from tests.services import GunicornServer

SHOP = "demo-coffee.myshopify.com"
PRODUCTS = (7001000000001, 7001000000002, 7001000000004, 7001000000005, 7001000000006)


def metric_sum(text: str, name: str, **labels: str) -> float:
    total = 0.0
    for line in text.splitlines():
        match = re.match(rf"^{name}(\{{[^}}]*\}})? ([0-9.e+-]+)$", line)
        if match and all(f'{k}="{v}"' in (match.group(1) or "") for k, v in labels.items()):
            total += float(match.group(2))
    return total


@pytest.mark.slow
def test_metrics_sum_every_workers_renders(tmp_path) -> None:  # type: ignore[no-untyped-def]
    server = GunicornServer({"STOREFRONT_ENV": "development",
                             "STOREFRONT_DATABASE_URL": f"sqlite:///{tmp_path / 'db.sqlite'}"},
                            # A worker takes at most 2 connections at once, so a burst spreads over all 4.
                            workers=4, threads=2, extra_args=("--worker-connections", "2"))
    try:
        # Without Redis each worker renders for itself: 4 workers x 5 products can mean up to 20
        # renders, and /metrics (answered by any one worker) must report all of them.
        urls = [f"{server.url}/v1/shops/{SHOP}/widgets/{kind}.js?product={product}"
                for _ in range(6) for product in PRODUCTS for kind in ("subscription", "bundle")]

        def fetch(url: str) -> tuple[int, str, str]:
            reply = requests.get(url, headers={"Connection": "close"}, timeout=10)
            # A request id starts with its process's own random prefix (storefront/web/request_log.py).
            return reply.status_code, reply.headers["X-Cache"], reply.headers["X-Request-ID"][:16]

        # Concurrent, so that the requests spread over the workers; on a busy machine one worker
        # may still take a whole burst, so another goes out until at least two workers rendered.
        rendered_by: set[str] = set()
        for _ in range(5):
            with ThreadPoolExecutor(max_workers=24) as pool:
                replies = list(pool.map(fetch, urls))
            assert {status for status, _, _ in replies} == {200}
            rendered_by |= {process for _, cache, process in replies if cache == "MISS"}
            if len(rendered_by) >= 2:
                break
        # Hot-path hits reach the shared metrics within HotPathMetrics.FLUSH_S (storefront/metrics.py).
        time.sleep(HotPathMetrics.FLUSH_S + 0.5)
        expected = None
        for _ in range(10):  # ask several times: different workers answer, all must agree
            text = requests.get(f"{server.url}/metrics", headers={"Connection": "close"}, timeout=5).text
            value = metric_sum(text, "storefront_renders_total")
            expected = value if expected is None else expected
            assert value == expected
        misses = metric_sum(text, "storefront_cache_requests_total", result="miss")
        hits = metric_sum(text, "storefront_cache_requests_total", result="hit")
        assert hits + misses >= 60
        assert 10 <= expected <= 40  # 10 distinct renders, at most once per worker (x4)
        assert "storefront_request_duration_seconds_bucket" in text
    finally:
        output = server.stop()
    # Every worker's renders are in the one figure: it equals the renders all workers logged.
    renders = [json.loads(line) for line in output.splitlines()
               if line.startswith("{") and '"tier":"render"' in line]
    assert expected == len(renders), output[-3000:]
    assert len({line["pid"] for line in renders}) >= 2, "the requests did not spread over workers"


def _raw_get(port: int, path: str, started: threading.Event, results: list[int | str]) -> None:
    try:
        with socket.create_connection(("127.0.0.1", port), timeout=30) as sock:
            sock.sendall(f"GET {path} HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n".encode())
            started.set()
            data = b""
            while chunk := sock.recv(65536):
                data += chunk
        results.append(int(data.split(b" ", 2)[1]) if data.startswith(b"HTTP/1.1 ") else "no response")
    except OSError as error:
        results.append(f"error: {error}")


@pytest.mark.slow
def test_sigterm_during_100_in_flight_requests_loses_none(tmp_path) -> None:  # type: ignore[no-untyped-def]
    server = GunicornServer({"STOREFRONT_ENV": "development",
                             "STOREFRONT_DATABASE_URL": f"sqlite:///{tmp_path / 'db.sqlite'}",
                             "STOREFRONT_LOCAL_CACHE_BYTES": "0"}, workers=2, threads=4)
    results: list[int | str] = []
    threads = []
    try:
        # Both workers have booted and loaded the app before the load starts.
        for _ in range(20):
            requests.get(f"{server.url}/healthz", headers={"Connection": "close"}, timeout=10)
        for i in range(100):
            kind = ("subscription", "bundle", "loyalty")[i % 3]
            path = f"/v1/shops/{SHOP}/widgets/{kind}.js?product={PRODUCTS[i % len(PRODUCTS)]}&v=r{i}"
            started = threading.Event()
            thread = threading.Thread(target=_raw_get, args=(server.port, path, started, results))
            thread.start()
            started.wait(5)
            threads.append(thread)
        # Every request has been sent; stop the server while they are being answered.
        server.process.send_signal(signal.SIGTERM)
        for thread in threads:
            thread.join(30)
        exit_code = server.process.wait(30)
    finally:
        output = server.stop()
    assert len(results) == 100
    assert results.count(200) == 100, (sorted(map(str, results)), output[-2000:])
    assert exit_code == 0

