"""Backend faults at the HTTP surface: Redis stopped, paused, full, read-only; the database unreachable."""

from __future__ import annotations

import time
from urllib.parse import urlsplit

import pytest
import redis

from tests.conftest import make_app, seed
from tests.services import MYSQL_URL, PrivateRedis, TcpProxy, free_port

SHOP = "demo-coffee.myshopify.com"
JS = f"/v1/shops/{SHOP}/widgets/subscription.js?product=7001000000001"
REDIS_TIMEOUT_MS = 50


@pytest.fixture
def private_redis():  # type: ignore[no-untyped-def]
    server = PrivateRedis()
    yield server
    server.resume()
    server.stop()


def app_on(database_url: str, redis_url: str, **overrides: object):  # type: ignore[no-untyped-def]
    app = make_app(database_url, REDIS_URL=redis_url, REDIS_TIMEOUT_MS=REDIS_TIMEOUT_MS,
                   REDIS_CONNECT_TIMEOUT_MS=REDIS_TIMEOUT_MS, BREAKER_FAILURES=3, BREAKER_RESET_S=1,
                   **overrides)
    seed(app)
    return app


def expected_bytes(sqlite_url: str) -> bytes:
    """The right bytes, from an app with no Redis at all."""
    reference = make_app(sqlite_url)
    seed(reference)
    return reference.test_client().get(JS, headers={"Accept-Encoding": "identity"}).data


def redis_key_count(url: str) -> int:
    client = redis.Redis.from_url(url)
    try:
        return client.dbsize()
    finally:
        client.close()


def test_redis_stopped_then_back(sqlite_url, private_redis, tmp_path) -> None:  # type: ignore[no-untyped-def]
    right = expected_bytes(f"sqlite:///{tmp_path / 'reference.db'}")
    # No in-process tier, so every request goes to Redis (or around it).
    app = app_on(sqlite_url, private_redis.url, LOCAL_CACHE_BYTES=0)
    client = app.test_client()
    assert client.get(JS, headers={"Accept-Encoding": "identity"}).data == right
    assert redis_key_count(private_redis.url) > 0
    private_redis.stop()
    for _ in range(10):
        response = client.get(JS, headers={"Accept-Encoding": "identity"})
        assert response.status_code == 200 and response.data == right
    assert client.get("/readyz").get_json() == {"database": "ok", "cache": "down"}
    private_redis.restart()
    time.sleep(1.1)  # the breaker's reset time
    for _ in range(5):
        assert client.get(JS, headers={"Accept-Encoding": "identity"}).data == right
    assert redis_key_count(private_redis.url) > 0  # refilled without a restart
    assert client.get("/readyz").get_json()["cache"] == "ok"


def test_redis_paused_costs_at_most_the_timeout(sqlite_url, private_redis) -> None:  # type: ignore[no-untyped-def]
    app = app_on(sqlite_url, private_redis.url, LOCAL_CACHE_BYTES=0, LOCK_WAIT_MS=100)
    client = app.test_client()
    right = client.get(JS, headers={"Accept-Encoding": "identity"}).data
    private_redis.pause()
    try:
        for _ in range(8):
            started = time.monotonic()
            response = client.get(JS, headers={"Accept-Encoding": "identity"})
            elapsed_ms = (time.monotonic() - started) * 1000
            assert response.status_code == 200 and response.data == right
            # A lookup, a lock and a write may each meet the timeout before the breaker opens;
            # after that Redis is skipped. Never seconds.
            assert elapsed_ms < 4 * REDIS_TIMEOUT_MS + 250, elapsed_ms
    finally:
        private_redis.resume()


def test_redis_full_with_noeviction(sqlite_url) -> None:  # type: ignore[no-untyped-def]
    server = PrivateRedis("--maxmemory", "2mb", "--maxmemory-policy", "noeviction")
    try:
        filler = redis.Redis(port=server.port)
        with pytest.raises(redis.exceptions.OutOfMemoryError):
            for _ in range(10_000):
                filler.set(f"fill:{time.monotonic_ns()}", b"x" * 65536)
        filler.close()
        app = app_on(sqlite_url, server.url, LOCAL_CACHE_BYTES=0)
        client = app.test_client()
        reference = make_app(sqlite_url.replace(".db", "-reference.db"))
        seed(reference)
        for path in (JS, JS.replace(".js", ".html"), JS.replace(".js", ".json")):
            right = reference.test_client().get(path, headers={"Accept-Encoding": "identity"}).data
            for _ in range(3):
                response = client.get(path, headers={"Accept-Encoding": "identity"})
                assert response.status_code == 200 and response.data == right
    finally:
        server.stop()


def test_redis_read_only_replica(sqlite_url, private_redis, tmp_path) -> None:  # type: ignore[no-untyped-def]
    right = expected_bytes(f"sqlite:///{tmp_path / 'reference.db'}")
    client_redis = redis.Redis(port=private_redis.port)
    client_redis.execute_command("REPLICAOF", "127.0.0.1", str(free_port()))
    client_redis.close()
    app = app_on(sqlite_url, private_redis.url, LOCAL_CACHE_BYTES=0)
    client = app.test_client()
    bodies = {client.get(JS, headers={"Accept-Encoding": "identity"}).data for _ in range(5)}
    assert bodies == {right}


def mysql_through(proxy: TcpProxy, database_url: str) -> str:
    parts = urlsplit(database_url)
    return f"mysql://{parts.username or 'root'}@127.0.0.1:{proxy.port}{parts.path}"


def test_database_down_serves_stale_or_503(mysql_url, private_redis) -> None:  # type: ignore[no-untyped-def]
    target = urlsplit(MYSQL_URL)
    proxy = TcpProxy(target.hostname, target.port or 3306)
    try:
        # No in-process lookups or renders: the database and Redis are asked on every request.
        app = app_on(mysql_through(proxy, mysql_url), private_redis.url, LOCAL_CACHE_TTL_S=0,
                     LOCAL_CACHE_BYTES=0)
        client = app.test_client()
        fresh = client.get(JS, headers={"Accept-Encoding": "identity"})
        assert fresh.status_code == 200
        french = client.get(f"{JS}&locale=fr", headers={"Accept-Encoding": "identity"})
        app.extensions["storefront"].store.close()
        proxy.stop()

        started = time.monotonic()
        stale = client.get(JS, headers={"Accept-Encoding": "identity"})
        assert time.monotonic() - started < 3
        assert stale.status_code == 200
        assert stale.headers["X-Cache"] == "STALE"
        assert stale.data == fresh.data and stale.headers["ETag"] == fresh.headers["ETag"]
        assert client.get(f"{JS}&locale=fr", headers={"Accept-Encoding": "identity"}).data == french.data
        assert client.get(f"{JS}&locale=en").headers["X-Cache"] == "STALE"

        uncached = client.get(f"/v1/shops/{SHOP}/widgets/bundle.js?product=7001000000006")
        assert uncached.status_code == 503
        assert uncached.headers["Cache-Control"] == "no-store"
        assert int(uncached.headers["Retry-After"]) > 0
        assert uncached.get_json()["error"] == "unavailable"
        assert client.get("/readyz").get_json() == {"database": "down", "cache": "ok"}
    finally:
        proxy.stop()


def test_database_and_redis_down_is_503_not_500(mysql_url, private_redis) -> None:  # type: ignore[no-untyped-def]
    target = urlsplit(MYSQL_URL)
    proxy = TcpProxy(target.hostname, target.port or 3306)
    app = app_on(mysql_through(proxy, mysql_url), private_redis.url, LOCAL_CACHE_TTL_S=0, LOCAL_CACHE_BYTES=0)
    client = app.test_client()
    assert client.get(JS).status_code == 200
    app.extensions["storefront"].store.close()
    proxy.stop()
    private_redis.stop()
    response = client.get(JS)
    assert response.status_code == 503
    assert response.headers["Cache-Control"] == "no-store"
    readiness = client.get("/readyz")
    assert readiness.status_code == 503
    assert readiness.get_json() == {"database": "down", "cache": "down"}
