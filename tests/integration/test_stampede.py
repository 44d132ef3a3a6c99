"""One render per key across 4 gunicorn workers: 200 concurrent requests for a freshly changed widget."""

from __future__ import annotations

import re
import threading
from concurrent.futures import ThreadPoolExecutor

import pytest
import redis
import requests

from tests.services import REDIS_URL, GunicornServer, reachable, unavailable, unique_name

SHOP = "demo-coffee.myshopify.com"
TOKEN = "stampede-admin-token-0123456789"


def renders(base: str) -> float:
    text = requests.get(f"{base}/metrics", timeout=5).text
    return sum(float(v) for v in re.findall(r'^storefront_renders_total\{kind="subscription"\} ([0-9.e+]+)$',
                                            text, re.M))


@pytest.mark.slow
def test_200_concurrent_requests_render_once(tmp_path) -> None:  # type: ignore[no-untyped-def]
    if not reachable(REDIS_URL):
        unavailable(f"Redis is not reachable at {REDIS_URL}")
    prefix = unique_name("sfstampede") + ":"
    server = GunicornServer({
        "STOREFRONT_ENV": "development", "STOREFRONT_DATABASE_URL": f"sqlite:///{tmp_path / 'db.sqlite'}",
        "STOREFRONT_REDIS_URL": REDIS_URL, "STOREFRONT_REDIS_KEY_PREFIX": prefix,
        "STOREFRONT_ADMIN_TOKENS": TOKEN, "STOREFRONT_REDIS_TIMEOUT_MS": "200",
    }, workers=4, threads=8)
    try:
        url = f"{server.url}/v1/shops/{SHOP}/widgets/subscription.js?product=7001000000001"
        with requests.Session() as session:
            for _ in range(40):  # every worker has served a request and listens for invalidations
                assert session.get(url, timeout=5).status_code == 200
            auth = {"Authorization": f"Bearer {TOKEN}"}
            # Purged: gone from Redis and from every worker's memory (a publish would warm it again).
            purge = f"{server.url}/admin/v1/shops/{SHOP}/purge"
            purged = session.post(purge, json={"kind": "subscription"}, headers=auth, timeout=5)
            assert purged.status_code == 202
        before = renders(server.url)

        start = threading.Barrier(200)

        def fetch(_: int) -> tuple[int, bytes]:
            start.wait()  # all 200 leave together, inside the first render's window
            response = requests.get(url, headers={"Accept-Encoding": "identity"}, timeout=30)
            return response.status_code, response.content

        with ThreadPoolExecutor(max_workers=200) as pool:
            results = list(pool.map(fetch, range(200)))
        after = renders(server.url)
    finally:
        server.stop()
        client = redis.Redis.from_url(REDIS_URL)
        keys = list(client.scan_iter(match=f"{prefix}*"))
        if keys:
            client.delete(*keys)
        client.close()
    assert {status for status, _ in results} == {200}
    bodies = {body for _, body in results}
    assert len(bodies) == 1
    assert after - before == 1
