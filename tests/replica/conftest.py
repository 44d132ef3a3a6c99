"""Two MariaDB databases standing in for a primary and its read replica, with replication done by hand."""

from __future__ import annotations

from collections.abc import Iterator

import pymysql
import pytest

from tests.services import MYSQL_URL, reachable, unavailable
from tests.store.backends import MySQLBackend

# Parents first; schema_migrations is left alone (both databases are migrated).
COPIED_TABLES = ("shops", "products", "widgets", "widget_versions", "webhooks")


class Databases:
    """The primary and the "replica": two databases on one server that nothing keeps in sync.

    Nothing replicates, so the replica holds exactly what a test put there; making the two
    differ shows which one each read went to.
    """

    def __init__(self, primary: MySQLBackend, replica: MySQLBackend) -> None:
        self.primary = primary
        self.replica = replica

    def replicate(self) -> None:
        """Make the replica a copy of the primary, as replication would by now."""
        self.replica.query("SET SESSION FOREIGN_KEY_CHECKS = 0")
        try:
            for table in reversed(COPIED_TABLES):
                self.replica.query(f"DELETE FROM `{table}`")
            for table in COPIED_TABLES:
                self.replica.query(
                    f"INSERT INTO `{table}` SELECT * FROM `{self.primary.database}`.`{table}`")
        finally:
            self.replica.query("SET SESSION FOREIGN_KEY_CHECKS = 1")

    def diverge(self, shop: str, name: str, money_format: str) -> None:
        """Give the replica's copy of ``shop`` a name and money format the primary does not have.

        The version moves too, so a render of the replica's copy never shares a cache key with
        a render of the primary's.
        """
        self.replica.query(
            "UPDATE shops SET name = ?, money_format = ?, version = version + 100 WHERE shop = ?",
            name, money_format, shop,
        )

    def shop_names(self, shop: str) -> tuple[str | None, str | None]:
        """The shop's name in the primary and in the replica (None where it is absent)."""
        names = []
        for backend in (self.primary, self.replica):
            rows = backend.query("SELECT name FROM shops WHERE shop = ?", shop)
            names.append(rows[0][0] if rows else None)
        return names[0], names[1]


def new_backend() -> MySQLBackend:
    """A backend for a database of its own (not created yet); skips or fails without MariaDB."""
    if not reachable(MYSQL_URL):
        unavailable(f"MariaDB is not reachable at {MYSQL_URL}")
    try:
        return MySQLBackend(MYSQL_URL)
    except pymysql.err.MySQLError as error:
        unavailable(f"MariaDB at {MYSQL_URL} refused the test connection: {error}")
        raise


@pytest.fixture(scope="session")
def database_pair() -> Iterator[Databases]:
    primary = new_backend()
    primary.create()
    try:
        replica = new_backend()
    except BaseException:
        primary.drop()
        raise
    try:
        replica.create()
        for backend in (primary, replica):
            store = backend.new_store()
            store.migrate()
            store.close()
        yield Databases(primary, replica)
    finally:
        try:
            replica.drop()
        finally:
            primary.drop()


@pytest.fixture
def databases(database_pair: Databases) -> Databases:
    """Both databases migrated and empty."""
    database_pair.primary.reset()
    database_pair.replica.reset()
    return database_pair
