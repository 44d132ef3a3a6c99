"""What only MySQLStore promises: utf8mb4/InnoDB, one reconnect, bounded waits, lazy connections."""

from __future__ import annotations

import socket
import time
from collections.abc import Iterator
from pathlib import Path

import pymysql
import pytest

from storefront.store import MySQLStore, SQLiteStore, StoreUnavailable
from tests.services import free_port
from tests.store.backends import MySQLBackend

FIELDS = {
    "name": "酒蔵",
    "currency": "JPY",
    "money_format": "¥{{amount_no_decimals}}",
    "default_locale": "ja",
    "locales": ["ja"],
}
SHOP = "sakagura.myshopify.com"

mysql = pytest.mark.mysql


@pytest.fixture
def store(mysql_backend: MySQLBackend) -> Iterator[MySQLStore]:
    store = mysql_backend.new_store()
    store.migrate()
    mysql_backend.reset()
    yield store
    store.close()


@mysql
def test_tables_are_innodb_utf8mb4_whatever_the_database_default(
    mysql_backend: MySQLBackend, store: MySQLStore
) -> None:
    (default,) = mysql_backend.query(
        "SELECT DEFAULT_CHARACTER_SET_NAME FROM information_schema.SCHEMATA WHERE SCHEMA_NAME = ?",
        mysql_backend.database,
    )[0]
    assert default == "latin1"
    rows = mysql_backend.query(
        "SELECT TABLE_NAME, ENGINE, TABLE_COLLATION FROM information_schema.TABLES WHERE TABLE_SCHEMA = ?",
        mysql_backend.database,
    )
    assert len(rows) == 6
    for table, engine, collation in rows:
        assert engine == "InnoDB", table
        assert collation.startswith("utf8mb4_"), (table, collation)


@mysql
def test_mysql_and_sqlite_describe_the_same_schema(store: MySQLStore, tmp_path: Path) -> None:
    sqlite = SQLiteStore(str(tmp_path / "twin.db"))
    sqlite.migrate()
    assert store.schema_description() == sqlite.schema_description()
    sqlite.close()


@mysql
def test_reads_and_writes_reconnect_after_the_server_kills_the_connection(
    mysql_backend: MySQLBackend, store: MySQLStore
) -> None:
    store.put_shop(SHOP, FIELDS)  # this thread's connection is now open
    killed = mysql_backend.kill_connections()
    assert len(killed) == 1

    shop = store.get_shop(SHOP)  # the dead connection fails, a fresh one answers
    assert shop is not None and shop.name == "酒蔵"
    reconnected = mysql_backend.connection_ids()
    assert len(reconnected) == 1 and not reconnected & killed

    assert mysql_backend.kill_connections() == reconnected
    shop, created = store.put_shop(SHOP, {**FIELDS, "name": "酒蔵 本店"})
    assert (created, shop.version, shop.name) == (False, 2, "酒蔵 本店")  # applied exactly once

    mysql_backend.kill_connections()
    store.put_draft(SHOP, "subscription", {"enabled": True})
    mysql_backend.kill_connections()
    assert store.publish(SHOP, "subscription") == 1
    mysql_backend.kill_connections()
    assert store.record_webhook("killed-then-recorded") is True
    assert store.record_webhook("killed-then-recorded") is False


@mysql
def test_a_held_row_lock_times_a_publish_out_but_not_reads(mysql_backend: MySQLBackend) -> None:
    store = mysql_backend.new_store(timeout_s=2)
    store.migrate()
    mysql_backend.reset()
    store.put_shop(SHOP, FIELDS)
    store.put_draft(SHOP, "subscription", {"enabled": True})
    blocker = pymysql.connect(**{**mysql_backend.admin_args, "autocommit": False},
                              database=mysql_backend.database)
    try:
        with blocker.cursor() as cursor:
            cursor.execute("SELECT * FROM widgets WHERE shop = %s FOR UPDATE", (SHOP,))
        started = time.monotonic()
        with pytest.raises(StoreUnavailable):
            store.publish(SHOP, "subscription")
        waited = time.monotonic() - started
        # The lock wait (timeout_s - 1) ends first: no socket timeout, no second wait on a retry.
        assert 0.9 <= waited < 1.9, waited
        state = store.get_widget(SHOP, "subscription")  # plain reads do not wait for the lock
        assert state.draft == {"enabled": True} and state.published is None
    finally:
        blocker.rollback()
        blocker.close()
    assert store.publish(SHOP, "subscription") == 1
    store.close()


def test_a_closed_port_is_unavailable_quickly_and_construction_connects_to_nothing() -> None:
    store = MySQLStore(f"mysql://root@127.0.0.1:{free_port()}/nothing_here")
    started = time.monotonic()
    with pytest.raises(StoreUnavailable) as raised:
        store.get_shop(SHOP)
    assert time.monotonic() - started < 2
    assert isinstance(raised.value.__cause__, pymysql.err.OperationalError)
    with pytest.raises(StoreUnavailable):
        store.migrate()
    store.close()


def test_a_server_that_never_answers_times_out_after_connect_timeout_and_one_retry() -> None:
    # Connections land in the listen backlog and the handshake never comes.
    listener = socket.socket()
    listener.bind(("127.0.0.1", 0))
    listener.listen(8)
    port = listener.getsockname()[1]
    try:
        store = MySQLStore(f"mysql://root@127.0.0.1:{port}/silent", timeout_s=1)
        started = time.monotonic()
        with pytest.raises(StoreUnavailable):
            store.ping()
        waited = time.monotonic() - started
        assert 1.8 <= waited < 4, waited
        store.close()
    finally:
        listener.close()


def test_the_url_is_parsed_and_the_password_never_shown() -> None:
    store = MySQLStore("mysql://shop%40app:p%40ss%3Aword@db.internal:3307/store_db", timeout_s=5)
    assert (store.host, store.port, store.user, store.database, store.timeout_s) == (
        "db.internal", 3307, "shop@app", "store_db", 5
    )
    assert "p@ss" not in repr(store) and "word" not in repr(store)
    assert MySQLStore("mysql://root@localhost/db").port == 3306


@pytest.mark.parametrize(
    "url", ["mysql://localhost", "mysql://localhost/", "mysql:///db", "mysql://h/db?ssl=1", "postgres://h/db"]
)
def test_malformed_urls_are_refused(url: str) -> None:
    with pytest.raises(ValueError):
        MySQLStore(url)
