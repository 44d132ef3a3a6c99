"""Faults on a cluster of the test's own: a master killed, a master hung, the cluster refusing, a subscriber's
node lost. Nothing may raise, every call stays within its timeouts, and what still works keeps working.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

from storefront.cache import CircuitBreaker, RedisClusterCache, RenderCache
from tests.cluster.private_cluster import PrivateCluster

pytestmark = [pytest.mark.redis, pytest.mark.slow]

TIMEOUT_MS = 100
SLACK_S = 0.25
RENDER_SETTINGS = dict(
    render_ttl_s=60, stale_ttl_s=600, local_ttl_s=60, lock_ttl_ms=2000, lock_wait_ms=300, negative_ttl_s=5
)
TEMPLATE = "{shop-{n}:subscription:1}:js:en:v1:r"


class Renderer:
    """Renders the bytes that belong to a key (the same every time), counting calls."""

    def __init__(self) -> None:
        self.calls = 0
        self._lock = threading.Lock()

    def __call__(self, key: str) -> Callable[[], tuple[bytes, str]]:
        def render() -> tuple[bytes, str]:
            with self._lock:
                self.calls += 1
            return f"the widget of {key}".encode(), "text/javascript"

        return render


def timed(call: Callable[[], Any]) -> tuple[Any, float]:
    started = time.monotonic()
    result = call()
    return result, time.monotonic() - started


def wait_for(condition: Callable[[], bool], timeout: float = 10.0) -> bool:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if condition():
            return True
        time.sleep(0.01)
    return condition()


@pytest.fixture
def make_cache(private_cluster: PrivateCluster) -> Iterator[Callable[..., RedisClusterCache]]:
    created: list[RedisClusterCache] = []

    def make(
        url: str | None = None, failures: int = 3, reset_s: float = 30, **options: Any
    ) -> RedisClusterCache:
        cache = RedisClusterCache(
            url or private_cluster.seed_url, key_prefix="t:", connect_timeout_ms=TIMEOUT_MS,
            timeout_ms=TIMEOUT_MS, breaker=CircuitBreaker(failures, reset_s), **options,
        )
        created.append(cache)
        return cache

    yield make
    for cache in created:
        cache.close()


def test_a_killed_master_costs_only_its_own_keys(
    private_cluster: PrivateCluster, make_cache: Callable[..., RedisClusterCache]
) -> None:
    # The victim is the seed and serves slot 0 (redis-py's default node): the hardest one to lose.
    victim = private_cluster.slot_owner(0)
    assert private_cluster.seed_url == private_cluster.url(victim)
    keys = {port: private_cluster.key_on(port, TEMPLATE) for port in private_cluster.ports}
    render = Renderer()
    shared = make_cache()
    writer = RenderCache(None, shared, **RENDER_SETTINGS)
    for key in keys.values():
        assert writer.get_or_render(key, render(key)).status == "MISS"
    assert render.calls == 3

    private_cluster.kill(victim)
    reader = RenderCache(None, shared, **RENDER_SETTINGS)  # another worker: nothing in memory
    for round_ in range(4):
        for port, key in keys.items():
            result, elapsed = timed(lambda key=key: reader.get_or_render(key, render(key)))
            assert result.entry.identity == f"the widget of {key}".encode()
            if port == victim:
                # Rendered here: GET, lock and write each fail fast, then the node's breaker skips it.
                assert (result.status, result.tier) == ("MISS", "render")
                bound = 3 * TIMEOUT_MS / 1000 + SLACK_S if round_ == 0 else TIMEOUT_MS / 1000
                assert elapsed < bound, (round_, elapsed)
            else:
                assert (result.status, result.tier) == ("HIT", "redis"), (round_, port)
                assert elapsed < SLACK_S
    assert render.calls == 3 + 4
    victim_name = f"127.0.0.1:{victim}"
    assert shared.stats()["nodes"][victim_name] == "open"
    assert {name: state for name, state in shared.stats()["nodes"].items() if name != victim_name} == {
        f"127.0.0.1:{port}": "closed" for port in keys if port != victim
    }
    assert shared.breaker.state == "closed" and shared.available, "the cluster as a whole still serves"
    assert set(shared.stats()["errors"]) == {"ConnectionError"}

    # Once the others have flagged it failed, the cluster still serves the other slots.
    private_cluster.wait_until_failed(victim)
    assert shared.ping() is True
    survivor = next(port for port in keys if port != victim)
    # A new render on a surviving master takes its lock there and releases it: the release script
    # runs on that master alone, although another one is gone, and even when that master has
    # forgotten its scripts (restarted since) and nothing could load one on every master.
    new_key = private_cluster.key_on(survivor, "{fresh-{n}:subscription:1}:js:en:v1:r")
    with private_cluster.node(survivor) as node:
        node.script_flush()
    assert reader.get_or_render(new_key, render(new_key)).status == "MISS"
    assert shared.acquire_lock(new_key, 1000).acquired, "the render's lock was released"
    # A worker started now, seeded with a survivor, builds its client although slot 0's master is gone.
    fresh = RenderCache(None, make_cache(private_cluster.url(survivor)), **RENDER_SETTINGS)
    for port, key in keys.items():
        for cache in (reader, fresh):
            result = cache.get_or_render(key, render(key))
            assert result.entry.identity == f"the widget of {key}".encode()
            assert result.tier == ("render" if port == victim else "redis")


def test_a_hung_master_costs_one_timeout_per_call_until_its_breaker_opens(
    private_cluster: PrivateCluster, make_cache: Callable[..., RedisClusterCache]
) -> None:
    keys = {port: private_cluster.key_on(port, TEMPLATE) for port in private_cluster.ports}
    victim = private_cluster.ports[1]
    shared = make_cache(reset_s=1.0)
    for key in keys.values():
        assert shared.set(key, key.encode(), 60)

    private_cluster.pause(victim)
    try:
        for call in range(4):
            for port, key in keys.items():
                value, elapsed = timed(lambda key=key: shared.get(key))
                if port != victim:
                    assert value == key.encode() and elapsed < SLACK_S
                elif call < 3:
                    assert value is None
                    assert TIMEOUT_MS / 1000 * 0.8 <= elapsed < TIMEOUT_MS / 1000 + SLACK_S, (call, elapsed)
                else:
                    assert value is None and elapsed < 0.05, "the node's breaker is open"
        assert set(shared.stats()["errors"]) == {"TimeoutError"}
        assert shared.available
    finally:
        private_cluster.resume(victim)
    # After the reset time one trial goes through, finds the master back, and closes its breaker.
    time.sleep(1.05)
    assert wait_for(lambda: shared.get(keys[victim]) == keys[victim].encode(), 5)
    assert set(shared.stats()["nodes"].values()) == {"closed"}


@pytest.fixture
def strict_cluster(tmp_path: Path) -> Iterator[PrivateCluster]:
    """A cluster with the server default ``cluster-require-full-coverage yes``."""
    running = PrivateCluster(tmp_path, require_full_coverage=True)
    yield running
    running.stop()


def test_a_cluster_that_refuses_every_key_opens_the_cluster_wide_breaker(
    strict_cluster: PrivateCluster,
) -> None:
    keys = {port: strict_cluster.key_on(port, TEMPLATE) for port in strict_cluster.ports}
    shared = RedisClusterCache(
        strict_cluster.seed_url, key_prefix="t:", connect_timeout_ms=TIMEOUT_MS, timeout_ms=TIMEOUT_MS,
        breaker=CircuitBreaker(3, 30),
    )
    try:
        render = Renderer()
        cache = RenderCache(None, shared, **RENDER_SETTINGS)
        for key in keys.values():
            cache.get_or_render(key, render(key))
        victim = strict_cluster.ports[2]
        strict_cluster.kill(victim)
        strict_cluster.wait_until_refusing(strict_cluster.alive_ports())
        survivor_key = keys[strict_cluster.ports[0]]
        # Every node now answers CLUSTERDOWN (redis-py pauses 250 ms on each): three of them open the breaker.
        result, elapsed = timed(lambda: cache.get_or_render(survivor_key, render(survivor_key)))
        assert (result.status, result.entry.identity) == ("MISS", f"the widget of {survivor_key}".encode())
        assert elapsed < 3 * (0.25 + TIMEOUT_MS / 1000) + SLACK_S
        assert "ClusterDownError" in shared.stats()["errors"]
        assert not shared.available
        for key in keys.values():
            result, elapsed = timed(lambda key=key: cache.get_or_render(key, render(key)))
            assert result.entry.identity == f"the widget of {key}".encode() and elapsed < 0.05
        assert shared.ping() is False
    finally:
        shared.close()


def test_a_subscription_moves_to_another_node_when_its_node_dies(
    private_cluster: PrivateCluster, make_cache: Callable[..., RedisClusterCache]
) -> None:
    listener, publisher = make_cache(), make_cache()
    received: list[bytes] = []
    resubscribed: list[int] = []
    subscription = listener.listen("bus", received.append, on_resubscribe=lambda: resubscribed.append(1))
    try:
        assert subscription.subscribed.wait(5)
        first_server = subscription.server
        publisher.publish("bus", b"one")
        assert wait_for(lambda: received == [b"one"])

        private_cluster.kill(int(first_server.rsplit(":", 1)[1]))
        assert wait_for(lambda: subscription.subscriptions == 2)
        assert subscription.server != first_server
        assert resubscribed == [1], "the owner is told it may have missed messages"
        # Whichever node a publisher prefers, the dead one included, its messages get through.
        for preferred in range(len(private_cluster.ports)):
            publisher._node_offset = preferred  # white box: the preference is otherwise random
            publisher.publish("bus", f"preferring {preferred}")
        expected = [b"one"] + [f"preferring {preferred}".encode() for preferred in range(3)]
        assert wait_for(lambda: sorted(received) == sorted(expected))
        # One publisher's messages arrive in order: it sticks to one node while that node works.
        for number in range(5):
            publisher.publish("bus", f"after {number}")
        expected += [f"after {number}".encode() for number in range(5)]
        assert wait_for(lambda: received[4:] == expected[4:])
    finally:
        subscription.stop()
    assert not subscription.alive
