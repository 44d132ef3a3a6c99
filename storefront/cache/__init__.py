"""The render cache: bytes by key in an in-process tier and a shared Redis (or Redis Cluster) tier."""

from __future__ import annotations

from collections.abc import Callable
from typing import TYPE_CHECKING

from storefront.cache.breaker import CircuitBreaker
from storefront.cache.entry import CachedRender, NotFoundEntry, decode_entry, strong_etag
from storefront.cache.local import LocalCache
from storefront.cache.rediscache import LockAttempt, RedisCache, RedisClusterCache, Subscription
from storefront.cache.render_cache import (
    HIT,
    LAST_GOOD_PREFIX,
    MISS,
    STALE,
    CacheResult,
    NotFoundRender,
    RenderCache,
)

if TYPE_CHECKING:
    from storefront.settings import Settings

__all__ = [
    "HIT",
    "LAST_GOOD_PREFIX",
    "MISS",
    "STALE",
    "CacheResult",
    "CachedRender",
    "CircuitBreaker",
    "LocalCache",
    "LockAttempt",
    "NotFoundEntry",
    "NotFoundRender",
    "RedisCache",
    "RedisClusterCache",
    "RenderCache",
    "Subscription",
    "create_render_cache",
    "decode_entry",
    "strong_etag",
]


def create_render_cache(
    settings: Settings,
    key_prefix: str = "sf:",
    *,
    on_event: Callable[..., None] | None = None,
) -> RenderCache:
    """The tiers the settings ask for: no Redis tier without a URL, no local tier with a zero budget.

    With ``settings.redis_cluster`` the URL is a seed node of a Redis Cluster. Nothing connects here;
    the first request does (after gunicorn forks, as it should).
    """
    # The render tier gets what lookups and hot URLs leave of the worker's budget (Settings).
    local = LocalCache(settings.render_tier_bytes) if settings.render_tier_bytes > 0 else None
    shared = None
    if settings.redis_url:
        shared_class = RedisClusterCache if settings.redis_cluster else RedisCache
        shared = shared_class(
            settings.redis_url,
            key_prefix=key_prefix,
            connect_timeout_ms=settings.redis_connect_timeout_ms,
            timeout_ms=settings.redis_timeout_ms,
            breaker=CircuitBreaker(settings.breaker_failures, settings.breaker_reset_s),
        )
    return RenderCache(
        local,
        shared,
        render_ttl_s=settings.render_ttl_s,
        stale_ttl_s=settings.stale_ttl_s,
        local_ttl_s=settings.local_cache_ttl_s,
        lock_ttl_ms=settings.lock_ttl_ms,
        lock_wait_ms=settings.lock_wait_ms,
        negative_ttl_s=settings.negative_ttl_s,
        on_event=on_event,
    )
