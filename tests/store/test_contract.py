"""The Store contract: every test here runs unchanged on SQLite and on MySQL."""

from __future__ import annotations

import datetime
import gc
import json
import re
import threading
import time
from pathlib import Path
from typing import Any

import pytest

from storefront.store import (
    WIDGET_KINDS,
    Conflict,
    NotFound,
    PublishedVersion,
    SQLStore,
    StoreError,
    StoreUnavailable,
)
from storefront.store.sql import MAX_CONNECTIONS_PER_THREAD, load_migrations
from storefront.widget_settings import default_settings
from tests.store.concurrency import run_threads

PRODUCT_FIXTURES = Path(__file__).parent.parent / "fixtures" / "products"
TIMESTAMP = re.compile(r"^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\dZ$")

SHOP = "demo-coffee.myshopify.com"
OTHER_SHOP = "kaffee-haus.myshopify.com"
SHOP_FIELDS = {
    "name": "Demo Coffee Co.",
    "currency": "USD",
    "money_format": "${{amount}}",
    "default_locale": "en",
    "locales": ["en", "fr"],
}
JAPANESE_SHOP_FIELDS = {
    "name": "酒蔵 🍶 さかぐら",
    "currency": "JPY",
    "money_format": "¥{{amount_no_decimals}}",
    "default_locale": "ja",
    "locales": ["ja", "en"],
}


def load_product(name: str) -> dict[str, Any]:
    return json.loads((PRODUCT_FIXTURES / name).read_text(encoding="utf-8"))


def compact(value: Any) -> str:
    return json.dumps(value, ensure_ascii=False, separators=(",", ":"))


def assert_recent(timestamp: str | None) -> None:
    assert timestamp is not None and TIMESTAMP.match(timestamp), timestamp
    moment = datetime.datetime.strptime(timestamp, "%Y-%m-%dT%H:%M:%SZ").replace(tzinfo=datetime.UTC)
    assert abs((datetime.datetime.now(datetime.UTC) - moment).total_seconds()) < 60


def settings(kind: str = "subscription", **changes: Any) -> dict[str, Any]:
    value = default_settings(kind)
    value.update(changes)
    return value


@pytest.fixture
def shop(store: SQLStore) -> str:
    store.put_shop(SHOP, SHOP_FIELDS)
    return SHOP


# -- schema ----------------------------------------------------------------------------------


def test_migrate_applies_every_file_once_and_twice_leaves_the_same_schema(
    blank_store: SQLStore, store_backend: Any
) -> None:
    expected = [name for name, _ in load_migrations(blank_store.dialect)]
    assert expected and expected == sorted(expected)

    assert blank_store.migrate() == expected
    first = blank_store.schema_description()
    recorded = store_backend.query("SELECT name, applied_at FROM schema_migrations ORDER BY name")

    assert blank_store.migrate() == []
    assert blank_store.schema_description() == first
    assert store_backend.query("SELECT name, applied_at FROM schema_migrations ORDER BY name") == recorded
    assert [name for name, _ in recorded] == expected
    for _, applied_at in recorded:
        assert_recent(applied_at)


def test_schema_has_the_logical_tables_keys_and_cascades(store: SQLStore) -> None:
    description = store.schema_description()
    tables = {line.split()[1] for line in description if line.startswith("table ")}
    assert tables == {"schema_migrations", "shops", "products", "widgets", "widget_versions", "webhooks"}
    for line in (
        "primary key shops (shop)",
        "primary key products (shop, product_id)",
        "primary key widgets (shop, kind)",
        "primary key widget_versions (shop, kind, version)",
        "primary key webhooks (webhook_id)",
        "primary key schema_migrations (name)",
        "column products.product_id bigint not null",
        "column widgets.draft longtext null",
        "column widgets.published_version int null",
        "foreign key products (shop) references shops (shop) on delete cascade",
        "foreign key widgets (shop) references shops (shop) on delete cascade",
        "foreign key widget_versions (shop, kind) references widgets (shop, kind) on delete cascade",
    ):
        assert line in description
    assert description == sorted(description)


def test_concurrent_migrations_apply_each_file_exactly_once(
    blank_store: SQLStore, store_backend: Any
) -> None:
    expected = [name for name, _ in load_migrations(blank_store.dialect)]

    def migrate(_: int) -> list[str]:
        # A store per thread, as separate processes would have.
        own = store_backend.new_store()
        try:
            return own.migrate()
        finally:
            own.close()

    results = run_threads(4, migrate)
    applied = [name for result in results for name in result]
    assert sorted(applied) == expected
    recorded = store_backend.query("SELECT name FROM schema_migrations ORDER BY name")
    assert [row[0] for row in recorded] == expected
    assert blank_store.migrate() == []


def test_ping_answers(store: SQLStore) -> None:
    assert store.ping() is None


def test_an_unreachable_database_raises_store_unavailable_quickly(store_backend: Any) -> None:
    store = store_backend.unreachable_store()  # constructing it connects to nothing
    calls = [
        store.ping,
        store.migrate,
        lambda: store.get_shop(SHOP),
        lambda: store.put_shop(SHOP, SHOP_FIELDS),
        lambda: store.list_versions(SHOP, "subscription"),
        lambda: store.record_webhook("webhook-1"),
    ]
    started = time.monotonic()
    for call in calls:
        began = time.monotonic()
        with pytest.raises(StoreUnavailable) as raised:
            call()
        assert type(raised.value) is StoreUnavailable
        assert time.monotonic() - began < 2.5
    assert time.monotonic() - started < 5
    store.close()


def test_close_ends_the_connection_and_the_next_call_opens_another(store: SQLStore) -> None:
    store.close()  # nothing open yet: no error
    store.put_shop(SHOP, SHOP_FIELDS)
    store.close()
    store.close()
    assert store.get_shop(SHOP) is not None


def test_a_threads_connection_is_kept_across_requests_and_replaced_when_unfit(store: SQLStore) -> None:
    store.put_shop(SHOP, SHOP_FIELDS)
    kept = store._thread_connection()
    store.release()  # the end of a request
    assert store.get_shop(SHOP) is not None
    assert store._thread_connection() is kept
    store.close()
    assert not kept.finalizer.alive  # closed, not just forgotten
    assert store._thread_connection() is not kept
    store.release()

    # A transaction left open (which _run never does) would carry its snapshot into the next request.
    left_open = store._thread_connection()
    store._begin(left_open.connection, False)
    store.release()
    assert not left_open.finalizer.alive
    assert store.get_shop(SHOP) is not None


def test_connections_are_replaced_after_their_age_or_idle_limit(store_backend: Any, store: SQLStore) -> None:
    store.put_shop(SHOP, SHOP_FIELDS)
    aged = store_backend.new_store()
    idle = store_backend.new_store()
    try:
        aged.max_age_s = idle.max_idle_s = 0.05
        for limited in (aged, idle):
            limited.ping()
            first = limited._thread_connection()
            limited.ping()
            time.sleep(0.1)
            limited.ping()
            assert limited._thread_connection() is not first
            assert not first.finalizer.alive
        # Used more often than it may idle, a connection is kept until its age runs out.
        idle.max_idle_s = 0.2
        kept = idle._thread_connection()
        for _ in range(4):
            time.sleep(0.05)
            idle.ping()
        assert idle._thread_connection() is kept
    finally:
        aged.close()
        idle.close()


def test_each_thread_has_its_own_connection_closed_when_the_thread_ends(store: SQLStore) -> None:
    store.put_shop(SHOP, SHOP_FIELDS)
    mine = store._thread_connection().finalizer
    held: list[Any] = []

    def read(_: int) -> None:
        assert store.get_shop(SHOP) is not None
        held.append(store._thread_connection().finalizer)  # not the record: that would keep it

    thread = threading.Thread(target=read, args=(0,))
    thread.start()
    thread.join()
    (theirs,) = held
    assert theirs is not mine
    deadline = time.monotonic() + 5
    while theirs.alive:  # the thread's locals go with it, and its connection is closed
        assert time.monotonic() < deadline, "a finished thread's connection stayed open"
        gc.collect()
        time.sleep(0.01)
    assert mine.alive


def test_a_thread_keeps_a_bounded_number_of_connections_across_stores(store_backend: Any) -> None:
    # Stores dropped without close() (apps built by tests or scripts) cannot pile up connections.
    stores = [store_backend.new_store() for _ in range(MAX_CONNECTIONS_PER_THREAD + 3)]
    try:
        stores[0].migrate()
        for each in stores:
            each.ping()
        opened = [each._thread_connection().finalizer for each in stores[-MAX_CONNECTIONS_PER_THREAD:]]
        assert all(finalizer.alive for finalizer in opened)
        evicted = [each._local.held for each in stores[:3]]
        assert not any(held.finalizer.alive for held in evicted)  # the least recently used ones
        stores[0].ping()  # and their stores simply connect again
        assert stores[0]._thread_connection().finalizer.alive
    finally:
        for each in stores:
            each.close()


def test_close_all_closes_every_threads_connection(store: SQLStore) -> None:
    store.put_shop(SHOP, SHOP_FIELDS)
    opened = threading.Barrier(4)
    closed = threading.Event()
    held: list[Any] = []

    def work(_: int) -> None:
        store.get_shop(SHOP)
        held.append(store._thread_connection())
        opened.wait(timeout=10)
        closed.wait(timeout=10)
        assert store.get_shop(SHOP) is not None  # a fresh connection, transparently
        held.append(store._thread_connection())

    threads = [threading.Thread(target=work, args=(i,)) for i in range(3)]
    for thread in threads:
        thread.start()
    opened.wait(timeout=10)
    held.append(store._thread_connection())
    store.close_all()
    assert not any(connection.finalizer.alive for connection in held)
    closed.set()
    for thread in threads:
        thread.join(timeout=10)
    assert len(held) == 7 and all(connection.finalizer.alive for connection in held[4:])
    assert store.get_shop(SHOP) is not None


def test_an_idle_kept_connection_sees_what_others_committed_meanwhile(
    store: SQLStore, store_backend: Any
) -> None:
    # A kept connection must not sit in a transaction between calls (on MySQL, REPEATABLE READ
    # would keep answering from the snapshot of its first read).
    other = store_backend.new_store()
    try:
        other.put_shop(SHOP, SHOP_FIELDS)
        other.put_product(SHOP, 1, {"id": 1, "title": "First"})
        kept = store._thread_connection()
        assert store.get_widget_inputs(SHOP, "subscription", 1).product.document["title"] == "First"
        store.release()
        other.put_product(SHOP, 1, {"id": 1, "title": "Second"})
        other.put_draft(SHOP, "subscription", settings())
        other.publish(SHOP, "subscription")
        inputs = store.get_widget_inputs(SHOP, "subscription", 1)
        assert inputs.product.document["title"] == "Second" and inputs.product.version == 2
        assert inputs.published is not None and inputs.published.version == 1
        assert store.get_shop(SHOP) is not None
        other.delete_shop(SHOP)
        assert store.get_shop(SHOP) is None
        assert store._thread_connection() is kept
    finally:
        other.close()


def test_reads_see_what_other_connections_committed_since(store: SQLStore, store_backend: Any) -> None:
    # A read must end its transaction: on MySQL a lingering one would keep an old snapshot.
    other = store_backend.new_store()
    try:
        assert store.get_shop(SHOP) is None
        other.put_shop(SHOP, SHOP_FIELDS)
        assert store.get_shop(SHOP) is not None
        other.put_shop(SHOP, {**SHOP_FIELDS, "name": "Renamed"})
        shop = store.get_shop(SHOP)
        assert shop is not None and shop.name == "Renamed"
    finally:
        other.close()


# -- shops -----------------------------------------------------------------------------------


def test_get_shop_of_an_unknown_shop_is_none(store: SQLStore) -> None:
    assert store.get_shop("nobody.myshopify.com") is None


def test_put_shop_creates_at_version_one(store: SQLStore) -> None:
    shop, created = store.put_shop(SHOP, SHOP_FIELDS)
    assert created is True
    assert (shop.shop, shop.name, shop.currency, shop.money_format, shop.default_locale, shop.locales) == (
        SHOP, "Demo Coffee Co.", "USD", "${{amount}}", "en", ("en", "fr")
    )
    assert shop.version == 1
    assert_recent(shop.created_at)
    assert shop.updated_at == shop.created_at
    assert store.get_shop(SHOP) == shop


def test_put_shop_again_replaces_the_fields_bumps_the_version_and_keeps_created_at(store: SQLStore) -> None:
    first, _ = store.put_shop(SHOP, SHOP_FIELDS)
    changed = {**SHOP_FIELDS, "name": "Demo Coffee", "currency": "EUR", "locales": ["de"]}
    second, created = store.put_shop(SHOP, changed)
    third, created_again = store.put_shop(SHOP, changed)
    assert (created, created_again) == (False, False)
    assert (second.version, third.version) == (2, 3)
    assert (second.name, second.currency, second.locales) == ("Demo Coffee", "EUR", ("de",))
    assert third.created_at == first.created_at
    assert_recent(third.updated_at)
    assert store.get_shop(SHOP) == third


def test_shop_fields_round_trip_japanese_and_emoji(store: SQLStore, store_backend: Any) -> None:
    shop, _ = store.put_shop("sakagura.myshopify.com", JAPANESE_SHOP_FIELDS)
    assert shop.name == "酒蔵 🍶 さかぐら"
    fetched = store.get_shop("sakagura.myshopify.com")
    assert fetched is not None
    assert (fetched.name, fetched.money_format) == ("酒蔵 🍶 さかぐら", "¥{{amount_no_decimals}}")
    (locales,) = store_backend.query("SELECT locales FROM shops WHERE shop = ?", "sakagura.myshopify.com")[0]
    assert locales == '["ja","en"]'


def test_put_shop_ignores_other_keys_and_refuses_missing_or_oversized_fields(store: SQLStore) -> None:
    shop, _ = store.put_shop(SHOP, {**SHOP_FIELDS, "shop": SHOP, "version": 99})
    assert shop.version == 1
    for bad in (
        {key: value for key, value in SHOP_FIELDS.items() if key != "currency"},
        {**SHOP_FIELDS, "name": "x" * 256},
        {**SHOP_FIELDS, "locales": "en"},
    ):
        with pytest.raises(ValueError):
            store.put_shop(OTHER_SHOP, bad)
    with pytest.raises(ValueError):
        store.put_shop("s" * 256, SHOP_FIELDS)
    assert store.get_shop(OTHER_SHOP) is None


def test_delete_shop(store: SQLStore, shop: str) -> None:
    store.put_shop(OTHER_SHOP, SHOP_FIELDS)
    assert store.delete_shop(shop) is True
    assert store.get_shop(shop) is None
    assert store.delete_shop(shop) is False
    assert store.get_shop(OTHER_SHOP) is not None


def test_delete_shop_cascades_to_products_widgets_and_versions(
    store: SQLStore, shop: str, store_backend: Any
) -> None:
    store.put_shop(OTHER_SHOP, SHOP_FIELDS)
    for owner in (shop, OTHER_SHOP):
        store.put_product(owner, 1, load_product("coffee-three-plans.json"))
        store.put_draft(owner, "subscription", settings())
        store.publish(owner, "subscription")
        store.put_draft(owner, "loyalty", settings("loyalty"))

    assert store.delete_shop(shop) is True

    for table in ("products", "widgets", "widget_versions"):
        rows = store_backend.query(f"SELECT shop FROM {table} ORDER BY shop")
        assert rows and {row[0] for row in rows} == {OTHER_SHOP}, table
    store.put_shop(shop, SHOP_FIELDS)  # a shop re-created under the same name starts empty
    assert store.list_product_ids(shop) == []
    assert store.get_widget(shop, "subscription").published is None
    assert store.get_widget(shop, "loyalty").draft is None
    assert store.list_versions(shop, "subscription") == []
    assert store.list_product_ids(OTHER_SHOP) == [1]
    assert [v.version for v in store.list_versions(OTHER_SHOP, "subscription")] == [1]


def test_concurrent_creates_of_one_shop_create_it_once(store: SQLStore) -> None:
    results = run_threads(8, lambda i: store.put_shop(SHOP, {**SHOP_FIELDS, "name": f"Writer {i}"}), store)
    assert sorted(created for _, created in results) == [False] * 7 + [True]
    assert sorted(shop.version for shop, _ in results) == list(range(1, 9))
    final = store.get_shop(SHOP)
    assert final is not None and final.version == 8
    assert final.name == next(shop.name for shop, _ in results if shop.version == 8)


# -- products --------------------------------------------------------------------------------


def test_put_product_without_the_shop_is_not_found_and_stores_nothing(store: SQLStore) -> None:
    with pytest.raises(NotFound):
        store.put_product(SHOP, 7001000000007, load_product("sake-jpy.json"))
    store.put_shop(SHOP, SHOP_FIELDS)
    assert store.get_product(SHOP, 7001000000007) is None
    assert store.list_product_ids(SHOP) == []


def test_put_product_creates_then_replaces_and_bumps_the_version(store: SQLStore, shop: str) -> None:
    document = load_product("coffee-three-plans.json")
    product, created = store.put_product(shop, document["id"], document)
    assert created is True and product.version == 1
    assert (product.shop, product.product_id, product.document) == (shop, document["id"], document)
    assert_recent(product.updated_at)
    assert store.get_product(shop, document["id"]) == product

    changed = {**document, "title": "Colombia, whole bean"}
    again, created = store.put_product(shop, document["id"], changed)
    assert created is False and again.version == 2
    assert store.get_product(shop, document["id"]) == again
    assert again.document["title"] == "Colombia, whole bean"


def test_product_documents_round_trip_and_are_stored_as_compact_unescaped_json(
    store: SQLStore, store_backend: Any
) -> None:
    store.put_shop("sakagura.myshopify.com", JAPANESE_SHOP_FIELDS)
    document = load_product("sake-jpy.json")
    document["title"] = "純米酒 🍶"
    document["bundle_note"] = {"nested": ["é", "日本", 1.5, None, True]}
    store.put_product("sakagura.myshopify.com", document["id"], document)

    product = store.get_product("sakagura.myshopify.com", document["id"])
    assert product is not None and product.document == document
    stored, handle, title = store_backend.query(
        "SELECT document, handle, title FROM products WHERE shop = ? AND product_id = ?",
        "sakagura.myshopify.com", document["id"],
    )[0]
    assert stored == compact(document)
    assert (handle, title) == (document["handle"], "純米酒 🍶")


def test_get_product_is_none_when_absent_and_products_belong_to_their_shop(
    store: SQLStore, shop: str
) -> None:
    store.put_shop(OTHER_SHOP, SHOP_FIELDS)
    store.put_product(shop, 5, {"id": 5, "title": "Mug"})
    assert store.get_product(shop, 6) is None
    assert store.get_product(OTHER_SHOP, 5) is None
    assert store.get_product("nobody.myshopify.com", 5) is None


def test_delete_product(store: SQLStore, shop: str) -> None:
    store.put_product(shop, 5, {"id": 5})
    store.put_product(shop, 6, {"id": 6})
    assert store.delete_product(shop, 5) is True
    assert store.delete_product(shop, 5) is False
    assert store.get_product(shop, 5) is None
    assert store.list_product_ids(shop) == [6]


def test_list_product_ids_is_numeric_order_per_shop_with_64_bit_ids(store: SQLStore, shop: str) -> None:
    store.put_shop(OTHER_SHOP, SHOP_FIELDS)
    big = 9007199254740993  # above 2**53: must not pass through a float anywhere
    for product_id in (100, 9, big, 10):
        store.put_product(shop, product_id, {"id": product_id})
    store.put_product(OTHER_SHOP, 11, {"id": 11})
    assert store.list_product_ids(shop) == [9, 10, 100, big]
    assert store.list_product_ids(OTHER_SHOP) == [11]
    assert store.list_product_ids("nobody.myshopify.com") == []
    product = store.get_product(shop, big)
    assert product is not None and product.product_id == big and product.document == {"id": big}


def test_product_arguments_are_checked(store: SQLStore, shop: str) -> None:
    for product_id in (0, -1, True, "5", 1 << 63):
        with pytest.raises(ValueError):
            store.put_product(shop, product_id, {"id": 1})
    for product_id in (0, -1, 1 << 63, 1 << 70):  # ids no row can have: absent, not an error
        assert store.get_product(shop, product_id) is None
        assert store.delete_product(shop, product_id) is False
    for call in (lambda: store.get_product(shop, "5"), lambda: store.delete_product(shop, True)):
        with pytest.raises(ValueError):
            call()  # type: ignore[arg-type]
    with pytest.raises(ValueError):
        store.put_product(shop, 1, ["not", "an", "object"])  # type: ignore[arg-type]
    with pytest.raises(ValueError):
        store.put_product(shop, 1, {"price": float("nan")})
    assert store.list_product_ids(shop) == []


# -- widgets ---------------------------------------------------------------------------------


def test_get_widget_without_draft_or_versions_is_empty(store: SQLStore, shop: str) -> None:
    for kind in WIDGET_KINDS:
        state = store.get_widget(shop, kind)
        assert (state.shop, state.kind, state.draft, state.draft_updated_at, state.published) == (
            shop, kind, None, None, None
        )


def test_get_widget_inputs_reads_the_shop_the_product_and_the_published_version(
    store: SQLStore, shop: str
) -> None:
    document = load_product("coffee-three-plans.json")
    product, _ = store.put_product(shop, document["id"], document)
    store.put_draft(shop, "subscription", settings(template="checkbox"))
    store.publish(shop, "subscription")
    store.put_draft(shop, "subscription", settings(template="button_group"))  # not published

    inputs = store.get_widget_inputs(shop, "subscription", document["id"])
    assert inputs.shop == store.get_shop(shop)
    assert inputs.product == product
    assert inputs.published == store.get_widget(shop, "subscription").published
    assert inputs.published is not None and inputs.published.settings["template"] == "checkbox"

    without_product = store.get_widget_inputs(shop, "subscription", None)
    assert (without_product.shop, without_product.product, without_product.published) == (
        inputs.shop, None, inputs.published)
    unpublished = store.get_widget_inputs(shop, "loyalty", document["id"])
    assert (unpublished.product, unpublished.published) == (product, None)


def test_get_widget_inputs_and_versions_carry_every_value_exactly(store: SQLStore) -> None:
    # MySQL sends their scalar columns packed in JSON: quotes, backslashes, emoji and 64-bit ids
    # must come back as the one-table reads give them.
    shop = "sakagura.myshopify.com"
    store.put_shop(shop, {**JAPANESE_SHOP_FIELDS, "name": 'Sake "蔵" \\ 🍶\n\t'})
    biggest = (1 << 63) - 1
    store.put_product(shop, biggest, {"id": biggest, "title": 'Junmai "純米" \\ 🍶', "n": [1.5, None]})
    store.put_draft(shop, "subscription", settings(translations={"ja": {"onetime": "1回 \"だけ\""}}))
    store.publish(shop, "subscription")
    inputs = store.get_widget_inputs(shop, "subscription", biggest)
    assert inputs.shop == store.get_shop(shop)
    assert inputs.product == store.get_product(shop, biggest)
    assert inputs.published == store.get_widget(shop, "subscription").published
    versions = store.get_widget_versions(shop, "subscription", biggest)
    assert versions[:3] == (inputs.shop, 1, 1)
    # The documents come along undecoded, as stored, for a render to decode.
    product_text, settings_text = versions.documents
    assert json.loads(product_text) == inputs.product.document
    assert json.loads(settings_text) == inputs.published.settings
    assert store.get_widget_versions(shop, "loyalty", None) == (inputs.shop, None, None, (None, None))
    assert store.get_widget_inputs(shop, "loyalty", None) == (inputs.shop, None, None)


def test_get_widget_inputs_of_what_does_not_exist(store: SQLStore, shop: str) -> None:
    store.put_shop(OTHER_SHOP, SHOP_FIELDS)
    store.put_product(OTHER_SHOP, 5, {"id": 5})
    assert store.get_widget_inputs("nobody.myshopify.com", "subscription", 5) == (None, None, None)
    for product_id in (5, 6, 0, -1, 1 << 63, 1 << 70):  # another shop's, absent, or no row can have it
        inputs = store.get_widget_inputs(shop, "bundle", product_id)
        assert inputs.shop is not None and inputs.product is None and inputs.published is None
    with pytest.raises(ValueError):
        store.get_widget_inputs(shop, "nonsense", 5)


def test_get_widget_versions_agrees_with_the_inputs_without_documents(store: SQLStore, shop: str) -> None:
    document = load_product("coffee-three-plans.json")
    store.put_product(shop, document["id"], document)
    store.put_product(shop, document["id"], document)  # version 2
    store.put_draft(shop, "subscription", settings(template="checkbox"))
    store.publish(shop, "subscription")
    for kind, product_id in (("subscription", document["id"]), ("subscription", None),
                             ("loyalty", document["id"]), ("bundle", 5), ("bundle", 1 << 70)):
        inputs = store.get_widget_inputs(shop, kind, product_id)
        versions = store.get_widget_versions(shop, kind, product_id)
        assert versions.shop == inputs.shop
        assert versions.product_version == (inputs.product.version if inputs.product else None)
        assert versions.published_version == (inputs.published.version if inputs.published else None)
        product_text, settings_text = versions.documents
        assert (json.loads(product_text) if product_text else None) == (
            inputs.product.document if inputs.product else None)
        assert (json.loads(settings_text) if settings_text else None) == (
            inputs.published.settings if inputs.published else None)
    assert store.get_widget_versions(shop, "subscription", document["id"])[1:3] == (2, 1)
    assert store.get_widget_versions("nobody.myshopify.com", "subscription", 5) == (None, None, None, None)
    with pytest.raises(ValueError):
        store.get_widget_versions(shop, "nonsense", 5)


def test_put_draft_without_the_shop_is_not_found(store: SQLStore) -> None:
    with pytest.raises(NotFound):
        store.put_draft(SHOP, "subscription", settings())
    store.put_shop(SHOP, SHOP_FIELDS)
    assert store.get_widget(SHOP, "subscription").draft is None


def test_put_draft_stores_and_replaces_the_draft(store: SQLStore, shop: str) -> None:
    first = store.put_draft(shop, "subscription", settings(template="checkbox"))
    assert first.draft == settings(template="checkbox")
    assert first.published is None
    assert_recent(first.draft_updated_at)
    assert store.get_widget(shop, "subscription") == first

    second = store.put_draft(shop, "subscription", settings(template="button_group"))
    assert second.draft == settings(template="button_group")
    assert store.get_widget(shop, "subscription") == second


def test_unicode_settings_round_trip(store: SQLStore, shop: str, store_backend: Any) -> None:
    draft = settings(
        translations={"ja": {"onetime": "1回のみ購入", "subscribe": "定期購入で{discount}お得 🎉"}}
    )
    store.put_draft(shop, "subscription", draft)
    store.publish(shop, "subscription")
    state = store.get_widget(shop, "subscription")
    assert state.draft == draft
    assert state.published is not None and state.published.settings == draft
    assert store.list_versions(shop, "subscription")[0].settings == draft
    rows = store_backend.query("SELECT draft FROM widgets WHERE shop = ? AND kind = ?", shop, "subscription")
    assert rows == [(compact(draft),)]
    rows = store_backend.query("SELECT settings FROM widget_versions WHERE shop = ?", shop)
    assert rows == [(compact(draft),)]


def test_publish_without_a_draft_is_a_conflict_and_without_the_shop_not_found(
    store: SQLStore, shop: str
) -> None:
    with pytest.raises(Conflict):
        store.publish(shop, "subscription")
    with pytest.raises(NotFound):
        store.publish("nobody.myshopify.com", "subscription")
    assert store.list_versions(shop, "subscription") == []
    assert store.get_widget(shop, "subscription").published is None


def test_publish_appends_versions_and_makes_the_newest_current(store: SQLStore, shop: str) -> None:
    store.put_draft(shop, "subscription", settings(template="checkbox"))
    assert store.publish(shop, "subscription") == 1
    store.put_draft(shop, "subscription", settings(template="button_group"))
    assert store.publish(shop, "subscription") == 2

    state = store.get_widget(shop, "subscription")
    assert state.published is not None
    assert (state.published.version, state.published.settings) == (2, settings(template="button_group"))
    assert_recent(state.published.published_at)
    assert state.draft == settings(template="button_group")  # publishing keeps the draft

    versions = store.list_versions(shop, "subscription")
    assert [v.version for v in versions] == [1, 2]
    assert [v.settings["template"] for v in versions] == ["checkbox", "button_group"]
    assert isinstance(versions[0], PublishedVersion)
    assert versions[-1] == state.published


def test_a_published_version_does_not_follow_later_drafts(store: SQLStore, shop: str) -> None:
    store.put_draft(shop, "subscription", settings(template="checkbox"))
    store.publish(shop, "subscription")
    store.put_draft(shop, "subscription", settings(template="button_group"))
    state = store.get_widget(shop, "subscription")
    assert state.published is not None and state.published.settings["template"] == "checkbox"
    assert state.draft is not None and state.draft["template"] == "button_group"


def test_widget_kinds_and_shops_are_independent(store: SQLStore, shop: str) -> None:
    store.put_shop(OTHER_SHOP, SHOP_FIELDS)
    store.put_draft(shop, "subscription", settings())
    store.put_draft(shop, "bundle", settings("bundle"))
    store.put_draft(OTHER_SHOP, "subscription", settings())
    assert [store.publish(shop, "subscription") for _ in range(3)] == [1, 2, 3]
    assert store.publish(shop, "bundle") == 1
    assert store.publish(OTHER_SHOP, "subscription") == 1
    assert store.get_widget(shop, "loyalty").draft is None
    assert [v.version for v in store.list_versions(shop, "bundle")] == [1]


def test_rollback_republishes_an_old_version_as_the_next_one(store: SQLStore, shop: str) -> None:
    for template in ("checkbox", "button_group", "radio_group"):
        store.put_draft(shop, "subscription", settings(template=template))
        store.publish(shop, "subscription")

    assert store.rollback(shop, "subscription", 1) == 4

    state = store.get_widget(shop, "subscription")
    assert state.published is not None
    assert (state.published.version, state.published.settings["template"]) == (4, "checkbox")
    assert state.draft is not None and state.draft["template"] == "radio_group"  # the draft is untouched
    versions = store.list_versions(shop, "subscription")
    assert [(v.version, v.settings["template"]) for v in versions] == [
        (1, "checkbox"), (2, "button_group"), (3, "radio_group"), (4, "checkbox")
    ]
    assert store.rollback(shop, "subscription", 4) == 5  # rolling back to a rollback is fine too


def test_rollback_to_a_missing_version_is_not_found_and_changes_nothing(store: SQLStore, shop: str) -> None:
    with pytest.raises(NotFound):
        store.rollback(shop, "subscription", 1)  # never published
    store.put_draft(shop, "subscription", settings())
    store.publish(shop, "subscription")
    before = store.get_widget(shop, "subscription")
    for version in (0, 2, 99, -1):
        with pytest.raises(NotFound):
            store.rollback(shop, "subscription", version)
    with pytest.raises(NotFound):
        store.rollback(shop, "bundle", 1)
    with pytest.raises(NotFound):
        store.rollback("nobody.myshopify.com", "subscription", 1)
    assert store.get_widget(shop, "subscription") == before
    assert [v.version for v in store.list_versions(shop, "subscription")] == [1]


def test_a_refused_change_releases_its_locks(store: SQLStore, shop: str) -> None:
    # rollback() locks the widget row before it finds the version missing: the lock must go
    # with the rolled-back transaction, or the next writer would wait and time out.
    store.put_draft(shop, "subscription", settings())
    store.publish(shop, "subscription")
    with pytest.raises(NotFound):
        store.rollback(shop, "subscription", 42)
    started = time.monotonic()
    run_threads(1, lambda _: store.put_draft(shop, "subscription", settings(template="checkbox")), store)
    run_threads(1, lambda _: store.publish(shop, "subscription"), store)
    assert time.monotonic() - started < 1.5
    assert [v.version for v in store.list_versions(shop, "subscription")] == [1, 2]


def test_concurrent_publishes_number_versions_without_gaps_or_duplicates(store: SQLStore, shop: str) -> None:
    threads, publishes = 8, 5
    store.put_draft(shop, "subscription", settings(template="checkbox"))
    drafts = [settings(template="checkbox")]

    def publish_several(index: int) -> list[int]:
        numbers = []
        for round_ in range(publishes):
            draft = settings(translations={"en": {"onetime": f"thread {index} round {round_}"}})
            store.put_draft(shop, "subscription", draft)
            numbers.append(store.publish(shop, "subscription"))
        return numbers

    drafts += [
        settings(translations={"en": {"onetime": f"thread {i} round {r}"}})
        for i in range(threads) for r in range(publishes)
    ]
    results = run_threads(threads, publish_several, store)

    total = threads * publishes
    numbers = [number for result in results for number in result]
    assert sorted(numbers) == list(range(1, total + 1))
    for result in results:
        assert result == sorted(result)  # each thread sees its own publishes in order
    versions = store.list_versions(shop, "subscription")
    assert [v.version for v in versions] == list(range(1, total + 1))
    assert all(v.settings in drafts for v in versions)
    state = store.get_widget(shop, "subscription")
    assert state.published is not None and state.published.version == total


def test_unknown_widget_kinds_are_refused(store: SQLStore, shop: str) -> None:
    for call in (
        lambda: store.get_widget(shop, "popup"),
        lambda: store.put_draft(shop, "popup", {}),
        lambda: store.publish(shop, "popup"),
        lambda: store.rollback(shop, "popup", 1),
        lambda: store.list_versions(shop, "popup"),
    ):
        with pytest.raises(ValueError):
            call()


# -- webhooks --------------------------------------------------------------------------------


def test_record_webhook_is_true_the_first_time_only(store: SQLStore) -> None:
    assert store.record_webhook("b7c8d9e0-0001") is True
    assert store.record_webhook("b7c8d9e0-0001") is False
    assert store.record_webhook("b7c8d9e0-0002") is True
    assert store.record_webhook("b7c8d9e0-0001") is False


def test_record_webhook_refuses_ids_it_could_not_store_on_every_engine(store: SQLStore) -> None:
    for webhook_id in ("", "w" * 256):
        with pytest.raises(ValueError):
            store.record_webhook(webhook_id)


def test_concurrent_record_webhook_reports_each_id_new_exactly_once(store: SQLStore) -> None:
    ids = [f"webhook-{n}" for n in range(6)]

    def record_all(index: int) -> list[tuple[str, bool]]:
        order = ids[index % len(ids):] + ids[:index % len(ids)]
        return [(webhook_id, store.record_webhook(webhook_id)) for webhook_id in order]

    results = run_threads(8, record_all, store)
    for webhook_id in ids:
        firsts = [new for result in results for seen, new in result if seen == webhook_id]
        assert sorted(firsts) == [False] * 7 + [True], webhook_id


# -- errors ----------------------------------------------------------------------------------


def test_store_errors_share_a_base(store: SQLStore, shop: str) -> None:
    with pytest.raises(StoreError):
        store.publish(shop, "loyalty")
    with pytest.raises(StoreError):
        store.put_product("nobody.myshopify.com", 1, {})
