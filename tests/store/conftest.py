"""Store fixtures: the contract suite runs on a SQLite file and on this session's own MySQL database."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pymysql
import pytest

from storefront.store import SQLStore
from tests.services import MYSQL_URL, reachable, unavailable
from tests.store.backends import MySQLBackend, SQLiteBackend


@pytest.fixture(scope="session")
def mysql_backend() -> Iterator[MySQLBackend]:
    if not reachable(MYSQL_URL):
        unavailable(f"MySQL is not reachable at {MYSQL_URL}")
    try:
        backend = MySQLBackend(MYSQL_URL)
    except pymysql.err.MySQLError as error:
        unavailable(f"MySQL at {MYSQL_URL} refused the test connection: {error}")
        raise
    backend.create()
    try:
        yield backend
    finally:
        backend.drop()


@pytest.fixture(params=["sqlite", pytest.param("mysql", marks=pytest.mark.mysql)])
def store_backend(request: pytest.FixtureRequest, tmp_path: Path) -> SQLiteBackend | MySQLBackend:
    if request.param == "sqlite":
        return SQLiteBackend(tmp_path)
    return request.getfixturevalue("mysql_backend")


@pytest.fixture
def blank_store(store_backend: SQLiteBackend | MySQLBackend) -> Iterator[SQLStore]:
    """A store on a database with no tables at all (migrate() has never run)."""
    store_backend.wipe()
    store = store_backend.new_store()
    yield store
    store.close()


@pytest.fixture
def store(store_backend: SQLiteBackend | MySQLBackend) -> Iterator[SQLStore]:
    """A migrated store with no data in it."""
    store = store_backend.new_store()
    store.migrate()
    store_backend.reset()
    yield store
    store.close()
