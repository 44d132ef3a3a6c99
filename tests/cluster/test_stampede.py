"""Stampede on the cluster: 4 processes x 50 threads ask for one fresh key at once: exactly one render."""

from __future__ import annotations

import multiprocessing
import queue

import pytest
from redis.cluster import RedisCluster

from tests.cluster.private_cluster import PrivateCluster
from tests.cluster.stampede_worker import run_worker

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
    context = multiprocessing.get_context("spawn")
    ready = context.Barrier(PROCESSES + 1)
    results = context.Queue()
    processes = [
        context.Process(
            target=run_worker,
            args=(cluster.seed_url, key_prefix, counter_key, key, THREADS, ready, results),
        )
        for _ in range(PROCESSES)
    ]
    for process in processes:
        process.start()
    try:
        ready.wait(60)
        outcomes, stats = [], []
        for _ in range(PROCESSES):
            worker_outcomes, worker_stats = results.get(timeout=60)
            outcomes.extend(worker_outcomes)
            stats.append(worker_stats)
    except (queue.Empty, multiprocessing.BrokenBarrierError):
        pytest.fail("a worker process did not report back")
    finally:
        for process in processes:
            process.join(30)
            if process.is_alive():
                process.kill()

    assert [process.exitcode for process in processes] == [0] * PROCESSES
    assert len(outcomes) == PROCESSES * THREADS
    assert [outcome for outcome in outcomes if outcome[0] == "ERROR"] == []
    assert int(raw_cluster.get(counter_key)) == 1, "exactly one render across every process and thread"
    bodies = {identity for _, _, identity in outcomes}
    assert len(bodies) == 1
    assert bodies.pop().startswith(b"render 1 in pid ")
    assert [status for status, _, _ in outcomes].count("MISS") == 1
    assert all(worker["errors"] == {} for worker in stats), stats
