"""Connections kept from request to request: the same one reused, replaced when it dies, never stale."""

from __future__ import annotations

import multiprocessing
import os
import shutil
import sqlite3
from collections.abc import Iterator
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import pymysql
import pytest
from flask import Flask

from storefront.store import MySQLStore, SQLiteStore, StoreUnavailable
from tests.conftest import make_app, seed

SHOP = "demo-coffee.myshopify.com"
WIDGET = f"/v1/shops/{SHOP}/widgets/subscription.json?product=%d"
PRODUCTS = (7001000000001, 7001000000002, 7001000000003)


def connection_id(store: MySQLStore) -> int:
    """The server's id of this thread's connection of ``store``."""
    return store._run(lambda tx: tx.one("SELECT CONNECTION_ID()")[0], write=False, one_statement=True)


def admin(url: str) -> pymysql.connections.Connection:
    parts = urlsplit(url)
    return pymysql.connect(host=parts.hostname, port=parts.port or 3306, user=parts.username or "root",
                           password=parts.password or "", connect_timeout=2, autocommit=True)


def server_connections(url: str) -> set[int]:
    """Ids of every connection the server has open on this URL's database."""
    with admin(url) as connection, connection.cursor() as cursor:
        cursor.execute("SELECT ID FROM information_schema.PROCESSLIST WHERE DB = %s",
                       (urlsplit(url).path.strip("/"),))
        return {int(row[0]) for row in cursor.fetchall()}


@pytest.fixture
def mysql_app(mysql_url: str) -> Iterator[Flask]:
    # Nothing kept in process: every widget request reads the database.
    app = make_app(mysql_url, LOCAL_CACHE_TTL_S=0)
    seed(app)
    yield app
    app.extensions["storefront"].store.close_all()


@pytest.mark.mysql
def test_requests_on_one_thread_share_one_connection_and_a_killed_one_is_replaced(
    mysql_app: Flask, mysql_url: str
) -> None:
    client = mysql_app.test_client()
    store = mysql_app.extensions["storefront"].store
    assert client.get(WIDGET % PRODUCTS[0]).status_code == 200
    first = connection_id(store)
    assert server_connections(mysql_url) == {first}
    assert client.get(WIDGET % PRODUCTS[1]).status_code == 200
    assert connection_id(store) == first and server_connections(mysql_url) == {first}

    with admin(mysql_url) as connection, connection.cursor() as cursor:
        cursor.execute(f"KILL CONNECTION {first}")  # a restart, a DBA, wait_timeout
    response = client.get(WIDGET % PRODUCTS[2])
    assert response.status_code == 200, response.data  # the dead connection is replaced, unseen
    second = connection_id(store)
    assert second != first and server_connections(mysql_url) == {second}


@pytest.mark.mysql
def test_a_kept_connection_reads_changes_committed_elsewhere_since_its_last_request(
    mysql_app: Flask, mysql_url: str
) -> None:
    client = mysql_app.test_client()
    store = mysql_app.extensions["storefront"].store
    before = client.get(WIDGET % PRODUCTS[0])
    kept = connection_id(store)
    # Another process publishes (it is not this app, so no invalidation reaches it).
    other = MySQLStore(mysql_url)
    try:
        published = other.get_widget(SHOP, "subscription").published
        assert published is not None
        other.put_draft(SHOP, "subscription", {**published.settings, "template": "checkbox"})
        version = other.publish(SHOP, "subscription")
    finally:
        other.close()
    after = client.get(WIDGET % PRODUCTS[0])
    assert (before.get_json()["template"], after.get_json()["template"]) == ("radio_group", "checkbox")
    assert after.headers["X-Cache"] == "MISS" and version == published.version + 1
    assert connection_id(store) == kept


def test_a_sqlite_file_replaced_under_a_kept_connection_is_reopened(tmp_path: Path) -> None:
    # A restore puts another file at the path: a connection kept on the old one must not go on
    # reading it.
    path = tmp_path / "live.db"
    store = SQLiteStore(str(path))
    store.migrate()
    store.put_shop(SHOP, {"name": "Before", "currency": "USD", "money_format": "${{amount}}",
                          "default_locale": "en", "locales": ["en"]})
    store.close()  # the copy below must not need this connection's WAL
    shutil.copy(path, tmp_path / "restored.db")
    restored = sqlite3.connect(tmp_path / "restored.db")
    restored.execute("UPDATE shops SET name = 'Restored'")
    restored.commit()
    restored.close()

    store.get_shop(SHOP)
    kept = store._thread_connection().finalizer
    os.replace(tmp_path / "restored.db", path)
    shop = store.get_shop(SHOP)
    assert shop is not None and shop.name == "Restored"
    assert not kept.alive

    path.unlink()
    with pytest.raises(StoreUnavailable):
        store.get_shop(SHOP)
    store.close()


def _use_in_child(store: Any, results: Any) -> None:
    try:
        # The parent's connection came along with fork(): this process must open its own, and
        # closing its connections must leave the parent's alone.
        inherited = store._local.held
        store.ping()
        results.put(store._local.held is not inherited)
        store.close_all()
        results.put("ok")
    except BaseException as error:  # reported to the parent
        results.put(repr(error))


@pytest.mark.parametrize("engine", ["sqlite", pytest.param("mysql", marks=pytest.mark.mysql)])
def test_a_forked_child_never_uses_or_closes_the_parents_connection(
    engine: str, tmp_path: Path, request: pytest.FixtureRequest
) -> None:
    if engine == "sqlite":
        store: Any = SQLiteStore(str(tmp_path / "forked.db"))
    else:
        store = MySQLStore(request.getfixturevalue("mysql_url"))
    store.migrate()
    store.ping()
    before = store._thread_connection()
    context = multiprocessing.get_context("fork")
    results = context.Queue()
    child = context.Process(target=_use_in_child, args=(store, results))
    child.start()
    outcome = [results.get(timeout=30), results.get(timeout=30)]
    child.join(timeout=30)
    assert outcome == [True, "ok"] and child.exitcode == 0
    store.ping()
    assert store._thread_connection() is before and before.finalizer.alive
    store.close()
