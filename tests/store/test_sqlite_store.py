"""What only SQLiteStore promises: WAL, lazy files, the busy timeout, broken files as StoreUnavailable."""

from __future__ import annotations

import sqlite3
import time
from pathlib import Path

import pytest

from storefront.store import SQLiteStore, StoreUnavailable

FIELDS = {"name": "Demo", "currency": "USD", "money_format": "${{amount}}", "default_locale": "en",
          "locales": ["en"]}


def test_nothing_is_opened_until_the_first_call(tmp_path: Path) -> None:
    path = tmp_path / "lazy.db"
    store = SQLiteStore(str(path))
    assert not path.exists()
    store.migrate()
    assert path.exists()
    store.close()


def test_the_database_runs_in_wal_mode(tmp_path: Path) -> None:
    path = tmp_path / "wal.db"
    store = SQLiteStore(str(path))
    store.migrate()
    store.put_shop("a.myshopify.com", FIELDS)
    store.close()
    connection = sqlite3.connect(path)
    try:
        assert connection.execute("PRAGMA journal_mode").fetchone()[0] == "wal"
    finally:
        connection.close()


def test_a_held_write_lock_times_writes_out_but_not_reads(tmp_path: Path) -> None:
    path = tmp_path / "locked.db"
    store = SQLiteStore(str(path), timeout_s=1)
    store.migrate()
    store.put_shop("a.myshopify.com", FIELDS)
    blocker = sqlite3.connect(path, isolation_level=None)
    try:
        blocker.execute("BEGIN IMMEDIATE")
        started = time.monotonic()
        with pytest.raises(StoreUnavailable):
            store.put_shop("a.myshopify.com", {**FIELDS, "name": "Blocked"})
        waited = time.monotonic() - started
        assert 0.9 <= waited < 3, waited  # the busy timeout, not an instant failure nor a hang
        shop = store.get_shop("a.myshopify.com")  # WAL: readers are not blocked by a writer
        assert shop is not None and shop.name == "Demo"
    finally:
        blocker.execute("ROLLBACK")
        blocker.close()
    shop, _ = store.put_shop("a.myshopify.com", {**FIELDS, "name": "Unblocked"})
    assert (shop.name, shop.version) == ("Unblocked", 2)
    store.close()


def test_a_file_that_is_not_a_database_is_unavailable(tmp_path: Path) -> None:
    path = tmp_path / "garbage.db"
    path.write_bytes(b"this is not a SQLite database, just some bytes" * 100)
    store = SQLiteStore(str(path))
    with pytest.raises(StoreUnavailable):
        store.ping()
    with pytest.raises(StoreUnavailable):
        store.migrate()
    store.close()


def test_tables_missing_before_migrate_are_unavailable_not_a_driver_error(tmp_path: Path) -> None:
    store = SQLiteStore(str(tmp_path / "empty.db"))
    with pytest.raises(StoreUnavailable):
        store.get_shop("a.myshopify.com")
    store.close()


@pytest.mark.parametrize("path", ["", ":memory:", "file:x.db?mode=memory"])
def test_in_memory_databases_are_refused(path: str) -> None:
    # Every thread has its own connection, so each would see a different empty database.
    with pytest.raises(ValueError):
        SQLiteStore(path)


@pytest.mark.parametrize("timeout_s", [0, -1, 1.5, True])
def test_the_timeout_must_be_whole_positive_seconds(tmp_path: Path, timeout_s: object) -> None:
    with pytest.raises(ValueError):
        SQLiteStore(str(tmp_path / "x.db"), timeout_s)  # type: ignore[arg-type]
