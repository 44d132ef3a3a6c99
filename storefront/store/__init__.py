"""Storage: the Store interface, its records and errors, and create_store() to build one from a URL."""

from __future__ import annotations

import os

from storefront.store.base import (
    WIDGET_KINDS,
    Conflict,
    NotFound,
    Product,
    PublishedVersion,
    Shop,
    Store,
    StoreError,
    StoreUnavailable,
    WidgetInputs,
    WidgetState,
    WidgetVersions,
)
from storefront.store.replicated import ReplicatedStore
from storefront.store.sql import MySQLStore, SQLiteStore, SQLStore

__all__ = [
    "WIDGET_KINDS",
    "Conflict",
    "MySQLStore",
    "NotFound",
    "Product",
    "PublishedVersion",
    "ReplicatedStore",
    "SQLStore",
    "SQLiteStore",
    "Shop",
    "Store",
    "StoreError",
    "StoreUnavailable",
    "WidgetInputs",
    "WidgetVersions",
    "WidgetState",
    "create_store",
]

SQLITE_PREFIX = "sqlite:///"


def create_store(
    database_url: str, timeout_s: int = 2, *, replica_url: str = "", replica_pin_s: float = 10
) -> Store:
    """The store for ``database_url``; nothing connects until the first call on it.

    ``sqlite:////abs/path.db`` (four slashes: absolute), ``sqlite:///relative.db`` (relative
    to the working directory), ``mysql://user:pass@host:port/db``. The parent directory of a
    SQLite file is created here, so a fresh checkout can start without setup.

    With ``replica_url`` (same forms) the result is a :class:`ReplicatedStore`: reads from the
    replica, except of shops changed in the last ``replica_pin_s`` seconds; everything else
    from ``database_url``, the primary.
    """
    store = _single_store(database_url, timeout_s)
    if not replica_url:
        return store
    return ReplicatedStore(store, _single_store(replica_url, timeout_s), replica_pin_s)


def _single_store(database_url: str, timeout_s: int) -> Store:
    if database_url.startswith(SQLITE_PREFIX):
        path = database_url[len(SQLITE_PREFIX):]
        store = SQLiteStore(path, timeout_s)
        os.makedirs(os.path.dirname(os.path.abspath(path)), exist_ok=True)
        return store
    if database_url.startswith("mysql://"):
        return MySQLStore(database_url, timeout_s)
    raise ValueError("database URL must start with sqlite:/// or mysql://")
