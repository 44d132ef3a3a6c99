"""WidgetLookup's kept entries on a real store: versions only, the shop's part once, a byte bound."""

from __future__ import annotations

import gc
import threading
import tracemalloc
from collections.abc import Callable, Iterator

import pytest

from storefront.demo import demo_shops, seed_demo
from storefront.store import Store, create_store
from storefront.widget_lookup import DEFAULT_MAX_BYTES, Missing, WidgetLookup
from tests.conftest import load_fixture

SHOP = "demo-coffee.myshopify.com"
FIRST_ID = 8000000000001


def _product(product_id: int) -> dict:
    document = load_fixture("products/coffee-three-plans.json")
    document["id"] = product_id
    document["handle"] = f"lookup-coffee-{product_id}"
    for position, variant in enumerate(document["variants"]):
        variant["id"] = 9000000000000 + (product_id - FIRST_ID) * 100 + position
    return document


@pytest.fixture(scope="module")
def store(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Store]:
    """SQLite with the demo shops and 2,000 more products of the coffee shop (a real store, no mocks)."""
    path = tmp_path_factory.mktemp("lookup") / "storefront.db"
    store = create_store(f"sqlite:///{path}")
    store.migrate()
    seed_demo(store)
    for number in range(2000):
        store.put_product(SHOP, FIRST_ID + number, _product(FIRST_ID + number))
    yield store
    store.close()


def test_kept_lookups_answer_like_a_read_without_documents(store: Store) -> None:
    lookup = WidgetLookup(store, 60, 60)
    read = lookup.read(SHOP, "subscription", FIRST_ID)
    first = lookup.lookup(SHOP, "subscription", FIRST_ID)
    kept = lookup.lookup(SHOP, "subscription", FIRST_ID)
    # A lookup reads versions only (the documents are for a render's own read), kept or not.
    for answer in (first, kept):
        assert (answer.shop, answer.default_locale, answer.locales, answer.settings_version,
                answer.versions) == (read.shop, read.default_locale, read.locales, read.settings_version,
                                     read.versions)
        assert (answer.settings, answer.product, answer.complete) == (None, None, False)
    assert read.complete and read.settings is not None and read.product is not None
    assert lookup.lookup(SHOP, "loyalty", None).versions == lookup.read(SHOP, "loyalty", None).versions


def test_a_render_after_a_lookup_on_the_same_thread_decodes_instead_of_reading(store: Store,
                                                                              monkeypatch) -> None:  # type: ignore[no-untyped-def]
    lookup = WidgetLookup(store, 60, 60)
    product_id = FIRST_ID + 7
    reads: list[int | None] = []
    real_read = store.get_widget_inputs

    def counted(shop: str, kind: str, wanted: int | None):  # type: ignore[no-untyped-def]
        reads.append(wanted)
        return real_read(shop, kind, wanted)

    monkeypatch.setattr(store, "get_widget_inputs", counted)
    expected = lookup.read(SHOP, "subscription", product_id)
    assert reads == [product_id]
    found = lookup.lookup(SHOP, "subscription", product_id)
    # The documents the versions came with: decoded, not read again, and complete.
    handed = lookup.read(SHOP, "subscription", product_id, found.versions)
    assert reads == [product_id] and handed == expected
    # Handed over once; and only for the same widget at the same versions.
    assert lookup.read(SHOP, "subscription", product_id, found.versions) == expected
    assert reads == [product_id, product_id]
    lookup.clear()
    found = lookup.lookup(SHOP, "subscription", product_id)
    lookup.read(SHOP, "subscription", product_id, found.versions + "0")
    lookup.read(SHOP, "subscription", product_id, found.versions)
    assert reads == [product_id] * 4
    # Per thread: another thread's render reads for itself.
    lookup.clear()
    found = lookup.lookup(SHOP, "subscription", product_id)
    other = threading.Thread(target=lambda: lookup.read(SHOP, "subscription", product_id, found.versions))
    other.start()
    other.join()
    assert reads == [product_id] * 5
    assert lookup.read(SHOP, "subscription", product_id, found.versions) == expected
    assert reads == [product_id] * 5


def test_products_of_one_shop_share_its_part(store: Store) -> None:
    lookup = WidgetLookup(store, 60, 60)
    for number in range(200):
        lookup.lookup(SHOP, "subscription", FIRST_ID + number)
    stats = lookup.stats()
    assert (stats["entries"], stats["shells"]) == (200, 1)
    kept = [lookup.lookup(SHOP, "subscription", FIRST_ID + number) for number in range(3)]
    assert kept[0].shop is kept[1].shop is kept[2].shop
    assert stats["bytes"] < 200 * 400, "a product's entry is a few hundred bytes, not its shop"


def test_the_lookup_never_exceeds_its_byte_bound(store: Store) -> None:
    budget = 100_000
    lookup = WidgetLookup(store, 300, 60, max_bytes=budget)
    for number in range(2000):
        lookup.lookup(SHOP, "subscription", FIRST_ID + number)
        assert lookup.stats()["bytes"] <= budget
    stats = lookup.stats()
    assert stats["evictions"] == 2000 - stats["entries"]
    assert stats["entries"] > budget // 400
    # The least recently used go first: the last products are kept, the first are not.
    before = lookup.stats()["evictions"]
    lookup.lookup(SHOP, "subscription", FIRST_ID + 1999)
    assert lookup.stats()["evictions"] == before
    lookup.lookup(SHOP, "subscription", FIRST_ID)
    assert lookup.stats()["evictions"] == before + 1


def test_a_recent_lookup_outlives_older_ones(store: Store) -> None:
    lookup = WidgetLookup(store, 300, 60, max_bytes=30_000)
    lookup.lookup(SHOP, "subscription", FIRST_ID)
    for number in range(1, 400):
        lookup.lookup(SHOP, "subscription", FIRST_ID)  # kept recent
        lookup.lookup(SHOP, "subscription", FIRST_ID + number)
    evictions = lookup.stats()["evictions"]
    assert evictions > 0
    lookup.lookup(SHOP, "subscription", FIRST_ID)
    assert lookup.stats()["evictions"] == evictions, "answered from memory, nothing read or pushed out"


def test_counted_bytes_track_the_memory_really_kept(store: Store) -> None:
    lookup = WidgetLookup(store, 300, 60, max_bytes=1 << 30)
    lookup.lookup(SHOP, "subscription", FIRST_ID)  # the connection and its statements, before counting
    lookup.clear()

    def fill() -> None:
        for number in range(600):
            lookup.lookup(SHOP, "subscription", FIRST_ID + number)
        for number in range(0, 600, 3):
            try:
                lookup.lookup(SHOP, "bundle", FIRST_ID + 10_000 + number)
            except Missing:
                pass

    held = held_after(fill)
    counted = lookup.stats()["bytes"]
    assert 0.85 * held <= counted <= 1.25 * held, (counted, held)


def held_after(work: Callable[[], None]) -> int:
    """Bytes still allocated once ``work()`` is done, by calls it made (other threads' left out)."""
    gc.collect()
    tracemalloc.start(25)
    try:
        work()
        gc.collect()
        snapshot = tracemalloc.take_snapshot()
    finally:
        tracemalloc.stop()
    # Only allocations with this file on their stack: a thread left running by another test may
    # allocate meanwhile, and that is not what the lookup keeps.
    mine = snapshot.filter_traces([tracemalloc.Filter(True, __file__, all_frames=True)])
    return sum(stat.size for stat in mine.statistics("filename"))


def test_a_new_version_makes_a_new_shared_part_and_the_old_one_is_let_go(store: Store) -> None:
    lookup = WidgetLookup(store, 300, 60)
    lookup.lookup(SHOP, "subscription", FIRST_ID)
    one_shell = lookup.stats()["bytes"]
    fields = {key: value for key, value in demo_shops()[0].items() if key != "shop"}
    assert demo_shops()[0]["shop"] == SHOP
    store.put_shop(SHOP, dict(fields, name="Renamed for the lookup test"))
    try:
        lookup.lookup(SHOP, "subscription", FIRST_ID + 1)
        assert lookup.lookup(SHOP, "subscription", FIRST_ID + 1).shop["name"] == "Renamed for the lookup test"
        assert lookup.lookup(SHOP, "subscription", FIRST_ID).shop["name"] != "Renamed for the lookup test", (
            "an entry keeps the shop it was read with, consistent with its versions")
        assert lookup.stats()["bytes"] > 1.5 * one_shell, "the old part is alive and counted"
        lookup.invalidate_shop([SHOP])
        assert lookup.stats() == {"entries": 0, "shells": 0, "bytes": 0, "max_bytes": DEFAULT_MAX_BYTES,
                                  "evictions": 0}
    finally:
        store.put_shop(SHOP, fields)


def test_unknown_products_are_remembered_and_raised_afresh(store: Store) -> None:
    lookup = WidgetLookup(store, 300, 60)
    raised = []
    for _ in range(3):
        with pytest.raises(Missing) as caught:
            lookup.lookup(SHOP, "subscription", 1)
        raised.append(caught.value)
    assert [error.what for error in raised] == ["product"] * 3
    assert len({id(error) for error in raised}) == 3, "a kept exception would collect every traceback"
    assert lookup.stats()["entries"] == 1
    with pytest.raises(Missing) as caught:
        lookup.lookup("no-such-shop.myshopify.com", "subscription", None)
    assert caught.value.what == "shop"


def test_clear_and_invalidation_give_every_byte_back(store: Store) -> None:
    lookup = WidgetLookup(store, 300, 60)
    for number in range(50):
        lookup.lookup(SHOP, "subscription", FIRST_ID + number)
        lookup.lookup(SHOP, "bundle", FIRST_ID + number)
    lookup.lookup("kaffee-haus.myshopify.com", "loyalty", None)
    assert lookup.stats()["shells"] == 3
    lookup.invalidate_shop([SHOP])
    stats = lookup.stats()
    assert (stats["entries"], stats["shells"]) == (1, 1)
    lookup.clear()
    assert (lookup.stats()["entries"], lookup.stats()["bytes"]) == (0, 0)
