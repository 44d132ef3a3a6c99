"""The engines the store tests run on: a SQLite file, or this session's own MySQL database."""

from __future__ import annotations

import sqlite3
import time
from pathlib import Path
from typing import Any
from urllib.parse import quote, urlsplit

import pymysql

from storefront.store import MySQLStore, SQLiteStore
from tests.services import free_port, unique_name

# Child tables first, so dropping them never trips a foreign key.
TABLES = ("widget_versions", "widgets", "products", "shops", "webhooks", "schema_migrations")


class SQLiteBackend:
    """A SQLite file of the test's own (a new file per test: nothing to reset)."""

    name = "sqlite"

    def __init__(self, folder: Path) -> None:
        self.folder = folder
        self.path = folder / "store.db"

    def new_store(self, timeout_s: int = 2) -> SQLiteStore:
        return SQLiteStore(str(self.path), timeout_s)

    def unreachable_store(self) -> SQLiteStore:
        # A directory cannot be opened as a database file.
        return SQLiteStore(str(self.folder), 2)

    def query(self, sql: str, *params: Any) -> list[tuple[Any, ...]]:
        connection = sqlite3.connect(self.path, isolation_level=None)
        try:
            return list(connection.execute(sql, params))
        finally:
            connection.close()

    def reset(self) -> None:
        pass

    def wipe(self) -> None:
        self.path.unlink(missing_ok=True)


class MySQLBackend:
    """This session's database on the MySQL server of tests.services.MYSQL_URL."""

    name = "mysql"

    def __init__(self, server_url: str) -> None:
        parts = urlsplit(server_url)
        self.admin_args: dict[str, Any] = {
            "host": parts.hostname,
            "port": parts.port or 3306,
            "user": parts.username or "root",
            "password": parts.password or "",
            "connect_timeout": 2,
            "autocommit": True,
            "charset": "utf8mb4",
        }
        self.database = unique_name("sf_test")
        credentials = quote(self.admin_args["user"], safe="")
        if self.admin_args["password"]:
            credentials += ":" + quote(self.admin_args["password"], safe="")
        self.url = f"mysql://{credentials}@{parts.hostname}:{self.admin_args['port']}/{self.database}"
        self._admin = pymysql.connect(**self.admin_args)

    def create(self) -> None:
        # latin1 on purpose: the tables must bring utf8mb4 themselves, whatever the database default.
        self._run(f"CREATE DATABASE `{self.database}` CHARACTER SET latin1")

    def drop(self) -> None:
        try:
            self.kill_connections()
            self._run("SET SESSION lock_wait_timeout = 10")
            self._run(f"DROP DATABASE IF EXISTS `{self.database}`")
        finally:
            self._admin.close()

    def _run(self, sql: str, params: tuple[Any, ...] | None = None) -> list[tuple[Any, ...]]:
        with self._admin.cursor() as cursor:
            cursor.execute(sql, params)
            return list(cursor.fetchall())

    def new_store(self, timeout_s: int = 2) -> MySQLStore:
        return MySQLStore(self.url, timeout_s)

    def unreachable_store(self) -> MySQLStore:
        # A free port that nothing listens on: connections are refused at once.
        return MySQLStore(f"mysql://root@127.0.0.1:{free_port()}/{self.database}", 2)

    def query(self, sql: str, *params: Any) -> list[tuple[Any, ...]]:
        self._run(f"USE `{self.database}`")
        return self._run(sql.replace("?", "%s"), params or None)

    def reset(self) -> None:
        existing = {row[0] for row in self._run(
            "SELECT TABLE_NAME FROM information_schema.TABLES WHERE TABLE_SCHEMA = %s", (self.database,)
        )}
        for table in ("shops", "webhooks"):  # shops cascades to everything else
            if table in existing:
                self._run(f"DELETE FROM `{self.database}`.`{table}`")

    def wipe(self) -> None:
        for table in TABLES:
            self._run(f"DROP TABLE IF EXISTS `{self.database}`.`{table}`")

    def connection_ids(self) -> set[int]:
        """Ids of the connections using this database, other than our own admin one."""
        rows = self._run(
            "SELECT ID FROM information_schema.PROCESSLIST WHERE DB = %s AND ID <> CONNECTION_ID()",
            (self.database,),
        )
        return {int(row[0]) for row in rows}

    def kill_connections(self) -> set[int]:
        """KILL every connection on this database, as a server restart or a DBA would."""
        ids = self.connection_ids()
        for connection_id in ids:
            try:
                self._run(f"KILL CONNECTION {connection_id}")
            except pymysql.err.OperationalError as error:
                if error.args[0] != 1094:  # unknown thread id: it ended by itself meanwhile
                    raise
        deadline = time.monotonic() + 5
        while ids & self.connection_ids():
            if time.monotonic() > deadline:
                raise AssertionError(f"killed connections {ids} still listed")
            time.sleep(0.02)
        return ids
