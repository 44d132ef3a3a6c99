"""The app under fault: databases that can be taken down or hung, apps on them, timed requests, checks."""

from __future__ import annotations

import contextlib
import sqlite3
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pymysql
from flask import Flask
from werkzeug.test import TestResponse

from storefront.store import Store
from tests.conftest import ADMIN_TOKEN, make_app, seed
from tests.faults.toolkit import PrivateMariaDB, sqlite_exclusive_lock, sqlite_file_replaced
from tests.services import PrivateRedis, unique_name

DB_TIMEOUT_S = 1
# Above the production default (50): on a busy 2-core test machine a healthy Redis sometimes
# takes longer than 50 ms to be scheduled, and its answer would count as a miss.
REDIS_TIMEOUT_MS = 100
# Per request: the lookup's GET, the render lock, the SET and a last-good GET may each meet the
# Redis timeout before the breaker opens.
REDIS_BUDGET_S = 4 * REDIS_TIMEOUT_MS / 1000
# Scheduling, rendering and a loaded 2-core machine; and PyMySQL 1.2 builds a TLS context (about
# 0.1 s of CPU, holding the GIL) for every connection, which concurrent requests pay in turn.
SLACK_S = 1.5

SHOP = "demo-coffee.myshopify.com"
# Rendered before every fault (so a last good copy exists) ...
CACHED = f"/v1/shops/{SHOP}/widgets/subscription.js?product=7001000000001"
# ... and never rendered before the fault.
UNCACHED = f"/v1/shops/{SHOP}/widgets/bundle.js?product=7001000000006"
IDENTITY = {"Accept-Encoding": "identity"}
AUTH = {"Authorization": f"Bearer {ADMIN_TOKEN}"}
NOT_A_DATABASE = b"this file is not a SQLite database\n" * 200


class SQLiteUnderTest:
    """A SQLite file; "down" is the file swapped for something else, "hung" another process's
    exclusive lock (every access waits the busy timeout, DB_TIMEOUT_S)."""

    name = "sqlite"
    # Opening a connection switches on WAL in a loop bounded by the busy timeout, and one last
    # busy wait may start just before that bound.
    attempts = 2

    def __init__(self, folder: Path) -> None:
        self.path = folder / "storefront.db"
        self.url = f"sqlite:///{self.path}"
        # The apps' stores (Deployment.app): each keeps a connection per thread between requests.
        self.stores: list[Store] = []

    @contextlib.contextmanager
    def down(self) -> Iterator[None]:
        with sqlite_file_replaced(self.path, NOT_A_DATABASE):
            yield

    @contextlib.contextmanager
    def hung(self) -> Iterator[None]:
        # The tool can only take the file while no connection is open (the apps' kept ones block
        # it): it got there first, as while the apps restarted.
        for store in self.stores:
            store.close_all()
        with sqlite_exclusive_lock(self.path):
            yield

    def query(self, sql: str, *params: Any) -> list[tuple[Any, ...]]:
        connection = sqlite3.connect(self.path, isolation_level=None, timeout=10)
        try:
            return list(connection.execute(sql, params))
        finally:
            connection.close()

    def close(self) -> None:
        pass


class MariaDBUnderTest:
    """A database of its own on the session's private mariadbd; "down" is the server stopped,
    "hung" the server frozen with SIGSTOP."""

    name = "mysql"
    # MySQLStore retries a failed connect (or a lost connection) once.
    attempts = 2

    def __init__(self, server: PrivateMariaDB) -> None:
        self.server = server
        self.url = server.create_database()
        self.database = self.url.rsplit("/", 1)[1]

    @contextlib.contextmanager
    def down(self) -> Iterator[None]:
        self.server.stop()
        try:
            yield
        finally:
            self.server.start()

    @contextlib.contextmanager
    def hung(self) -> Iterator[None]:
        self.server.pause()
        try:
            yield
        finally:
            self.server.resume()

    def query(self, sql: str, *params: Any) -> list[tuple[Any, ...]]:
        return self.server.query(sql.replace("?", "%s"), *params, database=self.database)

    def close(self) -> None:
        with contextlib.suppress(pymysql.err.MySQLError):
            self.server.drop_database(self.url)


DatabaseUnderTest = SQLiteUnderTest | MariaDBUnderTest


def request_bound_s(database: DatabaseUnderTest) -> float:
    """The longest any request may take while the database and Redis misbehave."""
    return database.attempts * DB_TIMEOUT_S + REDIS_BUDGET_S + SLACK_S


class Deployment:
    """Apps ("workers") on one database and one Redis under one key prefix, seeded with the demo data."""

    def __init__(self, database: DatabaseUnderTest, redis_server: PrivateRedis | None) -> None:
        self.database = database
        self.redis = redis_server
        self.key_prefix = unique_name("sffault") + ":"
        self._apps: list[Flask] = []
        self._seeded = False

    def app(self, **overrides: object) -> Flask:
        """A worker. Its lookups are not kept in process (LOCAL_CACHE_TTL_S=0), so every widget request
        asks the database; its in-process render tier (with last good copies) is on unless
        LOCAL_CACHE_BYTES=0."""
        config: dict[str, object] = {
            "DB_TIMEOUT_S": DB_TIMEOUT_S,
            "REDIS_KEY_PREFIX": self.key_prefix,
            "REDIS_TIMEOUT_MS": REDIS_TIMEOUT_MS,
            "REDIS_CONNECT_TIMEOUT_MS": REDIS_TIMEOUT_MS,
            "BREAKER_FAILURES": 3,
            "BREAKER_RESET_S": 1,
            "LOCK_WAIT_MS": 100,
            "LOCAL_CACHE_TTL_S": 0,
        }
        if self.redis is not None:
            config["REDIS_URL"] = self.redis.url
        config.update(overrides)
        app = make_app(self.database.url, **config)
        self._apps.append(app)
        if isinstance(self.database, SQLiteUnderTest):
            self.database.stores.append(app.extensions["storefront"].store)
        if not self._seeded:
            seed(app)
            self._seeded = True
        return app

    def close(self) -> None:
        for app in self._apps:
            services = app.extensions["storefront"]
            listener = services._listener
            if listener is not None:
                listener.stop(timeout=1)
            services.store.close()
            if services.cache.shared is not None:
                services.cache.shared.close()


class ReferenceBodies:
    """The right bytes of a widget path: rendered by an app with a healthy SQLite and no Redis."""

    def __init__(self, folder: Path) -> None:
        self._app: Flask | None = None
        self._folder = folder
        self._bodies: dict[str, bytes] = {}

    def __call__(self, path: str) -> bytes:
        if path not in self._bodies:
            if self._app is None:
                self._app = make_app(f"sqlite:///{self._folder / 'reference.db'}")
                seed(self._app)
            response = self._app.test_client().get(path, headers=IDENTITY)
            assert response.status_code == 200, response.data
            self._bodies[path] = response.data
        return self._bodies[path]


class Timed:
    """A response and how long it took."""

    def __init__(self, label: str, response: TestResponse, seconds: float) -> None:
        self.label = label
        self.response = response
        self.seconds = seconds

    def __repr__(self) -> str:
        headers = {k: v for k, v in self.response.headers.items() if k in ("X-Cache", "Retry-After",
                                                                          "Cache-Control")}
        return (f"<{self.label}: {self.response.status_code} in {self.seconds:.3f}s {headers} "
                f"{self.response.data[:200]!r}>")


def timed(app: Flask, method: str, path: str, label: str = "", **kwargs: Any) -> Timed:
    client = app.test_client()
    started = time.monotonic()
    response = client.open(path, method=method, **kwargs)
    return Timed(label or f"{method} {path}", response, time.monotonic() - started)


def assert_unavailable(result: Timed) -> None:
    """The contract's 503: JSON, Retry-After, never cached."""
    response = result.response
    assert response.status_code == 503, result
    assert response.headers["Cache-Control"] == "no-store", result
    assert int(response.headers["Retry-After"]) > 0, result
    assert response.get_json()["error"] == "unavailable", result


def assert_fresh(result: Timed, right: bytes) -> None:
    assert result.response.status_code == 200, result
    assert result.response.headers["X-Cache"] in ("HIT", "MISS"), result
    assert result.response.data == right, result


def assert_stale(result: Timed, right: bytes) -> None:
    assert result.response.status_code == 200, result
    assert result.response.headers["X-Cache"] == "STALE", result
    assert result.response.data == right, result


def assert_within(result: Timed, bound_s: float) -> None:
    assert result.seconds <= bound_s, f"{result} took longer than {bound_s:.2f}s"


def product_document(product_id: int, title: str) -> dict[str, Any]:
    """A demo product's document under a new title (what an admin PUT of it sends)."""
    from storefront.demo import demo_products

    for document in demo_products(SHOP):
        if document["id"] == product_id:
            return {**document, "title": title}
    raise KeyError(product_id)
