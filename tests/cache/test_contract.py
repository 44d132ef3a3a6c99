"""The cache contract, written once and run on every backend: LocalCache and RedisCache (real Redis)."""

from __future__ import annotations

import os
import time
from collections.abc import Callable

import pytest

from storefront.cache import LocalCache, RedisCache


class CacheContract:
    """Bytes by key with a TTL. Subclasses provide the ``cache`` fixture."""

    @pytest.fixture
    def cache(self) -> LocalCache | RedisCache:
        raise NotImplementedError

    def test_a_missing_key_is_none(self, cache: LocalCache | RedisCache) -> None:
        assert cache.get("absent") is None

    def test_set_then_get(self, cache: LocalCache | RedisCache) -> None:
        assert cache.set("k", b"value", 10) is True
        assert cache.get("k") == b"value"

    def test_keys_are_independent(self, cache: LocalCache | RedisCache) -> None:
        cache.set("a", b"1", 10)
        cache.set("b", b"2", 10)
        cache.set("a:b", b"3", 10)
        assert (cache.get("a"), cache.get("b"), cache.get("a:b")) == (b"1", b"2", b"3")

    def test_unicode_and_odd_keys(self, cache: LocalCache | RedisCache) -> None:
        keys = ["shop.myshopify.com|subscription|42|ja-JP|js", "ключ", "with space", "glob*?[x]"]
        for number, key in enumerate(keys):
            cache.set(key, str(number).encode(), 10)
        assert [cache.get(key) for key in keys] == [b"0", b"1", b"2", b"3"]

    def test_overwrite_replaces_the_value(self, cache: LocalCache | RedisCache) -> None:
        cache.set("k", b"old", 10)
        cache.set("k", b"new", 10)
        assert cache.get("k") == b"new"

    def test_delete(self, cache: LocalCache | RedisCache) -> None:
        cache.set("k", b"v", 10)
        assert cache.delete("k") is True
        assert cache.get("k") is None
        assert cache.delete("k") is False

    def test_values_expire_after_their_ttl(self, cache: LocalCache | RedisCache) -> None:
        cache.set("short", b"v", 0.15)
        cache.set("long", b"v", 10)
        assert cache.get("short") == b"v"
        time.sleep(0.3)
        assert cache.get("short") is None
        assert cache.get("long") == b"v"

    def test_overwrite_sets_a_new_ttl(self, cache: LocalCache | RedisCache) -> None:
        cache.set("k", b"old", 0.15)
        cache.set("k", b"new", 10)
        time.sleep(0.3)
        assert cache.get("k") == b"new"

    def test_a_zero_ttl_stores_nothing_and_drops_the_old_value(self, cache: LocalCache | RedisCache) -> None:
        cache.set("k", b"old", 10)
        assert cache.set("k", b"new", 0) is False
        assert cache.get("k") is None

    def test_binary_values_come_back_byte_for_byte(self, cache: LocalCache | RedisCache) -> None:
        values = {
            "all": bytes(range(256)), "nul": b"\x00\x00", "crlf": b"\r\n$3\r\n", "random": os.urandom(4096),
        }
        for key, value in values.items():
            cache.set(key, value, 10)
        assert {key: cache.get(key) for key in values} == values

    def test_an_empty_value_is_not_a_miss(self, cache: LocalCache | RedisCache) -> None:
        cache.set("empty", b"", 10)
        assert cache.get("empty") == b""

    def test_large_values(self, cache: LocalCache | RedisCache) -> None:
        value = os.urandom(1024) * 4096  # 4 MiB
        cache.set("large", value, 10)
        assert cache.get("large") == value

    def test_clear_removes_everything(self, cache: LocalCache | RedisCache) -> None:
        for number in range(20):
            cache.set(f"k{number}", b"v", 10)
        cache.clear()
        assert all(cache.get(f"k{number}") is None for number in range(20))


class TestLocalCache(CacheContract):
    @pytest.fixture
    def cache(self) -> LocalCache:
        return LocalCache(64 * 1024 * 1024)


@pytest.mark.redis
class TestRedisCache(CacheContract):
    @pytest.fixture
    def cache(self, make_redis_cache: Callable[..., RedisCache]) -> RedisCache:
        return make_redis_cache(timeout_ms=2000, connect_timeout_ms=2000)
