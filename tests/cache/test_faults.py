"""Redis faults on a private redis-server: stopped, paused (SIGSTOP), out of memory, read-only, then back.

Every call must come back within the socket timeout (plus slack), nothing may raise, renders go on
locally, and the same objects use Redis again once it recovers.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable, Iterator
from typing import Any

import pytest
import redis

from storefront.cache import CachedRender, CircuitBreaker, LocalCache, RedisCache, RenderCache
from storefront.cache.breaker import CLOSED, HALF_OPEN, OPEN
from tests.services import PrivateRedis, free_port

pytestmark = pytest.mark.slow

TIMEOUT_MS = 50
SLACK_S = 0.1
PREFIX = "t:"
RENDER_SETTINGS = dict(
    render_ttl_s=60, stale_ttl_s=600, local_ttl_s=60, lock_ttl_ms=2000, lock_wait_ms=300, negative_ttl_s=5
)


@pytest.fixture
def raw(private_redis: PrivateRedis) -> Iterator[redis.Redis]:
    client = redis.Redis.from_url(private_redis.url, socket_timeout=5)
    yield client
    client.close()


@pytest.fixture
def make_cache(private_redis: PrivateRedis) -> Iterator[Callable[..., RedisCache]]:
    created: list[RedisCache] = []

    def make(
        failures: int = 3, reset_s: float = 1.0, timeout_ms: int = TIMEOUT_MS, **options: Any
    ) -> RedisCache:
        cache = RedisCache(
            private_redis.url, key_prefix=PREFIX, connect_timeout_ms=timeout_ms, timeout_ms=timeout_ms,
            breaker=CircuitBreaker(failures, reset_s), **options,
        )
        created.append(cache)
        return cache

    yield make
    for cache in created:
        cache.close()


class Renderer:
    def __init__(self, delay: float = 0.0) -> None:
        self.delay = delay
        self.calls = 0
        self._lock = threading.Lock()

    def __call__(self) -> tuple[bytes, str]:
        with self._lock:
            self.calls += 1
            number = self.calls
        time.sleep(self.delay)
        return f"render {number}".encode(), "text/html"


def timed(call: Callable[[], Any]) -> tuple[Any, float]:
    started = time.monotonic()
    result = call()
    return result, time.monotonic() - started


def every_operation(cache: RedisCache) -> dict[str, Callable[[], Any]]:
    return {
        "get": lambda: cache.get("k"),
        "set": lambda: cache.set("k", b"v", 10),
        "set_many": lambda: cache.set_many([("a", b"1", 10), ("b", b"2", 10)]),
        "delete": lambda: cache.delete("k"),
        "acquire_lock": lambda: cache.acquire_lock("k", 1000),
        "release_lock": lambda: cache.release_lock("k", "token"),
        "publish": lambda: cache.publish("channel", b"m"),
        "ping": lambda: cache.ping(),
    }


FAILED_ANSWERS = {
    "get": None, "set": False, "set_many": False, "delete": False,
    "release_lock": False, "publish": 0, "ping": False,
}


def assert_failed_answer(operation: str, result: Any) -> None:
    if operation == "acquire_lock":
        assert (result.acquired, result.held_elsewhere) == (False, False)
    else:
        assert result == FAILED_ANSWERS[operation], operation


def wait_for(condition: Callable[[], bool], timeout: float = 5.0) -> bool:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if condition():
            return True
        time.sleep(0.01)
    return condition()


def test_stopped_every_call_is_a_quick_miss(
    private_redis: PrivateRedis, make_cache: Callable[..., RedisCache]
) -> None:
    errors: list[BaseException] = []
    cache = make_cache(failures=1000, on_error=lambda backend, exc: errors.append(exc))
    assert wait_for(lambda: cache.set("k", b"v", 10))
    private_redis.stop()
    for operation, call in every_operation(cache).items():
        result, elapsed = timed(call)
        assert_failed_answer(operation, result)
        assert elapsed < TIMEOUT_MS / 1000 + SLACK_S, operation
    assert len(errors) == len(every_operation(cache))
    assert all(isinstance(error, redis.ConnectionError) for error in errors)


def test_paused_each_call_costs_one_timeout(
    private_redis: PrivateRedis, make_cache: Callable[..., RedisCache]
) -> None:
    cache = make_cache(failures=1000)
    assert cache.ping()
    private_redis.pause()
    for operation, call in every_operation(cache).items():
        for _ in range(2):  # on the pooled connection, then on a fresh one (connect + read)
            result, elapsed = timed(call)
            assert_failed_answer(operation, result)
            assert TIMEOUT_MS / 1000 * 0.8 <= elapsed < TIMEOUT_MS / 1000 + SLACK_S, (operation, elapsed)
    assert set(cache.stats()["errors"]) == {"TimeoutError"}
    private_redis.resume()
    assert wait_for(cache.ping)
    assert wait_for(lambda: cache.set("k", b"back", 10) and cache.get("k") == b"back")


def test_the_breaker_opens_after_n_failures_and_closes_after_the_reset_time(
    private_redis: PrivateRedis, make_cache: Callable[..., RedisCache]
) -> None:
    cache = make_cache(failures=3, reset_s=1.0)
    assert wait_for(lambda: cache.set("k", b"v", 60))  # healthy: a loaded host may miss one timeout
    private_redis.pause()
    for _ in range(3):
        _, elapsed = timed(lambda: cache.get("k"))
        assert elapsed >= TIMEOUT_MS / 1000 * 0.8
    assert cache.breaker.state == OPEN and not cache.available
    for _ in range(50):
        result, elapsed = timed(lambda: cache.get("k"))
        assert result is None and elapsed < 0.005, "an open breaker skips Redis"
    assert cache.stats()["skipped"] == 50
    # After the reset time one trial goes through; against a still-paused server it fails: open again.
    time.sleep(1.05)
    _, elapsed = timed(lambda: cache.get("k"))
    assert elapsed >= TIMEOUT_MS / 1000 * 0.8
    assert cache.breaker.state == OPEN
    private_redis.resume()
    assert cache.get("k") is None, "still open for another reset period"
    time.sleep(1.05)
    assert cache.get("k") == b"v"
    assert cache.breaker.state == CLOSED
    assert cache.available


def test_half_open_lets_one_trial_through(
    private_redis: PrivateRedis, make_cache: Callable[..., RedisCache]
) -> None:
    # A long timeout keeps the trial out long enough to look at the breaker meanwhile.
    cache = make_cache(failures=1, reset_s=1.0, timeout_ms=500)
    private_redis.pause()
    cache.get("k")
    assert cache.breaker.state == OPEN
    time.sleep(1.05)
    trial = threading.Thread(target=cache.get, args=("k",))
    trial.start()
    assert wait_for(lambda: cache.breaker.state == HALF_OPEN, 1)
    _, elapsed = timed(lambda: cache.get("k"))
    trial.join()
    assert elapsed < 0.005, "others are skipped while the trial is out"
    assert cache.breaker.state == OPEN, "the failed trial opened it again"


def test_render_cache_renders_locally_while_redis_is_down_and_refills_after(
    private_redis: PrivateRedis, make_cache: Callable[..., RedisCache], raw: redis.Redis
) -> None:
    events: list[tuple[str, dict[str, str]]] = []
    shared = make_cache(failures=3, reset_s=1.0)
    cache = RenderCache(
        LocalCache(1 << 20), shared, **RENDER_SETTINGS,
        on_event=lambda name, **labels: events.append((name, labels)),
    )
    private_redis.stop()
    render = Renderer()
    first = cache.get_or_render("down", render)
    assert (first.status, first.tier) == ("MISS", "render")
    assert cache.get_or_render("down", render).tier == "local"
    assert ("backend_error", {"backend": "redis"}) in events
    assert shared.breaker.state == OPEN

    private_redis.restart()
    time.sleep(1.05)  # the breaker's reset time
    result = cache.get_or_render("up", Renderer())
    assert result.status == "MISS"
    assert shared.breaker.state == CLOSED
    # The same objects write to Redis again.
    assert CachedRender.decode(raw.get(PREFIX + "up")) == result.entry


def test_one_render_per_process_while_redis_is_down(
    private_redis: PrivateRedis, make_cache: Callable[..., RedisCache]
) -> None:
    cache = RenderCache(LocalCache(1 << 20), make_cache(), **RENDER_SETTINGS)
    private_redis.stop()
    render = Renderer(delay=0.2)
    start = threading.Barrier(20)
    results: list[Any] = []

    def ask() -> None:
        start.wait()
        results.append(cache.get_or_render("k", render))

    threads = [threading.Thread(target=ask) for _ in range(20)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert render.calls == 1
    assert len({result.entry for result in results}) == 1


def test_render_cache_with_redis_hung_stays_fast(
    private_redis: PrivateRedis, make_cache: Callable[..., RedisCache]
) -> None:
    cache = RenderCache(LocalCache(1 << 20), make_cache(failures=3, reset_s=30), **RENDER_SETTINGS)
    private_redis.pause()
    # GET, lock and write each wait one timeout; then the breaker is open and Redis costs nothing.
    result, elapsed = timed(lambda: cache.get_or_render("a", Renderer()))
    assert result.status == "MISS"
    assert elapsed < 3 * TIMEOUT_MS / 1000 + SLACK_S
    for key in ("b", "c", "d"):
        result, elapsed = timed(lambda key=key: cache.get_or_render(key, Renderer()))
        assert result.status == "MISS" and elapsed < 0.05


def test_stale_still_served_from_the_local_tier_with_redis_down(
    private_redis: PrivateRedis, make_cache: Callable[..., RedisCache]
) -> None:
    cache = RenderCache(LocalCache(1 << 20), make_cache(), **RENDER_SETTINGS)
    good = cache.get_or_render("v1", Renderer(), last_good_key="widget").entry
    private_redis.stop()

    def database_down() -> tuple[bytes, str]:
        raise ConnectionRefusedError("database down")

    result = cache.get_or_render("v2", database_down, last_good_key="widget")
    assert (result.status, result.entry) == ("STALE", good)
    assert cache.get_stale("widget") == good


def fill_until_out_of_memory(raw: redis.Redis) -> None:
    raw.config_set("maxmemory-policy", "noeviction")
    raw.config_set("maxmemory", "1mb")
    chunk = b"x" * 10_000
    for number in range(10_000):
        try:
            raw.set(f"fill:{number}", chunk)
        except redis.exceptions.OutOfMemoryError:
            return
    pytest.fail("the server never ran out of memory")


def test_out_of_memory_writes_fail_reads_work_then_recover(
    make_cache: Callable[..., RedisCache], raw: redis.Redis
) -> None:
    shared = make_cache(failures=3)
    cache = RenderCache(LocalCache(1 << 20), shared, **RENDER_SETTINGS)
    before = cache.get_or_render("before", Renderer()).entry
    fill_until_out_of_memory(raw)

    assert shared.set("k", b"v", 10) is False
    assert not shared.acquire_lock("k", 1000).acquired
    assert "OutOfMemoryError" in shared.stats()["errors"]
    assert shared.breaker.state == CLOSED, "the server answers: no reason to stop reading from it"
    other_worker = RenderCache(LocalCache(1 << 20), shared, **RENDER_SETTINGS)
    assert other_worker.get_or_render("before", Renderer()).entry == before, "reads still work"
    render = Renderer()
    assert cache.get_or_render("during", render).status == "MISS"
    assert cache.get_or_render("during", render).tier == "local"
    assert raw.get(PREFIX + "during") is None

    raw.config_set("maxmemory", "0")
    result = cache.get_or_render("after", Renderer())
    assert CachedRender.decode(raw.get(PREFIX + "after")) == result.entry


def test_read_only_replica_writes_fail_reads_work_then_recover(
    make_cache: Callable[..., RedisCache], raw: redis.Redis
) -> None:
    shared = make_cache(failures=3)
    cache = RenderCache(LocalCache(1 << 20), shared, **RENDER_SETTINGS)
    before = cache.get_or_render("before", Renderer()).entry
    raw.replicaof("127.0.0.1", free_port())  # a master that is not there: the data stays, read-only
    try:
        assert shared.set("k", b"v", 10) is False
        lock = shared.acquire_lock("k", 1000)
        assert not lock.acquired and not lock.held_elsewhere
        assert "ReadOnlyError" in shared.stats()["errors"]
        assert shared.breaker.state == CLOSED
        other_worker = RenderCache(None, shared, **RENDER_SETTINGS)
        assert other_worker.get_or_render("before", Renderer()).entry == before
        render = Renderer()
        assert cache.get_or_render("during", render).status == "MISS"
        assert cache.get_or_render("during", render).tier == "local"
    finally:
        raw.replicaof("NO", "ONE")
    result = cache.get_or_render("after", Renderer())
    assert CachedRender.decode(raw.get(PREFIX + "after")) == result.entry


def test_a_subscription_comes_back_after_a_restart(
    private_redis: PrivateRedis, make_cache: Callable[..., RedisCache]
) -> None:
    cache = make_cache()
    received: list[bytes] = []
    resubscribed: list[int] = []
    subscription = cache.listen("bus", received.append, on_resubscribe=lambda: resubscribed.append(1))
    try:
        assert subscription.subscribed.wait(5)
        assert cache.publish("bus", b"one") == 1
        assert wait_for(lambda: received == [b"one"])
        private_redis.restart()
        assert wait_for(lambda: subscription.subscriptions == 2, 10)
        assert resubscribed == [1]
        assert wait_for(lambda: cache.publish("bus", b"two") == 1)
        assert wait_for(lambda: received == [b"one", b"two"])
    finally:
        subscription.stop()
    assert not subscription.alive


def test_a_subscription_notices_a_hung_server(
    private_redis: PrivateRedis, make_cache: Callable[..., RedisCache]
) -> None:
    cache = make_cache()
    subscription = cache.listen("bus", lambda data: None, ping_interval_s=0.1)
    try:
        assert subscription.subscribed.wait(5)
        private_redis.pause()
        # No PONG comes back: it drops the connection and starts resubscribing.
        assert wait_for(lambda: not subscription.subscribed.is_set(), 3)
        private_redis.resume()
        assert wait_for(lambda: subscription.subscribed.is_set(), 10)
        assert subscription.subscriptions >= 2
    finally:
        subscription.stop()
