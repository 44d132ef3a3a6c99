"""create_store() with and without a replica URL; a lone store is its own primary and ignores pins."""

from __future__ import annotations

from pathlib import Path

import pytest

from storefront.store import MySQLStore, ReplicatedStore, SQLiteStore, create_store
from tests.services import free_port


def test_a_replica_url_gives_a_replicated_store_without_connecting() -> None:
    port = free_port()  # nothing listens there: any connect attempt would fail the test
    store = create_store(f"mysql://app:pw@127.0.0.1:{port}/main", timeout_s=3,
                         replica_url=f"mysql://reader:pw@127.0.0.1:{port}/main", replica_pin_s=7)
    assert isinstance(store, ReplicatedStore)
    assert isinstance(store.primary, MySQLStore) and isinstance(store.replica, MySQLStore)
    assert (store.primary.user, store.replica.user) == ("app", "reader")
    assert (store.primary.timeout_s, store.replica.timeout_s, store.pin_s) == (3, 3, 7)
    assert "pw" not in repr(store)


def test_without_a_replica_url_the_store_is_its_own_primary_and_pins_do_nothing(tmp_path: Path) -> None:
    store = create_store(f"sqlite:///{tmp_path / 'lone.db'}", replica_url="")
    assert isinstance(store, SQLiteStore)
    assert store.primary is store
    store.pin_primary("demo-coffee.myshopify.com", 10)
    store.migrate()
    assert store.get_shop("demo-coffee.myshopify.com") is None
    store.close()


@pytest.mark.parametrize("replica_url", ["postgres://h/db", "sqlite:///", "mysql://h"])
def test_a_bad_replica_url_is_refused(tmp_path: Path, replica_url: str) -> None:
    with pytest.raises(ValueError):
        create_store(f"sqlite:///{tmp_path / 'x.db'}", replica_url=replica_url)


def test_a_negative_pin_is_refused(tmp_path: Path) -> None:
    with pytest.raises(ValueError):
        create_store(f"sqlite:///{tmp_path / 'x.db'}", replica_url=f"sqlite:///{tmp_path / 'r.db'}",
                     replica_pin_s=-1)
