"""LocalCache beyond the contract: the byte budget, LRU order, TTL on a moved clock, tags, threads."""

from __future__ import annotations

import gc
import random
import threading
import tracemalloc

import pytest

from storefront.cache import CachedRender, LocalCache, RenderCache
from storefront.cache.local import VALUE_OVERHEAD, entry_size, tag_size, value_size


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
    per_entry = entry_size("key-000", ()) + value_size(bytes(1000)) + VALUE_OVERHEAD
    kept = budget // per_entry
    stats = cache.stats()
    assert stats["entries"] == kept
    assert stats["evictions"] == 300 - kept
    assert cache.get("key-299") is not None
    assert cache.get(f"key-{300 - kept:03d}") is not None
    assert cache.get(f"key-{299 - kept:03d}") is None


def test_a_read_makes_an_entry_recent() -> None:
    cache = LocalCache(10 * (entry_size("k0", ()) + value_size(bytes(1000)) + VALUE_OVERHEAD))
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
    cache = LocalCache(5 * (entry_size("k10", ("tag-10",)) + value_size(bytes(100)) + VALUE_OVERHEAD
                            + tag_size("tag-10")))
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


def _render_like_entries(cache: LocalCache, count: int, *, last_good: bool) -> None:
    """What the render cache stores per key: a render under its key and tags, and its last-good copy."""
    chooser = random.Random(7)
    shop = "demo-coffee.myshopify.com"
    variants = [("js", ""), ("js", "fr"), ("html", ""), ("html", "fr"), ("json", ""), ("json", "fr")]
    for number in range(count):
        product = 8000000000001 + number // len(variants)
        fmt, locale = variants[number % len(variants)]
        entry = CachedRender.build(chooser.randbytes(1500) + b"<div></div>" * 600, "text/html; charset=utf-8",
                                   1.0, 60)
        scope = f"{{{shop}:subscription:{product}}}:{fmt}"
        cache.set(f"{scope}:{locale or 'en'}:s1.w3.p1:0123456789ab", entry, 60,
                  (f"shop:{shop}", f"widget:{shop}:subscription", f"product:{shop}:{product}"))
        if last_good:
            cache.set(f"last-good:{scope}:{locale}", entry, 600)


@pytest.mark.parametrize("last_good", [True, False])
@pytest.mark.parametrize("budget", [1 << 30, 1 << 20])
def test_counted_bytes_track_the_memory_the_tier_really_holds(budget: int, last_good: bool) -> None:
    """The budget is only a bound on memory if the count is honest: compare it with tracemalloc."""
    cache = LocalCache(budget)
    gc.collect()
    tracemalloc.start(25)
    try:
        _render_like_entries(cache, 400, last_good=last_good)
        gc.collect()
        snapshot = tracemalloc.take_snapshot()
    finally:
        tracemalloc.stop()
    # Only allocations with this file on their stack: a thread left running by another test may
    # allocate meanwhile, and that is not what the tier holds.
    mine = snapshot.filter_traces([tracemalloc.Filter(True, __file__, all_frames=True)])
    held = sum(stat.size for stat in mine.statistics("filename"))
    counted = cache.stats()["bytes"]
    assert counted <= budget
    assert 0.9 * held <= counted <= 1.15 * held, (counted, held)


def test_a_value_kept_under_two_keys_is_counted_once() -> None:
    entry = CachedRender.build(random.randbytes(20_000), "application/javascript", 1.0, 60)
    cache = LocalCache(10_000_000)
    cache.set("render", entry, 60, tags=("shop:a",))
    alone = cache.stats()["bytes"]
    cache.set("last-good:render", entry, 600)
    both = cache.stats()
    assert both["values"] == 1
    assert both["bytes"] - alone == entry_size("last-good:render", ()), "only the second entry's own bytes"
    cache.delete("render")
    assert cache.get("last-good:render") is entry
    assert cache.stats()["bytes"] == entry_size("last-good:render", ()) + value_size(entry) + VALUE_OVERHEAD
    cache.delete("last-good:render")
    assert (cache.stats()["bytes"], cache.stats()["values"]) == (0, 0)


def test_a_budget_holds_as_many_renders_with_last_good_copies_as_without() -> None:
    with_copies, without = LocalCache(2 << 20), LocalCache(2 << 20)
    _render_like_entries(with_copies, 600, last_good=True)
    _render_like_entries(without, 600, last_good=False)
    assert with_copies.stats()["values"] >= 0.9 * without.stats()["values"]


def test_the_render_cache_stores_a_render_and_its_last_good_copy_as_one_value() -> None:
    local = LocalCache(10_000_000)
    cache = RenderCache(local, None, render_ttl_s=60, stale_ttl_s=600, local_ttl_s=5, lock_ttl_ms=1000,
                        lock_wait_ms=100, negative_ttl_s=5)
    result = cache.get_or_render("k:v1", lambda: (random.randbytes(30_000), "text/html"),
                                 tags=("shop:a",), last_good_key="k")
    assert cache.get_stale("k") is result.entry
    stats = local.stats()
    assert (stats["entries"], stats["values"]) == (2, 1)
    assert stats["bytes"] < value_size(result.entry) + 2_000


def test_shared_tag_strings_are_kept_once() -> None:
    cache = LocalCache(10_000_000)
    for number in range(3):
        cache.set(f"k{number}", bytes(10), 60, tags=("shop:" + "a" * 40,))
    tags = {id(tag) for item in cache._items.values() for tag in item.tags}
    assert len(tags) == 1
    assert cache.invalidate_tags(["shop:" + "a" * 40]) == 3
    assert cache.stats()["bytes"] == 0
