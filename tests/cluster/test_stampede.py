"""Stampede on the cluster: 4 processes x 50 threads ask for one fresh key at once: exactly one render."""

from __future__ import annotations

import pytest
from redis.cluster import RedisCluster

from tests.cache.stampede_worker import run_stampede
from tests.cluster.private_cluster import PrivateCluster

pytestmark = [pytest.mark.redis, pytest.mark.slow]

PROCESSES = 4
THREADS = 50


def test_two_hundred_concurrent_requests_render_once(
    cluster: PrivateCluster, key_prefix: str, raw_cluster: RedisCluster
) -> None:
    key = "{shop-a:subscription:42}:js:en:v7:r1"
    # The counter sits on another master than the render's keys: the render path crosses nodes.
    counter_key = key_prefix + "{render-count}"
    assert cluster.owner_of(counter_key) != cluster.owner_of(key_prefix + key)
    outcomes, stats, exitcodes = run_stampede(cluster.seed_url, True, key_prefix, counter_key, key,
                                              PROCESSES, THREADS)

    assert exitcodes == [0] * PROCESSES
    assert len(outcomes) == PROCESSES * THREADS
    assert [outcome for outcome in outcomes if outcome[0] == "ERROR"] == []
    assert int(raw_cluster.get(counter_key)) == 1, "exactly one render across every process and thread"
    bodies = {identity for _, _, identity in outcomes}
    assert len(bodies) == 1
    assert bodies.pop().startswith(b"render 1 in pid ")
    assert [status for status, _, _ in outcomes].count("MISS") == 1
    assert all(worker["errors"] == {} for worker in stats), stats
