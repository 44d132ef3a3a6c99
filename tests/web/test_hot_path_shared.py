"""The hot path answers from Redis when the worker holds no copy; URLs live as long as changes are heard."""

from __future__ import annotations

import json
import threading
import time

import pytest
import redis

from storefront.freshness import LocalFreshness
from tests.conftest import ADMIN_TOKEN, make_app, seed
from tests.services import REDIS_URL, reachable, unavailable, unique_name

SHOP = "demo-coffee.myshopify.com"
JS = f"/v1/shops/{SHOP}/widgets/subscription.js?product=7001000000001"
AUTH = {"Authorization": f"Bearer {ADMIN_TOKEN}"}
VOLATILE = {"X-Request-ID", "X-Cache", "Server-Timing", "Date"}


@pytest.fixture
def shared_app(sqlite_url):  # type: ignore[no-untyped-def]
    """An app with Redis and no in-process tier: every hit is a shared-tier hit."""
    if not reachable(REDIS_URL):
        unavailable(f"Redis is not reachable at {REDIS_URL}")
    prefix = unique_name("sfhot") + ":"
    app = make_app(sqlite_url, REDIS_URL=REDIS_URL, REDIS_KEY_PREFIX=prefix, LOCAL_CACHE_BYTES=0,
                   REDIS_TIMEOUT_MS=1000, REDIS_CONNECT_TIMEOUT_MS=1000)
    seed(app)
    yield app
    services = app.extensions["storefront"]
    if services._listener is not None:
        services._listener.stop()
    client = redis.Redis.from_url(REDIS_URL)
    keys = list(client.scan_iter(match=f"{prefix}*"))
    if keys:
        client.delete(*keys)
    client.close()


def wait_subscribed(app) -> None:  # type: ignore[no-untyped-def]
    listener = app.extensions["storefront"]._listener
    assert listener is not None and listener.subscribed.wait(5)


def test_redis_hit_answered_before_flask_equals_the_flask_answer(shared_app) -> None:  # type: ignore[no-untyped-def]
    client = shared_app.test_client()
    services = shared_app.extensions["storefront"]
    first = client.get(JS, headers={"Accept-Encoding": "gzip"})
    assert first.headers["X-Cache"] == "MISS"
    target = services.hot_targets.get(JS)
    assert target is not None
    hits_before = services.cache.shared.stats()
    hot = client.get(JS, headers={"Accept-Encoding": "gzip"})
    assert hot.headers["X-Cache"] == "HIT"
    assert hot.data == first.data
    strip = {k: v for k, v in first.headers.items() if k not in VOLATILE}
    assert {k: v for k, v in hot.headers.items() if k not in VOLATILE} == strip
    assert services.cache.shared.stats()["errors"] == hits_before["errors"]
    # 304 from the shared tier too, by ETag, with no body.
    again = client.get(JS, headers={"If-None-Match": first.headers["ETag"]})
    assert again.status_code == 304 and again.data == b""


def test_urls_live_long_while_subscribed_and_briefly_without(shared_app) -> None:  # type: ignore[no-untyped-def]
    client = shared_app.test_client()
    services = shared_app.extensions["storefront"]
    client.get(JS)
    wait_subscribed(shared_app)
    services.hot_targets.clear()
    client.get(JS)
    ttl = services.hot_targets.get(JS).expires - time.monotonic()
    assert ttl > services.settings.local_cache_ttl_s + 10  # the long max age, not the short TTL
    # Losing the subscription forgets every URL and lookup: changes may go unheard from then on.
    services._drop_all_local()
    assert services.hot_targets.get(JS) is None


def test_a_change_elsewhere_drops_urls_at_once(shared_app) -> None:  # type: ignore[no-untyped-def]
    client = shared_app.test_client()
    services = shared_app.extensions["storefront"]
    client.get(JS)
    wait_subscribed(shared_app)
    client.get(JS)
    assert services.hot_targets.get(JS) is not None
    generation = services.freshness.generation
    # Another worker's change arrives as a message on the channel.
    message = {"type": "invalidate", "shop": SHOP, "tags": [f"shop:{SHOP}"]}
    services.cache.shared.publish("invalidate", json.dumps(message))
    deadline = time.monotonic() + 5
    while services.hot_targets.get(JS) is not None and time.monotonic() < deadline:
        time.sleep(0.01)
    assert services.hot_targets.get(JS) is None
    assert services.freshness.generation > generation


class _Listening:
    def __init__(self) -> None:
        self.subscribed = threading.Event()


def test_freshness_ttl() -> None:
    freshness = LocalFreshness(5, 300)
    assert freshness.ttl_s(freshness.generation) == 5  # not listening yet
    listening = _Listening()
    freshness.listen_through(listening)
    assert freshness.ttl_s(freshness.generation) == 5
    listening.subscribed.set()
    before = freshness.generation
    assert freshness.ttl_s(before) == 300
    # An invalidation between a read and its keeping: what was read may predate the change.
    freshness.bump()
    assert freshness.ttl_s(before) == 5
    assert freshness.ttl_s(freshness.generation) == 300
    listening.subscribed.clear()
    assert freshness.ttl_s(freshness.generation) == 5
    # A short TTL of 0 keeps nothing, subscribed or not.
    off = LocalFreshness(0, 300)
    off.listen_through(listening)
    listening.subscribed.set()
    assert off.ttl_s(off.generation) == 0


def test_a_url_new_to_this_worker_is_answered_from_redis_without_flask(shared_app) -> None:  # type: ignore[no-untyped-def]
    first = shared_app.test_client().get(JS, headers={"Accept-Encoding": "br"})
    assert first.headers["X-Cache"] == "MISS"
    settings = shared_app.extensions["storefront"].settings
    # Another worker: same database and Redis, nothing in process yet.
    other = make_app(settings.database_url, REDIS_URL=REDIS_URL, REDIS_KEY_PREFIX=settings.redis_key_prefix,
                     LOCAL_CACHE_BYTES=0, REDIS_TIMEOUT_MS=1000, REDIS_CONNECT_TIMEOUT_MS=1000)
    through_flask: list[str] = []
    other.before_request(lambda: through_flask.append("flask") and None)
    try:
        client = other.test_client()
        hot = client.get(JS, headers={"Accept-Encoding": "br"})
        assert hot.status_code == 200 and hot.headers["X-Cache"] == "HIT" and through_flask == []
        assert hot.data == first.data and hot.headers["ETag"] == first.headers["ETag"]
        # What the view refuses or cannot find still goes to the view, and is answered by it.
        bad = client.get(JS + "&utm_source=x")
        assert bad.status_code == 400 and bad.json["fields"]
        missing = client.get(JS.replace("7001000000001", "7001000000999"))
        assert missing.status_code == 404
        # A demo product nobody rendered yet: a miss, rendered before Flask too, with the view's headers.
        other_product = client.get(JS.replace("7001000000001", "7001000000002"),
                                   headers={"Accept-Encoding": "br"})
        assert other_product.status_code == 200 and other_product.headers["X-Cache"] == "MISS"
        assert other_product.headers["Server-Timing"].startswith("render;dur=")
        assert other_product.headers["Content-Encoding"] == "br"
        assert set(other_product.headers.keys()) == set(first.headers.keys())
        assert through_flask == ["flask"] * 2
    finally:
        listener = other.extensions["storefront"]._listener
        if listener is not None:
            listener.stop()
