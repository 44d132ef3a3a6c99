"""LocalCache beyond the contract: the byte budget, LRU order, TTL on a moved clock, tags, threads."""

from __future__ import annotations

import random
import threading

import pytest

from storefront.cache import CachedRender, LocalCache
from storefront.cache.local import ENTRY_OVERHEAD


class FakeClock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


def test_rejects_a_zero_budget() -> None:
    with pytest.raises(ValueError):
        LocalCache(0)


def test_total_bytes_stay_within_the_budget_and_the_oldest_go_first() -> None:
    budget = 100_000
    cache = LocalCache(budget)
    for number in range(300):
        cache.set(f"key-{number:03d}", bytes(1000), 60)
        assert cache.stats()["bytes"] <= budget
    per_entry = 1000 + ENTRY_OVERHEAD + len("key-000")
    kept = budget // per_entry
    stats = cache.stats()
    assert stats["entries"] == kept
    assert stats["evictions"] == 300 - kept
    assert cache.get("key-299") is not None
    assert cache.get(f"key-{300 - kept:03d}") is not None
    assert cache.get(f"key-{299 - kept:03d}") is None


def test_a_read_makes_an_entry_recent() -> None:
    cache = LocalCache(10 * (1000 + ENTRY_OVERHEAD + 2))
    for number in range(10):
        cache.set(f"k{number}", bytes(1000), 60)
    assert cache.get("k0") is not None
    cache.set("kA", bytes(1000), 60)
    assert cache.get("k0") is not None, "read just now, so not the least recently used"
    assert cache.get("k1") is None


def test_a_value_larger_than_the_budget_is_refused_and_the_old_one_dropped() -> None:
    cache = LocalCache(10_000)
    cache.set("k", b"small", 60)
    cache.set("other", b"x", 60)
    assert cache.set("k", bytes(20_000), 60) is False
    assert cache.get("k") is None
    assert cache.get("other") == b"x"
    assert cache.stats()["rejected"] == 1


def test_renders_are_sized_by_their_bodies() -> None:
    entry = CachedRender.build(random.randbytes(50_000), "application/javascript", 1.0, 60)
    cache = LocalCache(10_000_000)
    cache.set("r", entry, 60)
    assert cache.get("r") is entry
    assert cache.stats()["bytes"] >= len(entry.identity) + len(entry.gzip) + len(entry.br)


def test_ttl_on_the_clock() -> None:
    clock = FakeClock()
    cache = LocalCache(1_000_000, clock=clock)
    cache.set("k", b"v", 5)
    clock.now += 4.99
    assert cache.get("k") == b"v"
    clock.now += 0.01
    assert cache.get("k") is None
    assert cache.stats()["expirations"] == 1
    assert cache.stats()["bytes"] == 0


def test_invalidate_tags_drops_exactly_the_tagged_entries() -> None:
    cache = LocalCache(1_000_000)
    cache.set("a1", b"1", 60, tags=("shop:a", "product:a:1"))
    cache.set("a2", b"2", 60, tags=("shop:a", "product:a:2"))
    cache.set("b1", b"3", 60, tags=("shop:b", "product:b:1"))
    cache.set("untagged", b"4", 60)
    assert cache.invalidate_tags(["product:a:1"]) == 1
    assert cache.get("a1") is None and cache.get("a2") == b"2"
    assert cache.invalidate_tags(["shop:a", "shop:b", "shop:none"]) == 2
    assert [cache.get(key) for key in ("a2", "b1", "untagged")] == [None, None, b"4"]
    assert cache.invalidate_tags(["shop:a"]) == 0
    assert cache.stats()["tags"] == 0


def test_overwriting_replaces_the_tags() -> None:
    cache = LocalCache(1_000_000)
    cache.set("k", b"v1", 60, tags=("old",))
    cache.set("k", b"v2", 60, tags=("new",))
    assert cache.invalidate_tags(["old"]) == 0
    assert cache.get("k") == b"v2"
    assert cache.invalidate_tags(["new"]) == 1


def test_evicted_and_deleted_entries_leave_no_tags_behind() -> None:
    cache = LocalCache(5 * (100 + ENTRY_OVERHEAD + 10 + 64 + 10))
    for number in range(50):
        cache.set(f"k{number}", bytes(100), 60, tags=(f"tag-{number}",))
    assert cache.stats()["tags"] == cache.stats()["entries"] <= 5
    cache.clear()
    assert (cache.stats()["bytes"], cache.stats()["tags"], len(cache)) == (0, 0, 0)


def test_stats_count_hits_and_misses() -> None:
    cache = LocalCache(1_000_000)
    cache.set("k", b"v", 60)
    cache.get("k")
    cache.get("k")
    cache.get("nope")
    stats = cache.stats()
    assert (stats["hits"], stats["misses"], stats["sets"]) == (2, 1, 1)


def test_byte_accounting_stays_exact_under_concurrent_use() -> None:
    budget = 200_000
    cache = LocalCache(budget)
    keys = [f"k{number}" for number in range(64)]
    start = threading.Barrier(8)
    failures: list[BaseException] = []

    def work(seed: int) -> None:
        chooser = random.Random(seed)
        start.wait()
        try:
            for _ in range(3000):
                key = chooser.choice(keys)
                action = chooser.random()
                if action < 0.5:
                    cache.set(key, bytes(chooser.randrange(1, 5000)), 60, tags=(f"t{chooser.randrange(4)}",))
                elif action < 0.9:
                    cache.get(key)
                elif action < 0.97:
                    cache.delete(key)
                else:
                    cache.invalidate_tags([f"t{chooser.randrange(4)}"])
                assert cache.stats()["bytes"] <= budget
        except BaseException as exc:  # surfaced below: an assert in a thread would be lost
            failures.append(exc)

    threads = [threading.Thread(target=work, args=(seed,)) for seed in range(8)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert not failures
    for key in keys:
        cache.delete(key)
    assert (cache.stats()["bytes"], cache.stats()["tags"], len(cache)) == (0, 0, 0)
