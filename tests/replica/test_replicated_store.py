"""ReplicatedStore on two real MariaDB databases: where each call goes, pins, fallback, recovery."""

from __future__ import annotations

import contextlib
import logging
import socket
import threading
import time
from collections.abc import Iterator

import pytest

from storefront.store import MySQLStore, ReplicatedStore, StoreUnavailable
from tests.replica.conftest import Databases, new_backend
from tests.services import free_port

pytestmark = pytest.mark.mysql

SHOP = "replica-test.myshopify.com"
OTHER = "other-shop.myshopify.com"
FIELDS = {"name": "Primary Name", "currency": "USD", "money_format": "${{amount}}",
          "default_locale": "en", "locales": ["en"]}
PRODUCT_ID = 424242
DOCUMENT = {"id": PRODUCT_ID, "title": "Beans", "handle": "beans"}
LOYALTY = {"enabled": True, "points_per_unit": 1}
LOGGER = "storefront.store.replicated"


def closed_port_store(database: str = "nothing") -> MySQLStore:
    # Nothing listens on a fresh free port: every connect is refused at once.
    return MySQLStore(f"mysql://root@127.0.0.1:{free_port()}/{database}")


@pytest.fixture
def stores(databases: Databases) -> Iterator[tuple[MySQLStore, MySQLStore]]:
    primary, replica = databases.primary.new_store(), databases.replica.new_store()
    yield primary, replica
    primary.close()
    replica.close()


def replica_faults(caplog: pytest.LogCaptureFixture) -> list[str]:
    return [r.getMessage() for r in caplog.records if r.name == LOGGER and "unavailable" in r.getMessage()]


def wait_until_unpinned(store: ReplicatedStore, shop: str, limit_s: float) -> float:
    started = time.monotonic()
    while store.pinned(shop):
        assert time.monotonic() - started < limit_s, "the pin never ran out"
        time.sleep(0.01)
    return time.monotonic() - started


def test_reads_go_to_the_replica_and_every_write_to_the_primary(databases: Databases, stores) -> None:
    store = ReplicatedStore(*stores, pin_s=0)  # no pins: every read goes to the replica
    store.put_shop(SHOP, FIELDS)
    store.put_product(SHOP, PRODUCT_ID, DOCUMENT)
    store.put_draft(SHOP, "loyalty", LOYALTY)
    assert store.publish(SHOP, "loyalty") == 1
    assert store.record_webhook("webhook-1")

    # Nothing replicates: the replica still has none of it, and reads say so.
    assert databases.shop_names(SHOP) == ("Primary Name", None)
    assert databases.primary.query("SELECT webhook_id FROM webhooks") == [("webhook-1",)]
    assert databases.replica.query("SELECT webhook_id FROM webhooks") == []
    assert store.get_shop(SHOP) is None
    assert store.get_product(SHOP, PRODUCT_ID) is None
    assert store.list_product_ids(SHOP) == []
    assert store.get_widget(SHOP, "loyalty").published is None
    assert store.list_versions(SHOP, "loyalty") == []
    assert store.get_widget_inputs(SHOP, "loyalty", PRODUCT_ID) == (None, None, None)

    databases.replicate()
    databases.diverge(SHOP, "Replica Name", "R${{amount}}")
    shop = store.get_shop(SHOP)
    assert shop is not None and (shop.name, shop.money_format) == ("Replica Name", "R${{amount}}")
    assert store.get_product(SHOP, PRODUCT_ID).document == DOCUMENT  # type: ignore[union-attr]
    assert store.list_product_ids(SHOP) == [PRODUCT_ID]
    assert store.get_widget(SHOP, "loyalty").published.version == 1  # type: ignore[union-attr]
    assert [v.version for v in store.list_versions(SHOP, "loyalty")] == [1]
    inputs = store.get_widget_inputs(SHOP, "loyalty", PRODUCT_ID)
    assert inputs.shop.name == "Replica Name" and inputs.product.document == DOCUMENT  # type: ignore[union-attr]
    assert inputs.published.version == 1  # type: ignore[union-attr]

    assert store.primary is stores[0] and store.replica is stores[1]
    assert store.primary.get_shop(SHOP).name == "Primary Name"  # type: ignore[union-attr]

    assert store.rollback(SHOP, "loyalty", 1) == 2
    assert store.delete_product(SHOP, PRODUCT_ID)
    assert store.delete_shop(SHOP)
    assert databases.shop_names(SHOP) == (None, "Replica Name")
    assert not store.record_webhook("webhook-1")  # the primary remembers it


def test_a_write_pins_its_shop_to_the_primary_for_pin_s(databases: Databases, stores) -> None:
    primary, _ = stores
    primary.put_shop(SHOP, FIELDS)
    primary.put_shop(OTHER, FIELDS)
    databases.replicate()
    databases.diverge(SHOP, "Replica Name", "R${{amount}}")
    databases.diverge(OTHER, "Replica Other", "R${{amount}}")
    store = ReplicatedStore(*stores, pin_s=1)
    assert store.get_shop(SHOP).name == "Replica Name"  # type: ignore[union-attr]

    started = time.monotonic()
    store.put_shop(SHOP, {**FIELDS, "name": "Changed"})
    assert store.pinned(SHOP) and not store.pinned(OTHER)
    assert store.get_shop(SHOP).name == "Changed"  # type: ignore[union-attr]
    assert store.get_widget_inputs(SHOP, "loyalty", None).shop.name == "Changed"  # type: ignore[union-attr]
    assert store.get_shop(OTHER).name == "Replica Other"  # type: ignore[union-attr]

    wait_until_unpinned(store, SHOP, limit_s=3)
    assert time.monotonic() - started >= 1
    assert store.get_shop(SHOP).name == "Replica Name"  # type: ignore[union-attr]


def test_pin_primary_pins_one_shop_and_never_shortens_a_pin(databases: Databases, stores) -> None:
    primary, _ = stores
    primary.put_shop(SHOP, FIELDS)
    databases.replicate()
    databases.diverge(SHOP, "Replica Name", "R${{amount}}")
    store = ReplicatedStore(*stores, pin_s=30)

    store.pin_primary(SHOP, 0)  # zero seconds: pinning is off
    assert not store.pinned(SHOP) and store.pin_count() == 0
    store.pin_primary(SHOP, 1)
    store.pin_primary(SHOP, 0.05)
    assert store.get_shop(SHOP).name == "Primary Name"  # type: ignore[union-attr]
    assert not store.pinned(OTHER)
    time.sleep(0.1)
    assert store.pinned(SHOP)  # the shorter pin did not cut the longer one
    wait_until_unpinned(store, SHOP, limit_s=3)
    assert store.get_shop(SHOP).name == "Replica Name"  # type: ignore[union-attr]


def test_pins_are_bounded_and_overflow_pins_every_shop_for_a_while() -> None:
    store = ReplicatedStore(closed_port_store(), closed_port_store(), pin_s=10, max_pins=3)
    shops = [f"shop-{n}.myshopify.com" for n in range(5)]
    for shop in shops:
        store.pin_primary(shop, 1)
    assert store.pin_count() <= 3
    # Read-your-writes is kept by pinning everything rather than forgetting a pin.
    assert all(store.pinned(shop) for shop in shops)
    assert store.pinned("never-changed.myshopify.com")
    wait_until_unpinned(store, "never-changed.myshopify.com", limit_s=3)
    assert not any(store.pinned(shop) for shop in shops)

    # Expired pins are swept to make room before the pin-everything fallback is needed.
    store.pin_primary(shops[0], 0.05)
    store.pin_primary(shops[1], 0.05)
    time.sleep(0.1)
    store.pin_primary(shops[2], 5)
    store.pin_primary(shops[3], 5)
    assert store.pin_count() <= 3
    assert store.pinned(shops[2]) and store.pinned(shops[3])
    assert not store.pinned(shops[0]) and not store.pinned("never-changed.myshopify.com")


def test_pins_from_many_threads_at_once_stay_bounded_and_are_all_seen() -> None:
    store = ReplicatedStore(closed_port_store(), closed_port_store(), pin_s=10, max_pins=500)
    errors: list[BaseException] = []
    unseen: list[str] = []

    def worker(number: int) -> None:
        try:
            for n in range(200):
                shop = f"t{number}-{n}.myshopify.com"
                store.pin_primary(shop, 30)
                if not store.pinned(shop):
                    unseen.append(shop)
        except BaseException as error:  # reported by the assertion below
            errors.append(error)

    threads = [threading.Thread(target=worker, args=(number,)) for number in range(8)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(30)
    assert errors == [] and unseen == []
    assert store.pin_count() <= 500


def test_an_unreachable_replica_sends_reads_to_the_primary_and_is_logged_once(
    databases: Databases, stores, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.WARNING, logger=LOGGER)
    primary, _ = stores
    primary.put_shop(SHOP, FIELDS)
    replica = closed_port_store(databases.replica.database)
    store = ReplicatedStore(primary, replica, pin_s=0, retry_s=0.05)

    for _ in range(3):
        assert store.get_shop(SHOP).name == "Primary Name"  # type: ignore[union-attr]
        time.sleep(0.06)  # past retry_s: each read tries the replica again
    assert store.list_product_ids(SHOP) == []
    faults = replica_faults(caplog)
    assert len(faults) == 1, faults
    assert "reading from the primary" in faults[0]

    store.ping()  # readiness is the primary's
    with pytest.raises(StoreUnavailable):
        store.replica_ping()
    store.close()


class HangingUpServer:
    """A TCP server that accepts and hangs up at once, counting connections: a replica that is down."""

    def __init__(self) -> None:
        self._listener = socket.socket()
        self._listener.bind(("127.0.0.1", 0))
        self._listener.listen(16)
        self.port = self._listener.getsockname()[1]
        self.accepted = 0
        threading.Thread(target=self._accept, daemon=True).start()

    def _accept(self) -> None:
        while True:
            try:
                connection, _ = self._listener.accept()
            except OSError:
                return
            self.accepted += 1
            connection.close()

    def stop(self) -> None:
        # close() alone would leave the thread blocked in accept() (Linux).
        with contextlib.suppress(OSError):
            self._listener.shutdown(socket.SHUT_RDWR)
        self._listener.close()


@pytest.mark.parametrize(("retry_s", "replica_connects"), [(60, 2), (0, 10)])
def test_a_failed_replica_is_skipped_for_retry_s(
    databases: Databases, stores, retry_s: float, replica_connects: int
) -> None:
    primary, _ = stores
    primary.put_shop(SHOP, FIELDS)
    server = HangingUpServer()
    replica = MySQLStore(f"mysql://root@127.0.0.1:{server.port}/{databases.replica.database}")
    store = ReplicatedStore(primary, replica, pin_s=0, retry_s=retry_s)
    try:
        for _ in range(5):
            assert store.get_shop(SHOP).name == "Primary Name"  # type: ignore[union-attr]
        # Each try is a connect and the store's one reconnect; skipped reads cost nothing.
        assert server.accepted == replica_connects
    finally:
        store.close()
        server.stop()


def test_the_replica_is_read_again_once_it_answers(
    databases: Databases, stores, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.WARNING, logger=LOGGER)
    primary, _ = stores
    primary.put_shop(SHOP, FIELDS)
    late = new_backend()  # its database does not exist yet: connecting fails
    replica = late.new_store()
    store = ReplicatedStore(primary, replica, pin_s=0, retry_s=0.2)
    try:
        assert store.get_shop(SHOP).name == "Primary Name"  # type: ignore[union-attr]
        assert len(replica_faults(caplog)) == 1

        late.create()
        replica.migrate()
        replica.put_shop(SHOP, {**FIELDS, "name": "Late Replica"})
        time.sleep(0.25)  # past retry_s, however long the set-up took
        assert store.get_shop(SHOP).name == "Late Replica"  # type: ignore[union-attr]
        assert any("answers again" in r.getMessage() for r in caplog.records if r.name == LOGGER)
    finally:
        store.close()
        late.drop()


def test_a_primary_outage_is_not_hidden_by_the_replica(databases: Databases, stores) -> None:
    _, replica = stores
    replica.put_shop(SHOP, {**FIELDS, "name": "Replica Name"})
    store = ReplicatedStore(closed_port_store(databases.primary.database), replica, pin_s=5)
    with pytest.raises(StoreUnavailable):
        store.ping()
    with pytest.raises(StoreUnavailable):
        store.put_shop(SHOP, FIELDS)
    assert store.get_shop(SHOP).name == "Replica Name"  # type: ignore[union-attr]
    store.pin_primary(SHOP, 5)
    # A pinned shop is never read from the replica, which may not have the change yet.
    with pytest.raises(StoreUnavailable):
        store.get_shop(SHOP)


def test_migrate_builds_the_primary_schema_only() -> None:
    primary, replica = new_backend(), new_backend()
    try:
        primary.create()
        replica.create()
        store = ReplicatedStore(primary.new_store(), replica.new_store(), pin_s=1)
        assert store.migrate()
        tables = "SELECT TABLE_NAME FROM information_schema.TABLES WHERE TABLE_SCHEMA = ?"
        assert len(primary.query(tables, primary.database)) == 6
        assert replica.query(tables, replica.database) == []
        store.close()
    finally:
        try:
            replica.drop()
        finally:
            primary.drop()


def test_close_gives_back_both_connections(databases: Databases, stores) -> None:
    store = ReplicatedStore(*stores, pin_s=0)
    store.put_shop(SHOP, FIELDS)
    store.get_shop(SHOP)
    assert len(databases.primary.connection_ids()) == 1
    assert len(databases.replica.connection_ids()) == 1
    store.close()
    deadline = time.monotonic() + 5
    while databases.primary.connection_ids() or databases.replica.connection_ids():
        assert time.monotonic() < deadline, "a connection stayed open after close()"
        time.sleep(0.02)
