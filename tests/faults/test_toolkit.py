"""The fault toolkit itself: each fault is real (a suite built on a fake fault would prove nothing)."""

from __future__ import annotations

import sqlite3
import time
from pathlib import Path

import pymysql
import pytest
import redis

from tests.faults.toolkit import (
    PrivateMariaDB,
    fill_memory,
    free_memory,
    read_only,
    sqlite_exclusive_lock,
    sqlite_file_replaced,
    sqlite_write_lock,
    writable,
)
from tests.services import PrivateRedis

pytestmark = pytest.mark.slow


def client_for(server: PrivateRedis) -> redis.Redis:
    return redis.Redis(port=server.port, socket_timeout=5)


def test_full_redis_refuses_writes_and_answers_reads(private_redis: PrivateRedis) -> None:
    client = client_for(private_redis)
    try:
        client.set("kept", b"value")
        fill_memory(private_redis)
        with pytest.raises(redis.exceptions.OutOfMemoryError):
            client.set("small", b"x")
        assert client.get("kept") == b"value"
        free_memory(private_redis)
        assert client.set("small", b"x")
        assert client.dbsize() == 2  # the filler keys are gone
    finally:
        client.close()


def test_read_only_redis_refuses_writes_and_answers_reads(private_redis: PrivateRedis) -> None:
    client = client_for(private_redis)
    try:
        client.set("kept", b"value")
        read_only(private_redis)
        with pytest.raises(redis.exceptions.ReadOnlyError):
            client.set("other", b"x")
        assert client.get("kept") == b"value"
        writable(private_redis)
        assert client.set("other", b"x")
    finally:
        client.close()


def test_mariadb_keeps_committed_rows_through_kill_and_stop(mariadb: PrivateMariaDB) -> None:
    url = mariadb.create_database()
    name = url.rsplit("/", 1)[1]
    try:
        mariadb.query("CREATE TABLE t (id INT PRIMARY KEY) ENGINE=InnoDB", database=name)
        mariadb.query("INSERT INTO t VALUES (1)", database=name)
        mariadb.kill()
        assert not mariadb.running
        with pytest.raises(pymysql.err.OperationalError):
            mariadb.connect()
        mariadb.start()
        mariadb.query("INSERT INTO t VALUES (2)", database=name)
        mariadb.restart()
        assert mariadb.query("SELECT id FROM t ORDER BY id", database=name) == [(1,), (2,)]
    finally:
        mariadb.drop_database(url)


def test_paused_mariadb_accepts_connections_but_never_answers(mariadb: PrivateMariaDB) -> None:
    mariadb.pause()
    try:
        started = time.monotonic()
        with pytest.raises(pymysql.err.OperationalError) as raised:
            pymysql.connect(host="127.0.0.1", port=mariadb.port, user="root", connect_timeout=1,
                            read_timeout=1, ssl_disabled=True)
        # Timed out waiting for the greeting: the TCP connect itself succeeded.
        assert raised.value.args[0] == 2013
        assert time.monotonic() - started >= 0.9
    finally:
        mariadb.resume()
    assert mariadb.query("SELECT 1") == [(1,)]


def test_dropped_mariadb_connections_are_gone(mariadb: PrivateMariaDB) -> None:
    victims = [mariadb.connect() for _ in range(3)]
    ids = {victim.thread_id() for victim in victims}
    assert mariadb.drop_connections() >= 3
    for victim in victims:
        with pytest.raises(pymysql.err.OperationalError) as raised, victim.cursor() as cursor:
            cursor.execute("SELECT 1")
        assert raised.value.args[0] == 2013
    # Other clients (an earlier test's background thread) may connect anew meanwhile: what
    # matters is that none of the dropped connections is still there.
    assert not ids & {thread_id for thread_id, *_ in mariadb.client_connections()}


def test_sqlite_locks(tmp_path: Path) -> None:
    path = tmp_path / "locked.db"
    setup = sqlite3.connect(path, isolation_level=None)
    setup.execute("PRAGMA journal_mode = WAL")
    setup.execute("CREATE TABLE t (x INTEGER)")
    setup.close()

    def other() -> sqlite3.Connection:
        return sqlite3.connect(path, isolation_level=None, timeout=0.2)

    with sqlite_write_lock(path):
        reader = other()
        assert reader.execute("SELECT count(*) FROM t").fetchall() == [(0,)]  # readers go on
        with pytest.raises(sqlite3.OperationalError, match="locked"):
            reader.execute("BEGIN IMMEDIATE")
        reader.close()
    with sqlite_exclusive_lock(path):
        reader = other()
        with pytest.raises(sqlite3.OperationalError, match="locked"):
            reader.execute("SELECT count(*) FROM t").fetchall()
        reader.close()
    reader = other()
    assert reader.execute("SELECT count(*) FROM t").fetchall() == [(0,)]
    reader.close()


def test_sqlite_file_replaced_and_put_back(tmp_path: Path) -> None:
    path = tmp_path / "replaced.db"
    setup = sqlite3.connect(path, isolation_level=None)
    setup.execute("CREATE TABLE t (x INTEGER)")
    setup.execute("INSERT INTO t VALUES (7)")
    setup.close()
    with sqlite_file_replaced(path, b"not a database\n" * 100):
        probe = sqlite3.connect(path)
        with pytest.raises(sqlite3.DatabaseError, match="not a database"):
            probe.execute("SELECT * FROM t")
        probe.close()
    with sqlite_file_replaced(path, None):
        assert not path.exists()
        sqlite3.connect(path).close()  # what an app re-creating it would leave behind
    restored = sqlite3.connect(path)
    assert restored.execute("SELECT x FROM t").fetchall() == [(7,)]
    restored.close()
