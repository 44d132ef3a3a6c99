"""RenderCache on each tier layout: hits, stale on error, negative cache, XFetch, last good, single flight."""

from __future__ import annotations

import threading
import time
from collections.abc import Callable
from typing import Any

import pytest
import redis

from storefront.cache import CachedRender, LocalCache, LockAttempt, NotFoundRender, RedisCache, RenderCache

BASE = dict(
    render_ttl_s=60, stale_ttl_s=600, local_ttl_s=60, lock_ttl_ms=5000, lock_wait_ms=1000, negative_ttl_s=0.3
)


class Clock:
    """Wall-clock seconds the test moves by hand (soft expiry and XFetch read it)."""

    def __init__(self) -> None:
        self.now = 1_700_000_000.0

    def __call__(self) -> float:
        return self.now


class Renderer:
    """A render callable that counts its calls; each render's bytes name the call that made them."""

    def __init__(self, delay: float = 0.0, error: Exception | None = None) -> None:
        self.delay = delay
        self.error = error
        self.calls = 0
        self._lock = threading.Lock()

    def __call__(self) -> tuple[bytes, str]:
        with self._lock:
            self.calls += 1
            number = self.calls
        if self.delay:
            time.sleep(self.delay)
        if self.error is not None:
            raise self.error
        return f"<div class=\"widget\">render {number}</div>".encode(), "text/html; charset=utf-8"


def raise_not_found() -> tuple[bytes, str]:
    raise NotFoundRender("unknown product 7")


SHARED_TIERS = [pytest.param("redis", marks=pytest.mark.redis), pytest.param("both", marks=pytest.mark.redis)]
# Tests that need a second worker to look through Redis narrow the layouts with this.
with_shared_tier = pytest.mark.parametrize("tiers", SHARED_TIERS)


@pytest.fixture(params=["local", *SHARED_TIERS])
def tiers(request: pytest.FixtureRequest) -> str:
    return request.param


@pytest.fixture
def clock() -> Clock:
    return Clock()


@pytest.fixture
def build(request: pytest.FixtureRequest, tiers: str, clock: Clock) -> Callable[..., RenderCache]:
    """``build(**options)``: a RenderCache, as one worker would have it, on the tiers under test."""

    def make(**options: Any) -> RenderCache:
        local = LocalCache(8 * 1024 * 1024) if tiers in ("local", "both") else None
        shared = None
        if tiers in ("redis", "both"):
            shared = request.getfixturevalue("make_redis_cache")(timeout_ms=2000, connect_timeout_ms=2000)
        return RenderCache(local, shared, **(BASE | {"clock": clock} | options))

    return make


def test_miss_then_hit(build: Callable[..., RenderCache], tiers: str) -> None:
    cache, render = build(), Renderer()
    first = cache.get_or_render("k", render)
    assert (first.status, first.tier) == ("MISS", "render")
    second = cache.get_or_render("k", render)
    assert (second.status, second.tier) == ("HIT", "local" if tiers != "redis" else "redis")
    assert second.entry == first.entry
    assert render.calls == 1
    assert first.entry.identity == b'<div class="widget">render 1</div>'


@with_shared_tier
def test_another_worker_hits_the_shared_tier(build: Callable[..., RenderCache], tiers: str) -> None:
    render = Renderer()
    first = build().get_or_render("k", render)
    other = build().get_or_render("k", render)
    assert (other.status, other.tier) == ("HIT", "redis")
    assert other.entry == first.entry
    assert render.calls == 1


@with_shared_tier
def test_after_shared_hit_found_nothing_the_render_reads_only_with_its_lock(
    build: Callable[..., RenderCache], monkeypatch: pytest.MonkeyPatch
) -> None:
    cache, other, render = build(), build(), Renderer()
    gets: list[str] = []
    real_get = cache.shared.get
    monkeypatch.setattr(cache.shared, "get", lambda key: gets.append(key) or real_get(key))
    assert cache.shared_hit("k") is None and gets == ["k"]
    first = cache.get_or_render("k", render)
    assert first.status == "MISS" and gets == ["k"]  # no second GET: the lock's round trip read it
    # Knowing of nothing is never wrong for long: what another worker stores meanwhile is found
    # with the lock, not rendered again.
    assert cache.shared_hit("j") is None
    stored = other.get_or_render("j", render)
    found = cache.get_or_render("j", render)
    assert (found.status, found.tier) == ("HIT", "redis") and found.entry == stored.entry
    assert render.calls == 2 and gets == ["k", "j"]


@with_shared_tier
def test_a_shared_hit_for_one_encoding_decodes_only_it_when_nothing_is_kept(
    build: Callable[..., RenderCache], tiers: str
) -> None:
    stored = build().get_or_render("k", Renderer()).entry
    reader = build()
    hit = reader.shared_hit("k", encoding="gzip")
    assert hit is not None and (hit.status, hit.tier) == ("HIT", "redis")
    assert hit.entry.gzip == stored.gzip and hit.entry.etag == stored.etag
    if tiers == "redis":
        # Sent once and dropped: the other bodies were never decoded (nor checked).
        assert hit.entry.partial and hit.entry.identity == hit.entry.br == b""
    else:
        # Kept in process for every later request, whatever it asks for: the whole render.
        assert not hit.entry.partial and hit.entry == stored
        assert reader.get_or_render("k", Renderer()).entry == stored


def test_a_partial_copy_is_never_kept_in_process() -> None:
    from storefront.cache.entry import decode_entry

    entry = CachedRender.build(b"<p>x</p>", "text/html", 1.0, 60)
    cache = RenderCache(LocalCache(1 << 20), None, **BASE)
    cache._keep_local("k", decode_entry(entry.encode(), "br"), ())
    assert cache.local.get("k") is None
    cache._keep_local("k", entry, ())
    assert cache.local.get("k") == entry


def test_a_copy_past_its_soft_expiry_is_refreshed(build: Callable[..., RenderCache], clock: Clock) -> None:
    cache, render = build(), Renderer()
    first = cache.get_or_render("k", render)
    clock.now += 61
    refreshed = cache.get_or_render("k", render)
    assert (refreshed.status, render.calls) == ("MISS", 2)
    assert refreshed.entry.identity != first.entry.identity
    assert cache.get_or_render("k", render).entry == refreshed.entry


def test_stale_is_served_when_the_render_raises_after_expiry(
    build: Callable[..., RenderCache], clock: Clock
) -> None:
    cache = build()
    first = cache.get_or_render("k", Renderer())
    clock.now += 61
    failing = Renderer(error=RuntimeError("database down"))
    result = cache.get_or_render("k", failing)
    assert (result.status, result.tier) == ("STALE", "stale")
    assert result.entry == first.entry
    assert failing.calls == 1
    # Errors are not cached: the next request tries again and succeeds.
    recovered = cache.get_or_render("k", Renderer())
    assert recovered.status == "MISS"


def test_errors_are_not_cached(
    build: Callable[..., RenderCache], tiers: str, request: pytest.FixtureRequest
) -> None:
    cache = build()
    with pytest.raises(RuntimeError, match="database down"):
        cache.get_or_render("k", Renderer(error=RuntimeError("database down")))
    if tiers != "local":
        raw: redis.Redis = request.getfixturevalue("raw_redis")
        assert raw.get(request.getfixturevalue("key_prefix") + "k") is None
    render = Renderer()
    assert cache.get_or_render("k", render).status == "MISS"
    assert render.calls == 1


def test_not_found_is_remembered_for_the_negative_ttl(
    build: Callable[..., RenderCache], clock: Clock
) -> None:
    cache, render = build(), Renderer()
    calls = []

    def not_found() -> tuple[bytes, str]:
        calls.append(1)
        raise NotFoundRender("unknown product 7")

    with pytest.raises(NotFoundRender, match="unknown product 7"):
        cache.get_or_render("k", not_found)
    with pytest.raises(NotFoundRender, match="unknown product 7"):
        cache.get_or_render("k", render)
    assert (len(calls), render.calls) == (1, 0)
    time.sleep(0.4)
    clock.now += 0.4
    assert cache.get_or_render("k", render).status == "MISS"
    assert render.calls == 1


@with_shared_tier
def test_another_worker_sees_the_negative_entry(build: Callable[..., RenderCache], tiers: str) -> None:
    with pytest.raises(NotFoundRender):
        build().get_or_render("k", raise_not_found)
    render = Renderer()
    with pytest.raises(NotFoundRender, match="unknown product 7"):
        build().get_or_render("k", render)
    assert render.calls == 0


def test_a_zero_negative_ttl_remembers_nothing(build: Callable[..., RenderCache]) -> None:
    cache, render = build(negative_ttl_s=0), Renderer()
    with pytest.raises(NotFoundRender):
        cache.get_or_render("k", raise_not_found)
    assert cache.get_or_render("k", render).status == "MISS"


def test_xfetch_refreshes_early_with_a_small_draw(build: Callable[..., RenderCache], clock: Clock) -> None:
    draws = [0.5]
    cache = build(rand=lambda: draws[0])
    render = Renderer(delay=0.05)
    first = cache.get_or_render("k", render)
    assert 50 <= first.entry.render_ms < 1000
    # Far from expiry even the smallest draw does not refresh: 0.05 s * ln(1e30) = 3.5 s < 59 s.
    clock.now = first.entry.created + 1
    draws[0] = 1e-30
    assert cache.get_or_render("k", render).status == "HIT"
    # Half a second before expiry: an ordinary draw waits (0.05 s * ln 2 < 0.5 s) ...
    clock.now = first.entry.soft_expiry - 0.5
    draws[0] = 0.5
    assert cache.get_or_render("k", render).status == "HIT"
    assert render.calls == 1
    # ... and a small one refreshes (0.05 s * ln(1e30) > 0.5 s), before expiry.
    draws[0] = 1e-30
    early = cache.get_or_render("k", render)
    assert (early.status, early.tier, render.calls) == ("MISS", "render", 2)
    assert early.entry.created == clock.now
    draws[0] = 0.5
    assert cache.get_or_render("k", render).entry == early.entry


def test_xfetch_beta_zero_never_refreshes_early(build: Callable[..., RenderCache], clock: Clock) -> None:
    cache, render = build(rand=lambda: 1e-300, xfetch_beta=0.0), Renderer(delay=0.02)
    first = cache.get_or_render("k", render)
    clock.now = first.entry.soft_expiry - 0.001
    assert cache.get_or_render("k", render).status == "HIT"
    assert render.calls == 1


def test_a_failed_early_refresh_serves_the_current_copy(
    build: Callable[..., RenderCache], clock: Clock
) -> None:
    cache = build(rand=lambda: 1e-30)
    first = cache.get_or_render("k", Renderer(delay=0.05))
    clock.now = first.entry.soft_expiry - 0.5
    result = cache.get_or_render("k", Renderer(error=RuntimeError("database down")))
    assert result.status == "HIT"
    assert result.entry == first.entry


def test_others_keep_the_current_copy_while_one_refreshes_early(
    build: Callable[..., RenderCache], clock: Clock
) -> None:
    cache = build(rand=lambda: 1e-30)
    first = cache.get_or_render("k", Renderer(delay=0.05))
    clock.now = first.entry.soft_expiry - 0.5
    slow = Renderer(delay=0.3)
    refresher = threading.Thread(target=cache.get_or_render, args=("k", slow))
    refresher.start()
    try:
        assert wait_for(lambda: slow.calls == 1)
        started = time.monotonic()
        other = Renderer()
        result = cache.get_or_render("k", other)
        assert time.monotonic() - started < 0.2
        assert (result.status, result.entry, other.calls) == ("HIT", first.entry, 0)
    finally:
        refresher.join()


def test_last_good_serves_when_even_a_new_version_cannot_render(
    build: Callable[..., RenderCache], tiers: str
) -> None:
    cache = build()
    good = cache.get_or_render("shop-a:v1", Renderer(), last_good_key="shop-a").entry
    result = cache.get_or_render(
        "shop-a:v2", Renderer(error=RuntimeError("database down")), last_good_key="shop-a"
    )
    assert (result.status, result.entry) == ("STALE", good)
    assert cache.get_stale("shop-a") == good
    assert cache.get_stale("shop-b") is None
    if tiers != "local":
        assert build().get_stale("shop-a") == good, "another worker finds it through Redis"


def test_last_good_follows_the_latest_render(build: Callable[..., RenderCache]) -> None:
    cache = build()
    cache.get_or_render("shop-a:v1", Renderer(), last_good_key="shop-a")
    newer = cache.get_or_render("shop-a:v2", Renderer(), last_good_key="shop-a").entry
    assert cache.get_stale("shop-a") == newer


def test_no_last_good_without_a_stale_ttl(build: Callable[..., RenderCache]) -> None:
    cache = build(stale_ttl_s=0)
    cache.get_or_render("shop-a:v1", Renderer(), last_good_key="shop-a")
    assert cache.get_stale("shop-a") is None


def test_invalidate_tags_drops_local_entries(build: Callable[..., RenderCache], tiers: str) -> None:
    cache, render = build(), Renderer()
    cache.get_or_render("a", render, tags=("shop:a",))
    cache.get_or_render("b", render, tags=("shop:b",))
    assert cache.invalidate_tags(["shop:a"]) == (0 if tiers == "redis" else 1)
    again = cache.get_or_render("a", render)
    assert again.tier == {"local": "render", "redis": "redis", "both": "redis"}[tiers]
    assert cache.get_or_render("b", render).tier == ("redis" if tiers == "redis" else "local")


@with_shared_tier
def test_a_corrupted_shared_value_is_a_miss_and_gets_replaced(
    build: Callable[..., RenderCache], tiers: str, request: pytest.FixtureRequest
) -> None:
    raw: redis.Redis = request.getfixturevalue("raw_redis")
    name = request.getfixturevalue("key_prefix") + "k"
    raw.set(name, b"SFRC\x01garbage", px=60_000)
    result = build().get_or_render("k", Renderer())
    assert result.status == "MISS"
    assert CachedRender.decode(raw.get(name)) == result.entry


def test_one_render_per_key_among_threads(build: Callable[..., RenderCache]) -> None:
    cache, render = build(), Renderer(delay=0.2)
    results = run_threads(30, lambda: cache.get_or_render("k", render))
    assert render.calls == 1
    assert {result.entry for result in results} == {results[0].entry}
    assert sorted(result.status for result in results).count("MISS") == 1


def test_the_leaders_error_reaches_every_waiter(build: Callable[..., RenderCache]) -> None:
    cache, render = build(), Renderer(delay=0.2, error=RuntimeError("database down"))

    def call() -> Exception | None:
        try:
            cache.get_or_render("k", render)
        except RuntimeError as exc:
            return exc
        return None

    errors = run_threads(10, call)
    assert render.calls == 1
    assert all(isinstance(error, RuntimeError) for error in errors)


def test_not_found_reaches_every_waiter(build: Callable[..., RenderCache]) -> None:
    cache = build()
    calls = []

    def slow_not_found() -> tuple[bytes, str]:
        calls.append(1)
        time.sleep(0.2)
        raise NotFoundRender("unknown shop")

    def call() -> str:
        try:
            cache.get_or_render("k", slow_not_found)
        except NotFoundRender as exc:
            return str(exc)
        return "rendered"

    assert run_threads(10, call) == ["unknown shop"] * 10
    assert len(calls) == 1


def test_waiters_serve_stale_after_lock_wait_while_the_leader_is_slow(
    build: Callable[..., RenderCache], clock: Clock
) -> None:
    cache = build(lock_wait_ms=100)
    first = cache.get_or_render("k", Renderer()).entry
    clock.now += 61
    slow = Renderer(delay=0.4)
    leader = threading.Thread(target=cache.get_or_render, args=("k", slow))
    leader.start()
    try:
        assert wait_for(lambda: slow.calls == 1)
        started = time.monotonic()
        result = cache.get_or_render("k", Renderer())
        waited = time.monotonic() - started
        assert (result.status, result.entry) == ("STALE", first)
        assert 0.08 <= waited < 0.4
    finally:
        leader.join()


@pytest.mark.redis
class TestAcrossWorkers:
    """Another worker holds the Redis lock (taken by hand here, so the timing is the test's)."""

    @pytest.fixture
    def shared(self, make_redis_cache: Callable[..., RedisCache]) -> RedisCache:
        return make_redis_cache(timeout_ms=2000, connect_timeout_ms=2000)

    def make(self, shared: RedisCache, clock: Clock, **options: Any) -> RenderCache:
        return RenderCache(LocalCache(1 << 20), shared, **(BASE | {"clock": clock} | options))

    def test_waits_for_the_other_workers_value(self, shared: RedisCache, clock: Clock) -> None:
        lock = shared.acquire_lock("k", 5000)
        waiter, render = self.make(shared, clock), Renderer()

        def finish_elsewhere() -> None:
            time.sleep(0.15)
            entry = CachedRender.build(b"from the other worker", "text/html", 1, 60, now=clock())
            shared.set("k", entry.encode(), 60)
            shared.release_lock("k", lock.token)

        other = threading.Thread(target=finish_elsewhere)
        other.start()
        result = waiter.get_or_render("k", render)
        other.join()
        assert (result.status, result.tier) == ("HIT", "redis")
        assert result.entry.identity == b"from the other worker"
        assert render.calls == 0

    def test_a_value_stored_between_our_get_and_our_lock_is_used(
        self, redis_url: str, key_prefix: str, raw_redis: redis.Redis, clock: Clock
    ) -> None:
        theirs = CachedRender.build(b"from the other worker", "text/html", 1, 60, now=clock())

        class RacingRedisCache(RedisCache):
            def acquire_lock(self, name: str, ttl_ms: int, **options: Any) -> LockAttempt:
                # The other worker stores its render and releases its lock just before we ask.
                self.set(name, theirs.encode(), 60)
                return super().acquire_lock(name, ttl_ms, **options)

        shared = RacingRedisCache(redis_url, key_prefix=key_prefix, timeout_ms=2000, connect_timeout_ms=2000)
        render = Renderer()
        try:
            result = self.make(shared, clock).get_or_render("k", render)
        finally:
            shared.close()
        assert (result.status, result.tier, result.entry, render.calls) == ("HIT", "redis", theirs, 0)

    def test_a_miss_costs_three_round_trips_and_gives_its_lock_back(
        self, redis_url: str, key_prefix: str, clock: Clock
    ) -> None:
        trips: list[str] = []

        class CountingRedisCache(RedisCache):
            def _call(self, op: str, fn: Callable[[Any], Any], default: Any) -> Any:
                trips.append(op)
                return super()._call(op, fn, default)

        shared = CountingRedisCache(redis_url, key_prefix=key_prefix, timeout_ms=2000,
                                    connect_timeout_ms=2000)
        try:
            result = self.make(shared, clock).get_or_render("k", Renderer(), last_good_key="last")
            # The lookup; the lock with a second look at the key; the value, the last-good pointer
            # and the lock's release.
            assert (result.status, trips) == ("MISS", ["get", "lock", "set"])
            assert shared.acquire_lock("k", 1000).acquired
            assert CachedRender.decode(shared.get("k")) == result.entry
            assert shared.get("last-good:last") == b"k"
        finally:
            shared.close()

    def test_a_failed_render_gives_its_lock_back(self, shared: RedisCache, clock: Clock) -> None:
        cache = self.make(shared, clock)
        with pytest.raises(RuntimeError):
            cache.get_or_render("k", Renderer(error=RuntimeError("template bug")))
        with pytest.raises(NotFoundRender):
            cache.get_or_render("gone", raise_not_found)
        assert shared.acquire_lock("k", 1000).acquired and shared.acquire_lock("gone", 1000).acquired

    def test_renders_alone_after_lock_wait_when_nothing_is_stale(
        self, shared: RedisCache, clock: Clock
    ) -> None:
        shared.acquire_lock("k", 5000)  # held by a worker that hangs
        cache, render = self.make(shared, clock, lock_wait_ms=200), Renderer()
        started = time.monotonic()
        result = cache.get_or_render("k", render)
        assert (result.status, render.calls) == ("MISS", 1)
        assert 0.2 <= time.monotonic() - started < 1.0

    def test_serves_stale_after_lock_wait(self, shared: RedisCache, clock: Clock) -> None:
        cache = self.make(shared, clock, lock_wait_ms=200)
        first = cache.get_or_render("k", Renderer()).entry
        clock.now += 61
        shared.acquire_lock("k", 5000)
        render = Renderer()
        result = cache.get_or_render("k", render)
        assert (result.status, result.entry, render.calls) == ("STALE", first, 0)

    def test_an_early_refresh_leaves_it_to_the_lock_holder(self, shared: RedisCache, clock: Clock) -> None:
        cache = self.make(shared, clock, rand=lambda: 1e-30)
        first = cache.get_or_render("k", Renderer(delay=0.05)).entry
        clock.now = first.soft_expiry - 0.5
        shared.acquire_lock("k", 5000)
        render = Renderer()
        started = time.monotonic()
        result = cache.get_or_render("k", render)
        assert (result.status, result.entry, render.calls) == ("HIT", first, 0)
        assert time.monotonic() - started < 0.1

    def test_takes_over_when_the_holder_gives_up(self, shared: RedisCache, clock: Clock) -> None:
        lock = shared.acquire_lock("k", 5000)
        cache, render = self.make(shared, clock, lock_wait_ms=3000), Renderer()
        threading.Timer(0.1, shared.release_lock, args=("k", lock.token)).start()
        started = time.monotonic()
        result = cache.get_or_render("k", render)
        assert (result.status, render.calls) == ("MISS", 1)
        assert time.monotonic() - started < 1.0, "no need to sit out lock_wait once the lock is free"


def test_events_name_each_step(build: Callable[..., RenderCache], tiers: str) -> None:
    events: list[tuple[str, dict[str, str]]] = []
    cache = build(on_event=lambda name, **labels: events.append((name, labels)))
    render = Renderer()
    cache.get_or_render("k", render)
    cache.get_or_render("k", render)
    expected_miss = {
        "local": [("cache", {"tier": "local", "result": "miss"})],
        "redis": [("cache", {"tier": "redis", "result": "miss"})],
        "both": [
            ("cache", {"tier": "local", "result": "miss"}), ("cache", {"tier": "redis", "result": "miss"}),
        ],
    }[tiers]
    expected_hit = ("cache", {"tier": "redis" if tiers == "redis" else "local", "result": "hit"})
    assert events == [*expected_miss, ("render", {}), expected_hit]


def test_a_failing_event_hook_is_contained(build: Callable[..., RenderCache]) -> None:
    def hook(name: str, **labels: str) -> None:
        raise RuntimeError("metrics down")

    cache = build(on_event=hook)
    assert cache.get_or_render("k", Renderer()).status == "MISS"
    assert cache.get_or_render("k", Renderer()).status == "HIT"


def wait_for(condition: Callable[[], bool], timeout: float = 3.0) -> bool:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if condition():
            return True
        time.sleep(0.005)
    return condition()


def run_threads(count: int, call: Callable[[], Any]) -> list[Any]:
    """``call`` from ``count`` threads released at once; results in thread order."""
    start = threading.Barrier(count)
    results: list[Any] = [None] * count
    failures: list[BaseException] = []

    def work(index: int) -> None:
        start.wait()
        try:
            results[index] = call()
        except BaseException as exc:  # surfaced below
            failures.append(exc)

    threads = [threading.Thread(target=work, args=(index,)) for index in range(count)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert not failures, failures
    return results
