"""Fixtures for the Redis Cluster tests: one cluster for the session, fresh ones for tests that break them."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
from redis.cluster import RedisCluster

from storefront.cache import RedisClusterCache
from tests.cluster.private_cluster import (
    PrivateCluster,
    close_cluster_client,
    cluster_client,
    delete_prefixed,
)
from tests.services import unique_name


@pytest.fixture(scope="session")
def cluster(tmp_path_factory: pytest.TempPathFactory) -> Iterator[PrivateCluster]:
    """The session's cluster: tests on it must leave every node running."""
    running = PrivateCluster(tmp_path_factory.mktemp("redis-cluster"))
    yield running
    running.stop()


@pytest.fixture
def private_cluster(tmp_path: Path) -> Iterator[PrivateCluster]:
    """A cluster of the test's own, to kill or pause nodes of."""
    running = PrivateCluster(tmp_path)
    yield running
    running.stop()


@pytest.fixture
def key_prefix() -> str:
    return unique_name("sfcluster") + ":"


@pytest.fixture
def raw_cluster(cluster: PrivateCluster, key_prefix: str) -> Iterator[RedisCluster]:
    """A cluster client of the test's; deletes the test's keys on every master afterwards."""
    client = cluster_client(cluster.seed_url)
    yield client
    delete_prefixed(client, key_prefix)
    close_cluster_client(client)


@pytest.fixture
def make_cluster_cache(
    cluster: PrivateCluster, key_prefix: str, raw_cluster: RedisCluster
) -> Iterator[Callable[..., RedisClusterCache]]:
    created: list[RedisClusterCache] = []

    def make(**options: object) -> RedisClusterCache:
        options.setdefault("key_prefix", key_prefix)
        # Generous: these tests are about routing, not timeouts; the fault tests set their own.
        options.setdefault("connect_timeout_ms", 2000)
        options.setdefault("timeout_ms", 2000)
        cache = RedisClusterCache(cluster.seed_url, **options)
        created.append(cache)
        return cache

    yield make
    for cache in created:
        cache.close()
