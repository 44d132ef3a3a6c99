"""RedisClusterCache beyond the contract: key slots, locks, batches and purges across masters, pub/sub."""

from __future__ import annotations

import threading
import time
from collections.abc import Callable
from pathlib import Path

import pytest
from redis.cluster import RedisCluster

from storefront.cache import (
    LAST_GOOD_PREFIX,
    CachedRender,
    LocalCache,
    RedisClusterCache,
    RenderCache,
    create_render_cache,
)
from storefront.settings import load_settings
from tests.cluster.private_cluster import PrivateCluster
from tests.services import free_port, unique_name

pytestmark = [pytest.mark.redis, pytest.mark.slow]

MakeCache = Callable[..., RedisClusterCache]
RENDER_SETTINGS = dict(
    render_ttl_s=60, stale_ttl_s=600, local_ttl_s=60, lock_ttl_ms=5000, lock_wait_ms=1000, negative_ttl_s=5
)
# What widget_renders builds: `{shop:kind:product}` is the hash tag, the rest varies per render.
TAG = "{demo-coffee.myshopify.com:subscription:7001000000001}"


def wait_until(condition: Callable[[], bool], timeout: float = 5.0) -> bool:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if condition():
            return True
        time.sleep(0.01)
    return condition()


def one_key_per_master(cluster: PrivateCluster, template: str) -> dict[int, str]:
    return {port: cluster.key_on(port, template) for port in cluster.ports}


def test_a_renders_value_lock_and_last_good_pointer_share_one_slot(
    make_cluster_cache: MakeCache, raw_cluster: RedisCluster, key_prefix: str
) -> None:
    cache = RenderCache(None, make_cluster_cache(), **RENDER_SETTINGS)
    key, last_good = f"{TAG}:js:en:v3.1.4:rev9", f"{TAG}:js:"
    value_name = key_prefix + key
    lock_name = key_prefix + "lock:" + key
    pointer_name = key_prefix + LAST_GOOD_PREFIX + last_good
    lock_seen: list[bool] = []

    def render() -> tuple[bytes, str]:
        lock_seen.append(raw_cluster.exists(lock_name) == 1)
        return b"widget bytes", "text/javascript"

    cache.get_or_render(key, render, last_good_key=last_good)
    assert lock_seen == [True], "the render ran under the lock"
    assert raw_cluster.exists(lock_name) == 0, "and released it"
    assert raw_cluster.get(pointer_name) == key.encode()
    assert CachedRender.decode(raw_cluster.get(value_name)).identity == b"widget bytes"
    # The server's own hash: the three names and the bare tag land in one slot.
    slots = {raw_cluster.cluster_keyslot(name) for name in (value_name, lock_name, pointer_name, TAG)}
    assert len(slots) == 1
    assert cache.get_stale(last_good).identity == b"widget bytes"


def test_locks_on_every_master_have_one_owner_and_only_it_releases(
    cluster: PrivateCluster, make_cluster_cache: MakeCache
) -> None:
    first, second = make_cluster_cache(), make_cluster_cache()
    for name in one_key_per_master(cluster, "{shop-{n}:bundle:-}:html:en:v1:r").values():
        mine = first.acquire_lock(name, 5000)
        assert mine.acquired
        assert second.acquire_lock(name, 5000).held_elsewhere
        assert second.release_lock(name, "not-the-token") is False
        assert second.acquire_lock(name, 5000).held_elsewhere
        assert first.release_lock(name, mine.token) is True
        assert second.acquire_lock(name, 5000).acquired


def test_a_lock_reads_its_key_and_set_many_gives_it_back_on_every_master(
    cluster: PrivateCluster, make_cluster_cache: MakeCache
) -> None:
    first, second = make_cluster_cache(), make_cluster_cache()
    for name in one_key_per_master(cluster, "{shop-{n}:bundle:-}:html:en:v1:r").values():
        mine = first.acquire_lock(name, 5000, read=name)
        assert mine.acquired and mine.value is None
        assert first.set_many([(name, b"rendered", 10)], unlock=(name, mine.token))
        theirs = second.acquire_lock(name, 5000, read=name)
        assert theirs.acquired and theirs.value == b"rendered"
        assert first.acquire_lock(name, 5000, read=name) == (None, True, b"rendered")
        assert second.release_lock(name, theirs.token) is True


def test_set_many_writes_across_masters_each_with_its_ttl(
    cluster: PrivateCluster, make_cluster_cache: MakeCache, raw_cluster: RedisCluster, key_prefix: str
) -> None:
    cache = make_cluster_cache()
    names = list(one_key_per_master(cluster, "{k{n}}").values())
    writes = [(names[0], b"0", 10), (names[1], b"1", 100), (names[2], b"2", 1000), ("x", b"", 0)]
    assert cache.set_many(writes)
    assert [cache.get(name) for name in names] == [b"0", b"1", b"2"]
    assert cache.get("x") is None
    ttls = [raw_cluster.pttl(key_prefix + name) for name in names]
    assert 9_000 < ttls[0] <= 10_000 and 99_000 < ttls[1] <= 100_000 and 999_000 < ttls[2] <= 1_000_000


def test_delete_matching_purges_every_master_and_nothing_else(
    cluster: PrivateCluster, make_cluster_cache: MakeCache, raw_cluster: RedisCluster, key_prefix: str
) -> None:
    mine = make_cluster_cache()
    other_prefix = unique_name("sfcluster") + ":"
    other = make_cluster_cache(key_prefix=other_prefix)
    try:
        shop_keys = []
        for number in range(600):  # more than one SCAN/UNLINK batch, spread over every slot owner
            name = f"{{shop-a:subscription:{number}}}:js:en:v1:r"
            shop_keys.append(name)
            mine.set(name, b"v", 30)
        mine.set("{shop-b:subscription:1}:js:en:v1:r", b"keep", 30)
        other.set("{shop-a:subscription:1}:js:en:v1:r", b"theirs", 30)
        assert set(cluster.owners_of([key_prefix + name for name in shop_keys])) == set(cluster.ports)

        assert mine.delete_matching("{shop-a:*:*}*") == 600
        assert all(mine.get(name) is None for name in shop_keys)
        assert mine.get("{shop-b:subscription:1}:js:en:v1:r") == b"keep"
        assert other.get("{shop-a:subscription:1}:js:en:v1:r") == b"theirs"
        assert mine.clear() == 1
    finally:
        raw_cluster.delete(other_prefix + "{shop-a:subscription:1}:js:en:v1:r")


def test_ping_and_stats(cluster: PrivateCluster, make_cluster_cache: MakeCache) -> None:
    cache = make_cluster_cache()
    assert cache.ping() is True
    for name in one_key_per_master(cluster, "{s{n}}").values():
        cache.get(name)
    stats = cache.stats()
    assert stats["breaker"] == "closed" and stats["errors"] == {}
    assert stats["nodes"] == {f"127.0.0.1:{port}": "closed" for port in cluster.ports}


def test_a_listener_hears_messages_published_on_any_node(
    cluster: PrivateCluster, make_cluster_cache: MakeCache, key_prefix: str
) -> None:
    cache = make_cluster_cache()
    received: list[bytes] = []
    subscription = cache.listen("invalidate", received.append)
    try:
        assert subscription.subscribed.wait(5)
        assert subscription.server in {f"127.0.0.1:{port}" for port in cluster.ports}
        for port in cluster.ports:
            with cluster.node(port) as node:
                node.publish(key_prefix + "invalidate", f"from {port}".encode())
        assert wait_until(lambda: len(received) == len(cluster.ports))
        assert sorted(received) == sorted(f"from {port}".encode() for port in cluster.ports)
    finally:
        subscription.stop()
    assert not subscription.alive


def test_publish_reaches_subscribers_on_every_node(
    cluster: PrivateCluster, make_cluster_cache: MakeCache, key_prefix: str
) -> None:
    cache = make_cluster_cache()
    nodes = [cluster.node(port) for port in cluster.ports]
    subscribers = [node.pubsub() for node in nodes]
    try:
        for subscriber in subscribers:
            subscriber.subscribe(key_prefix + "invalidate")
            assert subscriber.get_message(timeout=5)["type"] == "subscribe"
        for number in range(3):
            cache.publish("invalidate", f"m{number}")
        for subscriber in subscribers:
            heard = []
            deadline = time.monotonic() + 5
            while len(heard) < 3 and time.monotonic() < deadline:
                message = subscriber.get_message(timeout=0.2)
                if message is not None and message["type"] == "message":
                    heard.append(message["data"])
            assert heard == [b"m0", b"m1", b"m2"]
    finally:
        for subscriber in subscribers:
            subscriber.close()
        for node in nodes:
            node.close()


def test_another_worker_hits_keys_on_every_master(
    cluster: PrivateCluster, make_cluster_cache: MakeCache
) -> None:
    names = list(one_key_per_master(cluster, "{shop-{n}:loyalty:-}:html:en:v1:r").values())
    first = RenderCache(LocalCache(1 << 20), make_cluster_cache(), **RENDER_SETTINGS)
    other = RenderCache(LocalCache(1 << 20), make_cluster_cache(), **RENDER_SETTINGS)
    for name in names:
        rendered = first.get_or_render(name, lambda name=name: (name.encode(), "text/html"))
        assert rendered.status == "MISS"
        seen = other.get_or_render(name, lambda: pytest.fail("rendered twice"))
        assert (seen.status, seen.tier, seen.entry) == ("HIT", "redis", rendered.entry)


def test_a_worker_waits_for_the_lock_holder_on_another_worker(make_cluster_cache: MakeCache) -> None:
    holder, waiter = make_cluster_cache(), make_cluster_cache()
    key = f"{TAG}:html:en:v1:r"
    lock = holder.acquire_lock(key, 5000)
    cache = RenderCache(None, waiter, **RENDER_SETTINGS)

    def finish_elsewhere() -> None:
        time.sleep(0.15)
        holder.set(key, CachedRender.build(b"from the other worker", "text/html", 1, 60).encode(), 60)
        holder.release_lock(key, lock.token)

    other = threading.Thread(target=finish_elsewhere)
    other.start()
    result = cache.get_or_render(key, lambda: pytest.fail("should have waited"))
    other.join()
    assert (result.status, result.tier, result.entry.identity) == ("HIT", "redis", b"from the other worker")


def test_nothing_connects_at_construction_and_a_dead_seed_is_a_quick_miss() -> None:
    started = time.monotonic()
    shared = RedisClusterCache(f"redis://127.0.0.1:{free_port()}/0", connect_timeout_ms=50, timeout_ms=50)
    assert time.monotonic() - started < 0.5
    assert shared.stats()["errors"] == {}, "no connection was attempted"
    cache = RenderCache(None, shared, **RENDER_SETTINGS)
    started = time.monotonic()
    result = cache.get_or_render("{k}", lambda: (b"body", "text/plain"))
    assert result.status == "MISS" and result.entry.identity == b"body"
    assert time.monotonic() - started < 0.5
    # GET, lock and write could not build a client: three failures open the cluster-wide breaker.
    assert shared.stats()["errors"] == {"RedisClusterException": 3}
    assert not shared.available
    assert shared.get("{k}") is None and shared.stats()["skipped"] == 1
    assert shared.ping() is False
    shared.close()


@pytest.mark.parametrize("url", ["redis://127.0.0.1:7000/1", "unix:///tmp/redis.sock"])
def test_a_seed_url_a_cluster_cannot_use_is_refused_at_start_up(url: str) -> None:
    with pytest.raises(ValueError, match="Redis Cluster seed"):
        RedisClusterCache(url)


def test_create_render_cache_picks_the_cluster_client(
    tmp_path: Path, cluster: PrivateCluster, key_prefix: str, raw_cluster: RedisCluster
) -> None:
    settings = load_settings({}, {
        "ENV": "development", "REDIS_URL": cluster.url(cluster.ports[1]), "REDIS_CLUSTER": "true",
        "REDIS_CONNECT_TIMEOUT_MS": 1500, "REDIS_TIMEOUT_MS": 1600,
        "BREAKER_FAILURES": 4, "BREAKER_RESET_S": 9,
    }, str(tmp_path))
    cache = create_render_cache(settings, key_prefix)
    shared = cache.shared
    try:
        assert isinstance(shared, RedisClusterCache)
        assert (shared.url, shared.key_prefix) == (cluster.url(cluster.ports[1]), key_prefix)
        assert (shared.connect_timeout_s, shared.timeout_s) == (1.5, 1.6)
        assert (shared.breaker.failure_threshold, shared.breaker.reset_s) == (4, 9)
        result = cache.get_or_render(f"{TAG}:json:en:v1:r", lambda: (b"{}", "application/json"))
        assert CachedRender.decode(raw_cluster.get(key_prefix + f"{TAG}:json:en:v1:r")) == result.entry
    finally:
        shared.close()


def test_the_single_node_client_is_kept_without_the_cluster_setting(tmp_path: Path) -> None:
    settings = load_settings({}, {"ENV": "development", "REDIS_URL": f"redis://127.0.0.1:{free_port()}/0"},
                             str(tmp_path))
    shared = create_render_cache(settings).shared
    assert type(shared).__name__ == "RedisCache"
    shared.close()


def test_a_server_error_is_a_miss_and_trips_no_breaker(
    make_cluster_cache: MakeCache, raw_cluster: RedisCluster, key_prefix: str
) -> None:
    cache = make_cluster_cache()
    raw_cluster.rpush(key_prefix + "{a-list}", b"x")  # GET on a list: -WRONGTYPE
    for _ in range(5):
        assert cache.get("{a-list}") is None
    assert cache.stats()["errors"] == {"ResponseError": 5}
    assert cache.breaker.state == "closed" and set(cache.stats()["nodes"].values()) == {"closed"}
