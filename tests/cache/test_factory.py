"""create_render_cache: the tiers and numbers come from Settings, and nothing connects at construction."""

from __future__ import annotations

import time
from pathlib import Path

import pytest
import redis

from storefront.cache import CachedRender, LocalCache, RedisCache, create_render_cache
from storefront.settings import Settings, load_settings
from tests.services import free_port


def settings(tmp_path: Path, **overrides: object) -> Settings:
    return load_settings({}, {"ENV": "development", **overrides}, str(tmp_path))


def test_defaults_give_a_local_tier_only(tmp_path: Path) -> None:
    cache = create_render_cache(settings(tmp_path))
    assert isinstance(cache.local, LocalCache)
    assert cache.local.max_bytes == 67108864 - 5 * (67108864 // 8)  # lookups, hot URLs, headroom
    assert cache.shared is None
    assert (cache.render_ttl_s, cache.stale_ttl_s, cache.local_ttl_s) == (3600, 604800, 5)
    assert (cache.lock_ttl_ms, cache.lock_wait_ms, cache.negative_ttl_s) == (5000, 1000, 60)


def test_a_zero_budget_leaves_the_local_tier_out(tmp_path: Path) -> None:
    assert create_render_cache(settings(tmp_path, LOCAL_CACHE_BYTES=0)).local is None


def test_every_number_comes_from_the_settings(tmp_path: Path) -> None:
    cache = create_render_cache(
        settings(
            tmp_path, REDIS_URL=f"redis://127.0.0.1:{free_port()}/0", REDIS_CONNECT_TIMEOUT_MS=70,
            REDIS_TIMEOUT_MS=80, BREAKER_FAILURES=4, BREAKER_RESET_S=9, RENDER_TTL_S=120, STALE_TTL_S=30,
            LOCAL_CACHE_BYTES=1000000, LOCAL_CACHE_TTL_S=2, LOCK_TTL_MS=700, LOCK_WAIT_MS=200,
            NEGATIVE_TTL_S=15,
        ),
        key_prefix="custom:",
    )
    shared = cache.shared
    assert isinstance(shared, RedisCache)
    assert (shared.key_prefix, shared.connect_timeout_s, shared.timeout_s) == ("custom:", 0.07, 0.08)
    assert (shared.breaker.failure_threshold, shared.breaker.reset_s) == (4, 9)
    assert cache.local.max_bytes == 1000000 - 5 * (1000000 // 8)
    assert (cache.render_ttl_s, cache.stale_ttl_s, cache.local_ttl_s) == (120, 30, 2)
    assert (cache.lock_ttl_ms, cache.lock_wait_ms, cache.negative_ttl_s) == (700, 200, 15)


def test_nothing_connects_at_construction(tmp_path: Path) -> None:
    started = time.monotonic()
    cache = create_render_cache(settings(tmp_path, REDIS_URL=f"redis://127.0.0.1:{free_port()}/0"))
    assert time.monotonic() - started < 0.5
    assert cache.shared.stats()["errors"] == {}, "no connection was attempted"
    # The first use finds Redis absent and still renders.
    assert cache.get_or_render("k", lambda: (b"body", "text/plain")).status == "MISS"
    assert cache.shared.stats()["errors"] == {"ConnectionError": 3}


@pytest.mark.redis
def test_a_working_cache_over_the_shared_redis(
    tmp_path: Path, redis_url: str, key_prefix: str, raw_redis: redis.Redis
) -> None:
    events: list[str] = []
    cache = create_render_cache(
        # Long timeouts: this is about wiring, and the shared Redis may be busy with other suites.
        settings(tmp_path, REDIS_URL=redis_url, REDIS_TIMEOUT_MS=2000, REDIS_CONNECT_TIMEOUT_MS=2000),
        key_prefix=key_prefix,
        on_event=lambda name, **labels: events.append(name),
    )
    result = cache.get_or_render("k", lambda: (b"<p>hi</p>", "text/html"))
    assert CachedRender.decode(raw_redis.get(key_prefix + "k")) == result.entry
    assert 3600 * 1000 < raw_redis.pttl(key_prefix + "k") <= (3600 + 604800) * 1000
    assert "render" in events
    cache.shared.close()
