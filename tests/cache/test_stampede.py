"""Stampede: 4 processes x 50 threads ask for one fresh key through the shared Redis: exactly one render."""

from __future__ import annotations

import pytest
import redis

from tests.cache.stampede_worker import run_stampede

pytestmark = pytest.mark.redis

PROCESSES = 4
THREADS = 50


def test_two_hundred_concurrent_requests_render_once(
    redis_url: str, key_prefix: str, raw_redis: redis.Redis
) -> None:
    counter_key = key_prefix + "render-count"
    outcomes, _, exitcodes = run_stampede(redis_url, False, key_prefix, counter_key,
                                          "shop-a:subscription:42:v7", PROCESSES, THREADS)

    assert exitcodes == [0] * PROCESSES
    assert len(outcomes) == PROCESSES * THREADS
    assert [outcome for outcome in outcomes if outcome[0] == "ERROR"] == []
    assert int(raw_redis.get(counter_key)) == 1, "exactly one render across every process and thread"
    bodies = {identity for _, _, identity in outcomes}
    assert len(bodies) == 1
    assert bodies.pop().startswith(b"render 1 in pid ")
    assert [status for status, _, _ in outcomes].count("MISS") == 1
