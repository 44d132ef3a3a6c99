"""The cache contract of tests/cache, unchanged, on a real three-master Redis Cluster."""

from __future__ import annotations

from collections.abc import Callable

import pytest

from storefront.cache import RedisClusterCache
from tests.cache.test_contract import CacheContract

pytestmark = [pytest.mark.redis, pytest.mark.slow]


class TestRedisClusterCache(CacheContract):
    @pytest.fixture
    def cache(self, make_cluster_cache: Callable[..., RedisClusterCache]) -> RedisClusterCache:
        return make_cluster_cache()
