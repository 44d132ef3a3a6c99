"""Fixtures for the cache tests: the shared real Redis under a unique key prefix, and private servers."""

from __future__ import annotations

from collections.abc import Callable, Iterator

import pytest
import redis

from storefront.cache import RedisCache
from tests.services import REDIS_URL, PrivateRedis, reachable, unavailable, unique_name


@pytest.fixture(scope="session")
def redis_url() -> str:
    if not reachable(REDIS_URL):
        unavailable(f"Redis is not reachable at {REDIS_URL}")
    return REDIS_URL


@pytest.fixture
def key_prefix() -> str:
    return unique_name("sftest") + ":"


@pytest.fixture
def raw_redis(redis_url: str, key_prefix: str) -> Iterator[redis.Redis]:
    """A plain client to look behind the cache's back; deletes the test's keys afterwards."""
    client = redis.Redis.from_url(redis_url)
    yield client
    for key in client.scan_iter(match=key_prefix + "*", count=500):
        client.delete(key)
    client.close()


@pytest.fixture
def make_redis_cache(
    redis_url: str, key_prefix: str, raw_redis: redis.Redis
) -> Iterator[Callable[..., RedisCache]]:
    created: list[RedisCache] = []

    def make(**options: object) -> RedisCache:
        options.setdefault("key_prefix", key_prefix)
        # Generous: these tests are not about timeouts, and the shared Redis may be busy with other suites.
        options.setdefault("connect_timeout_ms", 2000)
        options.setdefault("timeout_ms", 2000)
        cache = RedisCache(redis_url, **options)
        created.append(cache)
        return cache

    yield make
    for cache in created:
        cache.close()


@pytest.fixture
def private_redis() -> Iterator[PrivateRedis]:
    """A redis-server of the test's own, to stop, pause, fill or demote."""
    server = PrivateRedis()
    yield server
    server.resume()  # a SIGSTOPped server would never act on the SIGTERM below
    server.stop()
