"""The hot path answers from Redis when the worker holds no copy; URLs live as long as changes are heard."""

from __future__ import annotations

import contextlib
import json
import threading
import time
from collections.abc import Iterator

import pytest
from flask import Flask

from storefront.cache.entry import decode_entry
from storefront.freshness import LocalFreshness
from tests.conftest import ADMIN_TOKEN, make_app, seed
from tests.services import REDIS_URL, delete_redis_keys, reachable, unavailable, unique_name
from tests.web.parsed_requests import answered_alike

SHOP = "demo-coffee.myshopify.com"
JS = f"/v1/shops/{SHOP}/widgets/subscription.js?product=7001000000001"
AUTH = {"Authorization": f"Bearer {ADMIN_TOKEN}"}
VOLATILE = {"X-Request-ID", "X-Cache", "Server-Timing", "Date"}


@contextlib.contextmanager
def redis_app(sqlite_url: str, **settings: object) -> Iterator[Flask]:
    """An app on Redis under a prefix of its own, seeded; its listener stopped and keys gone after."""
    if not reachable(REDIS_URL):
        unavailable(f"Redis is not reachable at {REDIS_URL}")
    prefix = unique_name("sfhot") + ":"
    app = make_app(sqlite_url, REDIS_URL=REDIS_URL, REDIS_KEY_PREFIX=prefix, REDIS_TIMEOUT_MS=1000,
                   REDIS_CONNECT_TIMEOUT_MS=1000, **settings)
    seed(app)
    try:
        yield app
    finally:
        services = app.extensions["storefront"]
        if services._listener is not None:
            services._listener.stop()
        delete_redis_keys(prefix)
        services.store.close()


@pytest.fixture
def shared_app(sqlite_url):  # type: ignore[no-untyped-def]
    """An app with Redis and no in-process tier: every hit is a shared-tier hit."""
    with redis_app(sqlite_url, LOCAL_CACHE_BYTES=0) as app:
        yield app


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


def test_a_parsed_request_is_answered_from_redis_as_wsgi_answers_it(shared_app) -> None:  # type: ignore[no-untyped-def]
    """gunicorn's worker answers a noted URL's shared-tier hit before building the environ too."""
    etag = shared_app.test_client().get(JS).headers["ETag"]
    full = decode_entry(shared_app.extensions["storefront"].cache.shared.get(
        shared_app.extensions["storefront"].hot_targets.get(JS).key))
    for method, headers in [("GET", {"Accept-Encoding": "gzip"}), ("HEAD", {"Accept-Encoding": "br"}),
                            ("GET", {"Accept-Encoding": "br"}), ("GET", {}),
                            ("GET", {"If-None-Match": etag, "X-Request-ID": "parsed-redis-1"})]:
        (status, _headers, body), _by_wsgi = answered_alike(shared_app, JS, method, headers)
        if method == "GET" and status.startswith("200"):
            # Each encoding decoded alone is that body of the whole render, byte for byte.
            assert b"".join(body) == getattr(full, headers.get("Accept-Encoding", "identity"))


def test_a_redis_miss_found_by_a_parsed_request_is_not_looked_up_again_by_wsgi(shared_app) -> None:  # type: ignore[no-untyped-def]
    """The WSGI path takes over what the parsed request's look found: one GET per request either way."""
    client = shared_app.test_client()
    services = shared_app.extensions["storefront"]
    shared = services.cache.shared
    assert client.get(JS).headers["X-Cache"] == "MISS"
    key = services.hot_targets.get(JS).key
    gets: list[str] = []
    real_get = shared.get
    shared.get = lambda name: gets.append(name) or real_get(name)  # counts calls; Redis answers them
    try:
        counts = []
        for ask_parsed_first in (False, True):
            shared.delete(key)
            del gets[:]
            if ask_parsed_first:
                assert shared_app.wsgi_app.answer_parsed("GET", JS, []) is None
            again = client.get(JS)
            assert again.status_code == 200 and again.headers["X-Cache"] == "MISS"
            counts.append(gets.count(key))
        assert counts == [1, 1]
    finally:
        shared.get = real_get


def test_with_both_tiers_a_parsed_request_answers_from_redis_then_from_process(sqlite_url) -> None:  # type: ignore[no-untyped-def]
    with redis_app(sqlite_url) as app:
        first = app.test_client().get(JS, headers={"Accept-Encoding": "gzip"})
        assert first.headers["X-Cache"] == "MISS"
        local = app.extensions["storefront"].cache.local
        local.clear()  # as a worker that did not render it
        misses, hits = local.stats()["misses"], local.stats()["hits"]
        from_redis = app.wsgi_app.answer_parsed("GET", JS, [("ACCEPT-ENCODING", "gzip")])
        assert from_redis is not None and dict(from_redis[1])["X-Cache"] == "HIT"
        assert b"".join(from_redis[2]) == first.data
        assert local.stats()["misses"] == misses + 1
        from_process = app.wsgi_app.answer_parsed("GET", JS, [("ACCEPT-ENCODING", "gzip")])
        assert from_process is not None and b"".join(from_process[2]) == first.data
        assert local.stats()["hits"] == hits + 1
