"""The Store on SQL: shared queries in SQLStore, dialect differences in SQLiteStore and MySQLStore."""

from __future__ import annotations

import contextlib
import datetime
import importlib.resources
import json
import logging
import os
import re
import sqlite3
import threading
import time
import weakref
from collections.abc import Callable, Iterator, Sequence
from importlib.resources.abc import Traversable
from typing import Any, TypeVar
from urllib.parse import quote, unquote, urlsplit

import pymysql
from pymysql.constants import SERVER_STATUS

from storefront import per_process
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

log = logging.getLogger(__name__)

T = TypeVar("T")

# Longest values the VARCHAR columns take. Checked here so that both engines refuse the same
# input the same way (SQLite would store anything; strict MySQL would raise a DataError).
KEY_MAX_CHARS = 255
SHOP_FIELD_MAX_CHARS = {"name": 255, "currency": 16, "money_format": 255, "default_locale": 35}
# handle and title are copies of the document's fields, for people reading the table.
PRODUCT_LABEL_MAX_CHARS = 255
# Shopify ids are positive and fit a signed BIGINT.
MAX_PRODUCT_ID = (1 << 63) - 1

# A migration may wait for another process's migration and may run long DDL: it gets a
# connection of its own with these limits instead of the request timeouts.
MIGRATE_TIMEOUT_S = 300
MIGRATE_LOCK_WAIT_S = 120

# Each thread keeps its connection from one request to the next: opening one costs several round
# trips (a millisecond or more on MySQL, half of one on SQLite), more than a whole widget lookup.
# One older than this is replaced at its next use, so no session lives forever and connections
# spread again over a server that was restarted or failed over ...
CONNECTION_MAX_AGE_S = 300.0
# ... and one unused for longer than this too: a firewall or load balancer may have dropped it
# silently, and the first query on it would wait out the whole read timeout to find out.
CONNECTION_MAX_IDLE_S = 60.0
# At most this many connections kept by one thread, across every store; past it the one used least
# recently is closed. A serving thread needs one or two (primary, replica). The bound is for threads
# that meet many stores (tests, scripts building apps): a store dropped in a reference cycle would
# keep its connection open until the garbage collector got to it, thousands of them in a test run.
MAX_CONNECTIONS_PER_THREAD = 8

_MIGRATION_FILE = re.compile(r"^(\d{4})_([a-z0-9_]+?)(?:\.(sqlite|mysql))?\.sql$")
_STATEMENT_END = re.compile(r";[ \t]*(?:\n|$)")
_INT_DISPLAY_WIDTH = re.compile(r"^(tinyint|smallint|mediumint|int|bigint)\(\d+\)")

# The bookkeeping table the runner needs before it can read which migrations are applied.
_SCHEMA_MIGRATIONS_DDL = """
CREATE TABLE IF NOT EXISTS schema_migrations (
    name VARCHAR(255) NOT NULL,
    applied_at CHAR(20) NOT NULL,
    PRIMARY KEY (name)
) /*! ENGINE=InnoDB DEFAULT CHARSET=utf8mb4 COLLATE=utf8mb4_bin */
"""

_SELECT_SHOP = (
    "SELECT shop, name, currency, money_format, default_locale, locales, version, created_at, updated_at"
    " FROM shops WHERE shop = ?"
)
_SELECT_PRODUCT = (
    "SELECT shop, product_id, document, version, updated_at FROM products WHERE shop = ? AND product_id = ?"
)
# The rows a widget render reads, all from one statement: one round trip, one snapshot.
_WIDGET_JOINS = (
    " FROM shops s"
    " LEFT JOIN products p ON p.shop = s.shop AND p.product_id = ?"
    " LEFT JOIN widgets w ON w.shop = s.shop AND w.kind = ?"
    " LEFT JOIN widget_versions v"
    " ON v.shop = w.shop AND v.kind = w.kind AND v.version = w.published_version"
    " WHERE s.shop = ?"
)
# A render's inputs: the shop (the columns of _SELECT_SHOP), the product and the published settings.
_SELECT_WIDGET_INPUTS = (
    "SELECT s.shop, s.name, s.currency, s.money_format, s.default_locale, s.locales, s.version,"
    " s.created_at, s.updated_at, p.product_id, p.document, p.version, p.updated_at,"
    " v.version, v.settings, v.published_at" + _WIDGET_JOINS
)
# The same with the versions first and the documents last, left undecoded (WidgetVersions):
# a cache key needs the versions only, and a render that follows the documents as read with them.
_SELECT_WIDGET_VERSIONS = (
    "SELECT s.shop, s.name, s.currency, s.money_format, s.default_locale, s.locales, s.version,"
    " s.created_at, s.updated_at, p.version, v.version, p.document, v.settings" + _WIDGET_JOINS
)
# Both for MySQL, their scalar columns packed into one JSON array (MySQLStore._widget_row).
_PACKED_SHOP = (
    "s.shop, s.name, s.currency, s.money_format, s.default_locale, s.version, s.created_at, s.updated_at"
)
_SELECT_WIDGET_INPUTS_PACKED = (
    f"SELECT JSON_ARRAY({_PACKED_SHOP}, p.product_id, p.version, p.updated_at, v.version, v.published_at),"
    " s.locales, p.document, v.settings" + _WIDGET_JOINS
)
_SELECT_WIDGET_VERSIONS_PACKED = (
    f"SELECT JSON_ARRAY({_PACKED_SHOP}, p.version, v.version), s.locales, p.document, v.settings"
    + _WIDGET_JOINS
)
_SELECT_WIDGET = (
    "SELECT w.draft, w.draft_updated_at, v.version, v.settings, v.published_at"
    " FROM widgets w LEFT JOIN widget_versions v"
    " ON v.shop = w.shop AND v.kind = w.kind AND v.version = w.published_version"
    " WHERE w.shop = ? AND w.kind = ?"
)


def utc_now() -> str:
    """Now as the stores write it: UTC, second precision, ``Z`` suffix."""
    return datetime.datetime.now(datetime.UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def dump_json(value: Any) -> str:
    # Compact and unescaped: what we store is what a person reading the table expects, and
    # NaN/Infinity are refused because they are not JSON that other readers accept.
    return json.dumps(value, ensure_ascii=False, separators=(",", ":"), allow_nan=False)


def _check_text(label: str, value: Any, max_chars: int) -> str:
    if not isinstance(value, str) or not value:
        raise ValueError(f"{label} must be a non-empty string")
    if len(value) > max_chars:
        raise ValueError(f"{label} must be at most {max_chars} characters")
    return value


def _check_kind(kind: Any) -> str:
    if kind not in WIDGET_KINDS:
        raise ValueError(f"kind must be one of {', '.join(WIDGET_KINDS)}")
    return kind


def _storable_product_id(product_id: Any) -> bool:
    """Whether a row could have this id; anything but an int is a programming error."""
    if isinstance(product_id, bool) or not isinstance(product_id, int):
        raise ValueError("product_id must be an integer")
    return 0 < product_id <= MAX_PRODUCT_ID


def _check_object(label: str, value: Any) -> dict[str, Any]:
    if not isinstance(value, dict):
        raise ValueError(f"{label} must be a JSON object (dict)")
    return value


def _shop_columns(fields: dict[str, Any]) -> tuple[str, str, str, str, str]:
    """name, currency, money_format, default_locale, locales (JSON) from the caller's fields.

    Other keys (``shop``, ``version``...) are ignored, so a validated body or a fixture entry
    can be passed as it is.
    """
    missing = [key for key in (*SHOP_FIELD_MAX_CHARS, "locales") if key not in fields]
    if missing:
        raise ValueError(f"shop fields missing: {', '.join(missing)}")
    values = [_check_text(key, fields[key], limit) for key, limit in SHOP_FIELD_MAX_CHARS.items()]
    locales = fields["locales"]
    if isinstance(locales, str) or not all(isinstance(locale, str) for locale in locales):
        raise ValueError("locales must be a list of strings")
    return values[0], values[1], values[2], values[3], dump_json(list(locales))


def _label(document: dict[str, Any], key: str) -> str:
    value = document.get(key)
    return value[:PRODUCT_LABEL_MAX_CHARS] if isinstance(value, str) else ""


def _text(value: Any) -> str:
    # Some MySQL versions hand information_schema values back as bytes.
    return value.decode("utf-8") if isinstance(value, bytes | bytearray) else str(value)


def _normal_type(declared: str) -> str:
    return _INT_DISPLAY_WIDTH.sub(r"\1", declared.strip().lower())


def _normal_rule(rule: str) -> str:
    # MySQL reports an unspecified ON DELETE as RESTRICT, SQLite as NO ACTION: the same thing here.
    rule = rule.strip().lower()
    return "restrict" if rule == "no action" else rule


def split_statements(script: str) -> list[str]:
    """The statements of a migration file (see the rules at the top of 0001_initial.sql)."""
    lines = [line for line in script.splitlines() if not line.lstrip().startswith("--")]
    statements = _STATEMENT_END.split("\n".join(lines))
    return [statement.strip() for statement in statements if statement.strip()]


def load_migrations(dialect: str, folder: Traversable | None = None) -> list[tuple[str, list[str]]]:
    """(name, statements) of every migration in ``folder`` (the package's), in order, for ``dialect``.

    ``NNNN_name.sql`` serves both engines; ``NNNN_name.sqlite.sql`` / ``NNNN_name.mysql.sql``
    replace it for one engine. Names are recorded without the dialect, so both variants of
    one migration count as the same step.
    """
    if folder is None:
        folder = importlib.resources.files("storefront.store").joinpath("migrations")
    variants: dict[str, dict[str | None, str]] = {}
    numbers: dict[str, str] = {}
    for entry in folder.iterdir():
        if not entry.name.endswith(".sql"):
            continue
        match = _MIGRATION_FILE.match(entry.name)
        if match is None:
            # Skipping it would silently leave a table out of the schema.
            raise ValueError(f"migration file {entry.name!r} is not named NNNN_name[.sqlite|.mysql].sql")
        number, label, file_dialect = match.groups()
        name = f"{number}_{label}"
        if numbers.setdefault(number, name) != name:
            raise ValueError(f"two migrations are numbered {number}: {numbers[number]}, {name}")
        variants.setdefault(name, {})[file_dialect] = entry.read_text(encoding="utf-8")
    migrations = []
    for name in sorted(variants):
        script = variants[name].get(dialect, variants[name].get(None))
        if script is None:
            raise ValueError(f"migration {name} has no {dialect} file ({name}.sql or {name}.{dialect}.sql)")
        migrations.append((name, split_statements(script)))
    return migrations


class Transaction:
    """One transaction's statements on one connection; SQL is written with ``?`` placeholders."""

    def __init__(self, cursor: Any, translate: Callable[[str], str]) -> None:
        self._cursor = cursor
        self._translate = translate

    def _execute(self, sql: str, params: tuple[Any, ...]) -> None:
        # Without parameters the SQL goes as it is (PyMySQL would otherwise %-format it).
        if params:
            self._cursor.execute(self._translate(sql), params)
        else:
            self._cursor.execute(self._translate(sql))

    def run(self, sql: str, *params: Any) -> int:
        self._execute(sql, params)
        return self._cursor.rowcount

    def one(self, sql: str, *params: Any) -> tuple[Any, ...] | None:
        self._execute(sql, params)
        return self._cursor.fetchone()

    def all(self, sql: str, *params: Any) -> list[tuple[Any, ...]]:
        self._execute(sql, params)
        return list(self._cursor.fetchall())


def _close_connection(connection: Any, pid: int) -> None:
    # A connection inherited through fork() belongs to the parent: closing it here would end the
    # parent's session (MySQL's QUIT) or let SQLite clean up files the parent still uses.
    if os.getpid() == pid:
        with contextlib.suppress(Exception):
            connection.close()


# Weak references to the connections this thread keeps, whichever store they belong to.
_thread_connections = threading.local()


def _keep_for_this_thread(held: _Held) -> None:
    kept = []
    for ref in getattr(_thread_connections, "refs", ()):
        other = ref()
        if other is not None and other.finalizer.alive:
            kept.append(other)
    if len(kept) >= MAX_CONNECTIONS_PER_THREAD:
        # This thread is here, so none of them is in use: the least recently used one goes.
        oldest = min(kept, key=lambda other: other.used)
        kept.remove(oldest)
        oldest.finalizer()
    kept.append(held)
    _thread_connections.refs = [weakref.ref(other) for other in kept]


class _Held:
    """A thread's open connection, and what decides whether it may serve the next call."""

    __slots__ = ("connection", "pid", "identity", "opened", "used", "finalizer", "__weakref__")

    def __init__(self, connection: Any, pid: int, identity: Any) -> None:
        self.connection = connection
        self.pid = pid
        self.identity = identity
        # When it was opened, and last handed to a caller.
        self.opened = self.used = time.monotonic()
        # Closes the connection once, whichever comes first: close() or close_all(), the end of its
        # thread (which drops the thread's locals, so this record), the store going away, or the
        # interpreter's exit (a gunicorn worker stopping).
        self.finalizer = weakref.finalize(self, _close_connection, connection, pid)


class SQLStore(Store):
    """Every query, transaction and retry rule, once; subclasses supply the dialect."""

    dialect: str = ""
    # Appended to SELECTs that must lock the rows they read until commit ("" where the
    # transaction already holds the database's write lock).
    for_update: str = ""
    # Whether a failed connect is retried once (a failed transaction: see _is_retryable).
    reconnects: bool = False

    def __init__(self, timeout_s: int, *, max_age_s: float = CONNECTION_MAX_AGE_S,
                 max_idle_s: float = CONNECTION_MAX_IDLE_S) -> None:
        if isinstance(timeout_s, bool) or not isinstance(timeout_s, int) or timeout_s < 1:
            raise ValueError("timeout_s must be a whole number of seconds, at least 1")
        self.timeout_s = timeout_s
        self.max_age_s = max_age_s
        self.max_idle_s = max_idle_s
        self._local = threading.local()
        # Every thread's connection (weakly: a thread's locals own it), for close_all().
        self._all: weakref.WeakSet[_Held] = weakref.WeakSet()
        self._all_lock = threading.Lock()

    # -- dialect hooks -------------------------------------------------------------------
    def _connect(self, *, migrating: bool = False) -> Any:
        """A new DB-API connection (autocommit off, or managed by :meth:`_begin`)."""
        raise NotImplementedError

    def _begin(self, connection: Any, write: bool) -> None:
        """Start a transaction; ``write`` ones must serialise against other writers."""
        raise NotImplementedError

    def _translate(self, sql: str) -> str:
        return sql

    def _upsert(self, key: Sequence[str]) -> str:
        """The clause after ``INSERT ... VALUES (...)`` that turns it into ``... SET``-style update
        assignments on a duplicate ``key``. Unqualified columns in them mean the stored row."""
        raise NotImplementedError

    def _ignore_duplicate(self, key: Sequence[str]) -> str:
        """The clause after ``INSERT ... VALUES (...)`` that skips a duplicate ``key`` (rowcount 0)."""
        raise NotImplementedError

    def _is_driver_error(self, error: BaseException) -> bool:
        raise NotImplementedError

    def _is_data_error(self, error: BaseException) -> bool:
        """Constraint or data errors: the request's fault or ours, not the database's health."""
        raise NotImplementedError

    def _is_foreign_key_error(self, error: BaseException) -> bool:
        raise NotImplementedError

    def _is_lost_connection(self, error: BaseException) -> bool:
        """The connection is unusable (and must be thrown away)."""
        return False

    def _in_transaction(self, connection: Any) -> bool:
        """Whether ``connection`` is inside a transaction (known locally, no round trip)."""
        raise NotImplementedError

    def _identity(self) -> Any:
        """What the database is now, where it can change under an open connection (a file replaced)."""
        return None

    def _is_retryable(self, error: BaseException) -> bool:
        """The failed transaction certainly changed nothing and may succeed if run once more."""
        return False

    @contextlib.contextmanager
    def _migration_lock(self, connection: Any) -> Iterator[None]:
        yield

    def _schema_facts(self, tx: Transaction) -> _SchemaFacts:
        raise NotImplementedError

    # -- connections and transactions ----------------------------------------------------
    def _thread_connection(self) -> _Held:
        """This thread's open connection, reused across requests; a new one when there is none usable."""
        held: _Held | None = getattr(self._local, "held", None)
        if held is not None:
            if held.pid != per_process.pid:
                # Inherited through fork(): it belongs to the parent, never use or close it here.
                held.finalizer.detach()
                self._local.held = held = None
            elif not held.finalizer.alive:
                self._local.held = held = None  # closed by close_all()
            else:
                now = time.monotonic()
                if (now - held.opened <= self.max_age_s and now - held.used <= self.max_idle_s
                        and self._identity() == held.identity):
                    held.used = now
                    return held
                self._discard_connection()
        # Taken before connecting: a file replaced in between then shows as changed, never the reverse.
        identity = self._identity()
        held = _Held(self._connect(), per_process.pid, identity)
        with self._all_lock:
            self._all.add(held)
        _keep_for_this_thread(held)
        self._local.held = held
        return held

    def _discard_connection(self) -> None:
        held: _Held | None = getattr(self._local, "held", None)
        self._local.held = None
        if held is not None:
            held.finalizer()  # closes it (never one inherited through fork: see _close_connection)

    def close(self) -> None:
        self._discard_connection()

    def release(self) -> None:
        held: _Held | None = getattr(self._local, "held", None)
        if held is None or held.pid != per_process.pid or not held.finalizer.alive:
            return
        # _run always ends its transaction; a connection still in one would hold a stale snapshot
        # (and its locks) into the next request, so it is not kept.
        try:
            in_transaction = self._in_transaction(held.connection)
        except Exception:
            in_transaction = True
        if in_transaction:
            log.warning("%s connection left in a transaction: closed", self.dialect)
            self._discard_connection()

    def close_all(self) -> None:
        with self._all_lock:
            every = list(self._all)
        for held in every:
            held.finalizer()
        self._local.held = None

    def _store_error(self, error: BaseException) -> StoreError:
        if self._is_data_error(error):
            return StoreError(f"{self.dialect} refused the change: {error}")
        return StoreUnavailable(f"{self.dialect} database unavailable: {error}")

    def _run(self, work: Callable[[Transaction], T], *, write: bool, one_statement: bool = False) -> T:
        """Run ``work`` in one transaction on this thread's connection: commit, or change nothing.

        ``one_statement``: a read of a single statement, which runs as its own transaction (one
        round trip, no BEGIN or COMMIT) and sees everything committed before it.

        A lost connection is retried once on a fresh one when that is safe: always for reads,
        and for writes only if COMMIT was never sent (the server rolled the transaction back).
        """
        in_transaction = write or not one_statement
        for attempt in (1, 2):
            try:
                held = self._thread_connection()
            except Exception as error:
                if not self._is_driver_error(error):
                    raise
                self._discard_connection()
                if attempt == 1 and self.reconnects:
                    log.warning("%s connect failed, retrying once: %s", self.dialect, error)
                    continue
                raise StoreUnavailable(f"{self.dialect} database unavailable: {error}") from error
            connection = held.connection
            committing = False
            try:
                if in_transaction:
                    self._begin(connection, write)
                cursor = connection.cursor()
                try:
                    result = work(Transaction(cursor, self._translate))
                finally:
                    # Closed at once: an unfinished SQLite statement would keep its read snapshot.
                    cursor.close()
                if in_transaction:
                    committing = True
                    connection.commit()
                return result
            except BaseException as error:
                driver_error = self._is_driver_error(error)
                if not isinstance(error, Exception) or (driver_error and not self._is_data_error(error)):
                    # Lost, timed out, interrupted mid-protocol or otherwise unhealthy: a new
                    # connection is cheaper than trusting this one with the next request.
                    self._discard_connection()
                else:
                    try:
                        connection.rollback()
                    except Exception:
                        self._discard_connection()
                if not driver_error:
                    raise
                safe = not (write and committing)
                if attempt == 1 and safe and self._is_retryable(error):
                    log.warning("%s operation failed, retrying once: %s", self.dialect, error)
                    continue
                raise self._store_error(error) from error
        raise AssertionError("unreachable")  # pragma: no cover

    # -- schema --------------------------------------------------------------------------
    def migrate(self) -> list[str]:
        migrations = load_migrations(self.dialect)
        for attempt in (1, 2):
            try:
                connection = self._connect(migrating=True)
            except Exception as error:
                if not self._is_driver_error(error):
                    raise
                if attempt == 1 and self.reconnects:
                    continue
                raise StoreUnavailable(f"{self.dialect} database unavailable: {error}") from error
            try:
                return self._apply_migrations(connection, migrations)
            except Exception as error:
                if self._is_driver_error(error):
                    raise self._store_error(error) from error
                raise
            finally:
                with contextlib.suppress(Exception):
                    connection.rollback()
                with contextlib.suppress(Exception):
                    connection.close()
        raise AssertionError("unreachable")  # pragma: no cover

    def _apply_migrations(self, connection: Any, migrations: list[tuple[str, list[str]]]) -> list[str]:
        applied = []
        with self._migration_lock(connection):
            cursor = connection.cursor()
            cursor.execute(_SCHEMA_MIGRATIONS_DDL)
            connection.commit()
            tx = Transaction(cursor, self._translate)
            for name, statements in migrations:
                # Each file in its own transaction, re-checked under the lock: another process
                # may have applied it while this one waited.
                self._begin(connection, True)
                if tx.one("SELECT name FROM schema_migrations WHERE name = ?", name) is not None:
                    connection.rollback()
                    continue
                log.info("applying migration %s", name)
                for statement in statements:
                    cursor.execute(statement)
                tx.run("INSERT INTO schema_migrations (name, applied_at) VALUES (?, ?)", name, utc_now())
                connection.commit()
                applied.append(name)
        return applied

    def ping(self) -> None:
        self._run(lambda tx: tx.one("SELECT 1"), write=False, one_statement=True)

    def schema_description(self) -> list[str]:
        """Tables, columns, primary keys, indexes and foreign keys as sorted, engine-neutral lines.

        Two databases migrated to the same point describe themselves identically, whichever
        engine they run on.
        """
        facts = self._run(self._schema_facts, write=False)
        lines = [f"table {table}" for table in facts.tables]
        for table, column, declared, nullable in facts.columns:
            null = "null" if nullable else "not null"
            lines.append(f"column {table}.{column} {_normal_type(declared)} {null}")
        for table, columns in facts.primary_keys.items():
            lines.append(f"primary key {table} ({', '.join(columns)})")
        for table, name, unique, columns in facts.indexes:
            lines.append(f"{'unique ' if unique else ''}index {table}.{name} ({', '.join(columns)})")
        for table, columns, parent, parent_columns, on_delete in facts.foreign_keys:
            lines.append(
                f"foreign key {table} ({', '.join(columns)})"
                f" references {parent} ({', '.join(parent_columns)}) on delete {_normal_rule(on_delete)}"
            )
        return sorted(lines)

    # -- shops ---------------------------------------------------------------------------
    @staticmethod
    def _shop_record(row: Sequence[Any]) -> Shop:
        """A Shop from the columns of _SELECT_SHOP (the first nine of _SELECT_WIDGET_INPUTS)."""
        return Shop(
            shop=row[0], name=row[1], currency=row[2], money_format=row[3], default_locale=row[4],
            locales=tuple(json.loads(row[5])), version=int(row[6]), created_at=row[7], updated_at=row[8],
        )

    @classmethod
    def _read_shop(cls, tx: Transaction, shop: str) -> Shop | None:
        row = tx.one(_SELECT_SHOP, shop)
        return None if row is None else cls._shop_record(row)

    def get_shop(self, shop: str) -> Shop | None:
        return self._run(lambda tx: self._read_shop(tx, shop), write=False, one_statement=True)

    def put_shop(self, shop: str, fields: dict[str, Any]) -> tuple[Shop, bool]:
        _check_text("shop", shop, KEY_MAX_CHARS)
        columns = _shop_columns(fields)
        now = utc_now()
        sql = (
            "INSERT INTO shops (shop, name, currency, money_format, default_locale, locales, version,"
            " created_at, updated_at) VALUES (?, ?, ?, ?, ?, ?, 1, ?, ?) "
            + self._upsert(("shop",))
            + " name = ?, currency = ?, money_format = ?, default_locale = ?, locales = ?,"
            " version = version + 1, updated_at = ?"
        )

        def work(tx: Transaction) -> tuple[Shop, bool]:
            tx.run(sql, shop, *columns, now, now, *columns, now)
            record = self._read_shop(tx, shop)
            assert record is not None
            # The row is ours until commit: version 1 means this statement inserted it,
            # since an update always leaves version >= 2.
            return record, record.version == 1

        return self._run(work, write=True)

    def delete_shop(self, shop: str) -> bool:
        # Products, widgets and (through widgets) widget versions go with it: ON DELETE CASCADE.
        return self._run(lambda tx: tx.run("DELETE FROM shops WHERE shop = ?", shop) > 0, write=True)

    @staticmethod
    def _require_shop(tx: Transaction, shop: str) -> None:
        if tx.one("SELECT shop FROM shops WHERE shop = ?", shop) is None:
            raise NotFound(f"shop {shop!r} does not exist")

    def _insert_under_shop(self, tx: Transaction, shop: str, sql: str, *params: Any) -> None:
        self._require_shop(tx, shop)
        try:
            tx.run(sql, *params)
        except Exception as error:
            # The shop was deleted between the check and the insert: the foreign key says so.
            if self._is_driver_error(error) and self._is_foreign_key_error(error):
                raise NotFound(f"shop {shop!r} does not exist") from error
            raise

    # -- products ------------------------------------------------------------------------
    @staticmethod
    def _read_product(tx: Transaction, shop: str, product_id: int) -> Product | None:
        row = tx.one(_SELECT_PRODUCT, shop, product_id)
        if row is None:
            return None
        return Product(
            shop=row[0], product_id=int(row[1]), document=json.loads(row[2]), version=int(row[3]),
            updated_at=row[4],
        )

    def get_product(self, shop: str, product_id: int) -> Product | None:
        if not _storable_product_id(product_id):
            return None  # e.g. ?product=0: simply not there, on both engines
        return self._run(lambda tx: self._read_product(tx, shop, product_id), write=False, one_statement=True)

    def put_product(self, shop: str, product_id: int, document: dict[str, Any]) -> tuple[Product, bool]:
        if not _storable_product_id(product_id):
            raise ValueError("product_id must be a positive 64-bit integer")
        text = dump_json(_check_object("document", document))
        handle, title = _label(document, "handle"), _label(document, "title")
        now = utc_now()
        sql = (
            "INSERT INTO products (shop, product_id, handle, title, document, version, updated_at)"
            " VALUES (?, ?, ?, ?, ?, 1, ?) "
            + self._upsert(("shop", "product_id"))
            + " handle = ?, title = ?, document = ?, version = version + 1, updated_at = ?"
        )

        def work(tx: Transaction) -> tuple[Product, bool]:
            self._insert_under_shop(tx, shop, sql, shop, product_id, handle, title, text, now,
                                    handle, title, text, now)
            record = self._read_product(tx, shop, product_id)
            assert record is not None
            return record, record.version == 1  # see put_shop

        return self._run(work, write=True)

    def delete_product(self, shop: str, product_id: int) -> bool:
        if not _storable_product_id(product_id):
            return False
        return self._run(
            lambda tx: tx.run("DELETE FROM products WHERE shop = ? AND product_id = ?", shop, product_id) > 0,
            write=True,
        )

    def list_product_ids(self, shop: str) -> list[int]:
        rows = self._run(
            lambda tx: tx.all("SELECT product_id FROM products WHERE shop = ? ORDER BY product_id", shop),
            write=False, one_statement=True,
        )
        return [int(row[0]) for row in rows]

    # -- widgets -------------------------------------------------------------------------
    @staticmethod
    def _read_widget(tx: Transaction, shop: str, kind: str) -> WidgetState:
        row = tx.one(_SELECT_WIDGET, shop, kind)
        if row is None:
            return WidgetState(shop=shop, kind=kind, draft=None, draft_updated_at=None, published=None)
        draft, draft_updated_at, version, settings, published_at = row
        published = None
        if version is not None:
            published = PublishedVersion(version=int(version), settings=json.loads(settings),
                                         published_at=published_at)
        return WidgetState(
            shop=shop, kind=kind, draft=None if draft is None else json.loads(draft),
            draft_updated_at=draft_updated_at, published=published,
        )

    def get_widget(self, shop: str, kind: str) -> WidgetState:
        _check_kind(kind)
        return self._run(lambda tx: self._read_widget(tx, shop, kind), write=False, one_statement=True)

    def _widget_row(
        self, shop: str, kind: str, product_id: int | None, inputs: bool
    ) -> Sequence[Any] | None:
        """The row of _SELECT_WIDGET_INPUTS (``inputs``) or of _SELECT_WIDGET_VERSIONS."""
        _check_kind(kind)
        # An id no row can have matches nothing, like no id at all (NULL never equals anything).
        wanted = product_id if product_id is not None and _storable_product_id(product_id) else None
        sql = _SELECT_WIDGET_INPUTS if inputs else _SELECT_WIDGET_VERSIONS
        return self._run(lambda tx: tx.one(sql, wanted, kind, shop), write=False, one_statement=True)

    def get_widget_inputs(self, shop: str, kind: str, product_id: int | None) -> WidgetInputs:
        row = self._widget_row(shop, kind, product_id, inputs=True)
        if row is None:
            return WidgetInputs(None, None, None)
        record = self._shop_record(row)
        product = None
        if row[9] is not None:
            product = Product(shop=row[0], product_id=int(row[9]), document=json.loads(row[10]),
                              version=int(row[11]), updated_at=row[12])
        published = None
        if row[13] is not None:
            published = PublishedVersion(version=int(row[13]), settings=json.loads(row[14]),
                                         published_at=row[15])
        return WidgetInputs(record, product, published)

    def get_widget_versions(self, shop: str, kind: str, product_id: int | None) -> WidgetVersions:
        row = self._widget_row(shop, kind, product_id, inputs=False)
        if row is None:
            return WidgetVersions(None, None, None)
        return WidgetVersions(self._shop_record(row), None if row[9] is None else int(row[9]),
                              None if row[10] is None else int(row[10]), (row[11], row[12]))

    def put_draft(self, shop: str, kind: str, settings: dict[str, Any]) -> WidgetState:
        _check_kind(kind)
        text = dump_json(_check_object("settings", settings))
        now = utc_now()
        sql = (
            "INSERT INTO widgets (shop, kind, draft, draft_updated_at, published_version)"
            " VALUES (?, ?, ?, ?, NULL) "
            + self._upsert(("shop", "kind"))
            + " draft = ?, draft_updated_at = ?"
        )

        def work(tx: Transaction) -> WidgetState:
            self._insert_under_shop(tx, shop, sql, shop, kind, text, now, text, now)
            return self._read_widget(tx, shop, kind)

        return self._run(work, write=True)

    def _append_version(self, tx: Transaction, shop: str, kind: str, settings: str) -> int:
        # Called with the widgets row locked (or the database's write lock held), so no other
        # transaction can be computing the same next number.
        row = tx.one(
            "SELECT COALESCE(MAX(version), 0) FROM widget_versions WHERE shop = ? AND kind = ?"
            + self.for_update,
            shop, kind,
        )
        version = int(row[0]) + 1 if row is not None else 1
        tx.run(
            "INSERT INTO widget_versions (shop, kind, version, settings, published_at)"
            " VALUES (?, ?, ?, ?, ?)",
            shop, kind, version, settings, utc_now(),
        )
        tx.run("UPDATE widgets SET published_version = ? WHERE shop = ? AND kind = ?", version, shop, kind)
        return version

    def publish(self, shop: str, kind: str) -> int:
        _check_kind(kind)

        def work(tx: Transaction) -> int:
            row = tx.one(
                "SELECT draft FROM widgets WHERE shop = ? AND kind = ?" + self.for_update, shop, kind
            )
            if row is None or row[0] is None:
                self._require_shop(tx, shop)
                raise Conflict(f"the {kind} widget of {shop!r} has no draft to publish")
            return self._append_version(tx, shop, kind, row[0])

        return self._run(work, write=True)

    def rollback(self, shop: str, kind: str, version: int) -> int:
        _check_kind(kind)
        if isinstance(version, bool) or not isinstance(version, int):
            raise ValueError("version must be an integer")

        def work(tx: Transaction) -> int:
            locked = tx.one(
                "SELECT kind FROM widgets WHERE shop = ? AND kind = ?" + self.for_update, shop, kind
            )
            row = None if locked is None else tx.one(
                "SELECT settings FROM widget_versions WHERE shop = ? AND kind = ? AND version = ?",
                shop, kind, version,
            )
            if row is None:
                raise NotFound(f"the {kind} widget of {shop!r} has no version {version}")
            return self._append_version(tx, shop, kind, row[0])

        return self._run(work, write=True)

    def list_versions(self, shop: str, kind: str) -> list[PublishedVersion]:
        _check_kind(kind)
        rows = self._run(
            lambda tx: tx.all(
                "SELECT version, settings, published_at FROM widget_versions"
                " WHERE shop = ? AND kind = ? ORDER BY version",
                shop, kind,
            ),
            write=False, one_statement=True,
        )
        return [PublishedVersion(version=int(v), settings=json.loads(s), published_at=p) for v, s, p in rows]

    # -- webhooks ------------------------------------------------------------------------
    def record_webhook(self, webhook_id: str) -> bool:
        _check_text("webhook_id", webhook_id, KEY_MAX_CHARS)
        sql = (
            "INSERT INTO webhooks (webhook_id, processed_at) VALUES (?, ?) "
            + self._ignore_duplicate(("webhook_id",))
        )
        return self._run(lambda tx: tx.run(sql, webhook_id, utc_now()) == 1, write=True)


class _SchemaFacts:
    """What schema_description() formats, as each engine's catalogue reports it."""

    def __init__(self) -> None:
        self.tables: list[str] = []
        # (table, column, declared type, nullable)
        self.columns: list[tuple[str, str, str, bool]] = []
        self.primary_keys: dict[str, tuple[str, ...]] = {}
        # (table, index name, unique, columns) for indexes other than the primary key
        self.indexes: list[tuple[str, str, bool, tuple[str, ...]]] = []
        # (table, columns, parent table, parent columns, on delete)
        self.foreign_keys: list[tuple[str, tuple[str, ...], str, tuple[str, ...], str]] = []


class SQLiteStore(SQLStore):
    """SQLite through the standard library: WAL, foreign keys on, a busy timeout, BEGIN IMMEDIATE writes."""

    dialect = "sqlite"

    def __init__(self, path: str, timeout_s: int = 2) -> None:
        super().__init__(timeout_s)
        if not path or path == ":memory:" or path.startswith("file:"):
            # Every thread has its own connection: an in-memory database would be a different,
            # empty one in each.
            raise ValueError("SQLiteStore needs a file path")
        self.path = path

    def __repr__(self) -> str:
        return f"SQLiteStore({self.path!r})"

    def _connect(self, *, migrating: bool = False) -> sqlite3.Connection:
        # isolation_level=None: the module never opens transactions behind our back;
        # _begin() says which kind each one is.
        timeout = MIGRATE_LOCK_WAIT_S if migrating else self.timeout_s
        if migrating:
            connection = sqlite3.connect(self.path, timeout=timeout, isolation_level=None)
        else:
            # mode=rw: a missing file is an unavailable database, not a new empty one that would
            # pass the readiness check while every query fails. Only migrate() creates the file.
            # check_same_thread off: one thread uses it, but close_all() or the end of its thread
            # may close it from another.
            uri = f"file:{quote(os.path.abspath(self.path))}?mode=rw"
            connection = sqlite3.connect(uri, timeout=timeout, isolation_level=None, uri=True,
                                         check_same_thread=False)
        try:
            self._use_wal(connection, timeout)
            # Durable at every checkpoint and safe from corruption; commits skip an fsync.
            connection.execute("PRAGMA synchronous = NORMAL")
            connection.execute("PRAGMA foreign_keys = ON")
            # Each thread keeps its connection, and each connection its page cache (2 MiB by
            # default): a worker's threads would hold several MiB outside the in-process budget.
            # 256 KiB each is plenty: the operating system caches the file anyway, and a lookup
            # touches a handful of pages.
            connection.execute("PRAGMA cache_size = -256")
        except BaseException:
            connection.close()
            raise
        return connection

    @staticmethod
    def _use_wal(connection: sqlite3.Connection, timeout: float) -> None:
        # WAL lets readers carry on while one writer commits. The switch is recorded in the file,
        # so it happens once; but SQLite does not wait on the busy timeout for it, and connections
        # racing to a fresh file get "database is locked": wait for the winner here instead.
        deadline = time.monotonic() + timeout
        while True:
            try:
                connection.execute("PRAGMA journal_mode = WAL").fetchall()
                return
            except sqlite3.OperationalError as error:
                if "locked" not in str(error) or time.monotonic() > deadline:
                    raise
            time.sleep(0.01)

    def _begin(self, connection: Any, write: bool) -> None:
        # IMMEDIATE takes the write lock up front: writers queue on the busy timeout instead of
        # failing to upgrade a read lock mid-transaction, and publish numbers stay gap-free.
        connection.execute("BEGIN IMMEDIATE" if write else "BEGIN")

    def _in_transaction(self, connection: Any) -> bool:
        return bool(connection.in_transaction)

    def _identity(self) -> Any:
        # A kept connection holds the file it opened: one moved away, deleted or replaced (a restore)
        # must not go on serving the old file's data, so a changed file means a new connection.
        try:
            found = os.stat(self.path)
        except OSError:
            return None
        return found.st_dev, found.st_ino

    def _upsert(self, key: Sequence[str]) -> str:
        return f"ON CONFLICT ({', '.join(key)}) DO UPDATE SET"

    def _ignore_duplicate(self, key: Sequence[str]) -> str:
        return f"ON CONFLICT ({', '.join(key)}) DO NOTHING"

    def _is_driver_error(self, error: BaseException) -> bool:
        return isinstance(error, sqlite3.Error)

    def _is_data_error(self, error: BaseException) -> bool:
        return isinstance(error, sqlite3.IntegrityError | sqlite3.DataError)

    def _is_foreign_key_error(self, error: BaseException) -> bool:
        return isinstance(error, sqlite3.IntegrityError) and "FOREIGN KEY" in str(error)

    def _schema_facts(self, tx: Transaction) -> _SchemaFacts:
        facts = _SchemaFacts()
        facts.tables = [
            row[0]
            for row in tx.all(
                "SELECT name FROM sqlite_master"
                " WHERE type = 'table' AND name NOT LIKE 'sqlite\\_%' ESCAPE '\\'"
            )
        ]
        for table in facts.tables:
            quoted = '"' + table.replace('"', '""') + '"'
            key: list[tuple[int, str]] = []
            for _cid, column, declared, notnull, _default, pk in tx.all(f"PRAGMA table_info({quoted})"):
                facts.columns.append((table, column, declared, not notnull))
                if pk:
                    key.append((pk, column))
            if key:
                facts.primary_keys[table] = tuple(column for _, column in sorted(key))
            for _seq, name, unique, origin, _partial in tx.all(f"PRAGMA index_list({quoted})"):
                if origin == "pk":
                    continue
                columns = tuple(row[2] for row in tx.all(f"PRAGMA index_info(\"{name}\")"))
                facts.indexes.append((table, name, bool(unique), columns))
            groups: dict[int, list[tuple[Any, ...]]] = {}
            for row in tx.all(f"PRAGMA foreign_key_list({quoted})"):
                groups.setdefault(row[0], []).append(row)
            for rows in groups.values():
                rows.sort(key=lambda row: row[1])
                facts.foreign_keys.append(
                    (table, tuple(r[3] for r in rows), rows[0][2], tuple(r[4] for r in rows), rows[0][6])
                )
        return facts


# Client error codes of a connection that is gone: server has gone away, lost connection
# during query (also a read timeout), lost connection at handshake, can't connect.
_MYSQL_LOST = {2006, 2013, 2055, 2003, 2002}
# The server rolled the whole transaction back: running it again is safe.
_MYSQL_DEADLOCK = 1213


def _mysql_code(error: BaseException) -> int | None:
    code = error.args[0] if error.args else None
    return code if isinstance(code, int) else None


class MySQLStore(SQLStore):
    """MySQL or MariaDB through PyMySQL: utf8mb4, InnoDB, SELECT ... FOR UPDATE, one reconnect."""

    dialect = "mysql"
    for_update = " FOR UPDATE"
    reconnects = True

    def __init__(self, url: str, timeout_s: int = 2) -> None:
        super().__init__(timeout_s)
        parts = urlsplit(url)
        if parts.scheme != "mysql" or not parts.hostname or not parts.path.strip("/"):
            raise ValueError("MySQL URL must look like mysql://user:pass@host:port/db")
        if parts.fragment or parts.query not in ("", "ssl=true", "ssl=false"):
            raise ValueError("MySQL URL takes no fragment and no query but ssl=true or ssl=false")
        # TLS only when asked for: PyMySQL otherwise builds a TLS context on every connect (tens of
        # milliseconds of CPU), which each thread pays when it opens or replaces its connection.
        self.tls = parts.query == "ssl=true"
        self.host = parts.hostname
        self.port = parts.port or 3306
        self.user = unquote(parts.username) if parts.username else None
        self._password = unquote(parts.password) if parts.password else ""
        self.database = unquote(parts.path.strip("/"))

    def __repr__(self) -> str:
        # Never the password: stores end up in logs and tracebacks.
        return f"MySQLStore('mysql://{self.user or ''}@{self.host}:{self.port}/{self.database}')"

    def _connect(self, *, migrating: bool = False) -> pymysql.connections.Connection:
        io_timeout = MIGRATE_TIMEOUT_S if migrating else self.timeout_s
        # A lock wait gives up (error 1205, not retried) a second before the socket read timeout
        # would cut the connection (which would be retried and wait all over again).
        lock_wait = MIGRATE_LOCK_WAIT_S if migrating else max(1, self.timeout_s - 1)
        return pymysql.connect(
            host=self.host,
            port=self.port,
            user=self.user,
            password=self._password,
            database=self.database,
            charset="utf8mb4",
            # A kept connection must never sit in a transaction: with REPEATABLE READ it would keep
            # answering from an old snapshot. One-statement reads run on their own (see _run);
            # everything else opens a transaction with BEGIN and ends it.
            autocommit=True,
            connect_timeout=self.timeout_s,
            read_timeout=io_timeout,
            write_timeout=io_timeout,
            sql_mode="TRADITIONAL",
            ssl={} if self.tls else None,
            ssl_disabled=not self.tls,
            init_command=(
                f"SET SESSION innodb_lock_wait_timeout = {lock_wait}, SESSION lock_wait_timeout = {lock_wait}"
            ),
        )

    def _begin(self, connection: Any, write: bool) -> None:
        connection.begin()

    def _widget_row(
        self, shop: str, kind: str, product_id: int | None, inputs: bool
    ) -> Sequence[Any] | None:
        # PyMySQL decodes each result column's description in Python, about 10 us a column: more
        # than the rest of these queries' client time (sixteen columns: 350 against 190 us of CPU
        # with four). So MySQL sends the scalars as one JSON array, unpacked here into the same row.
        _check_kind(kind)
        wanted = product_id if product_id is not None and _storable_product_id(product_id) else None
        sql = _SELECT_WIDGET_INPUTS_PACKED if inputs else _SELECT_WIDGET_VERSIONS_PACKED
        row = self._run(lambda tx: tx.one(sql, wanted, kind, shop), write=False, one_statement=True)
        if row is None:
            return None
        packed, locales, document, settings = row
        if inputs:
            (*shop_fields, product_id, product_version, product_updated_at,
             published_version, published_at) = json.loads(packed)
            return (*shop_fields[:5], locales, *shop_fields[5:], product_id, document, product_version,
                    product_updated_at, published_version, settings, published_at)
        *shop_fields, product_version, published_version = json.loads(packed)
        return (*shop_fields[:5], locales, *shop_fields[5:], product_version, published_version, document,
                settings)

    def _in_transaction(self, connection: Any) -> bool:
        return bool(connection.server_status & SERVER_STATUS.SERVER_STATUS_IN_TRANS)

    def _translate(self, sql: str) -> str:
        return sql.replace("?", "%s")

    def _upsert(self, key: Sequence[str]) -> str:
        return "ON DUPLICATE KEY UPDATE"

    def _ignore_duplicate(self, key: Sequence[str]) -> str:
        # Not INSERT IGNORE, which would also turn other errors (too long, bad value) into warnings.
        # Assigning a column to itself changes nothing, so a duplicate reports 0 affected rows.
        return f"ON DUPLICATE KEY UPDATE {key[0]} = {key[0]}"

    def _is_driver_error(self, error: BaseException) -> bool:
        return isinstance(error, pymysql.err.MySQLError)

    def _is_data_error(self, error: BaseException) -> bool:
        return isinstance(error, pymysql.err.IntegrityError | pymysql.err.DataError)

    def _is_foreign_key_error(self, error: BaseException) -> bool:
        # ER_NO_REFERENCED_ROW_2: the parent row does not exist.
        return isinstance(error, pymysql.err.IntegrityError) and _mysql_code(error) == 1452

    def _is_lost_connection(self, error: BaseException) -> bool:
        if isinstance(error, pymysql.err.InterfaceError):
            return True  # PyMySQL's "(0, '')": the connection was already closed
        return isinstance(error, pymysql.err.OperationalError) and _mysql_code(error) in _MYSQL_LOST

    def _is_retryable(self, error: BaseException) -> bool:
        if self._is_lost_connection(error):
            return True
        return isinstance(error, pymysql.err.OperationalError) and _mysql_code(error) == _MYSQL_DEADLOCK

    @contextlib.contextmanager
    def _migration_lock(self, connection: Any) -> Iterator[None]:
        # A named lock per database, held by this session: a second migrator waits here and then
        # finds the files already recorded. Lock names are limited to 64 characters.
        name = f"storefront_migrate:{self.database}"[:64]
        with connection.cursor() as cursor:
            cursor.execute("SELECT GET_LOCK(%s, %s)", (name, MIGRATE_LOCK_WAIT_S))
            (got,) = cursor.fetchone()
        if got != 1:
            raise StoreUnavailable(f"mysql: another migration held {name!r} for over {MIGRATE_LOCK_WAIT_S}s")
        try:
            yield
        finally:
            with contextlib.suppress(pymysql.err.MySQLError), connection.cursor() as cursor:
                cursor.execute("SELECT RELEASE_LOCK(%s)", (name,))

    def _schema_facts(self, tx: Transaction) -> _SchemaFacts:
        facts = _SchemaFacts()
        facts.tables = [
            _text(row[0])
            for row in tx.all(
                "SELECT TABLE_NAME FROM information_schema.TABLES"
                " WHERE TABLE_SCHEMA = DATABASE() AND TABLE_TYPE = 'BASE TABLE'"
            )
        ]
        for table, column, declared, nullable in tx.all(
            "SELECT TABLE_NAME, COLUMN_NAME, COLUMN_TYPE, IS_NULLABLE FROM information_schema.COLUMNS"
            " WHERE TABLE_SCHEMA = DATABASE()"
        ):
            facts.columns.append((_text(table), _text(column), _text(declared), _text(nullable) == "YES"))
        indexes: dict[tuple[str, str], tuple[bool, list[str]]] = {}
        for table, name, non_unique, column in tx.all(
            "SELECT TABLE_NAME, INDEX_NAME, NON_UNIQUE, COLUMN_NAME FROM information_schema.STATISTICS"
            " WHERE TABLE_SCHEMA = DATABASE() ORDER BY TABLE_NAME, INDEX_NAME, SEQ_IN_INDEX"
        ):
            entry = indexes.setdefault((_text(table), _text(name)), (not int(non_unique), []))
            entry[1].append(_text(column))
        for (table, name), (unique, columns) in indexes.items():
            if name == "PRIMARY":
                facts.primary_keys[table] = tuple(columns)
            else:
                facts.indexes.append((table, name, unique, tuple(columns)))
        keys: dict[tuple[str, str], list[tuple[str, str, str, str]]] = {}
        for table, name, column, parent, parent_column, rule in tx.all(
            "SELECT k.TABLE_NAME, k.CONSTRAINT_NAME, k.COLUMN_NAME, k.REFERENCED_TABLE_NAME,"
            " k.REFERENCED_COLUMN_NAME, r.DELETE_RULE"
            " FROM information_schema.KEY_COLUMN_USAGE k JOIN information_schema.REFERENTIAL_CONSTRAINTS r"
            " ON r.CONSTRAINT_SCHEMA = k.CONSTRAINT_SCHEMA AND r.CONSTRAINT_NAME = k.CONSTRAINT_NAME"
            " AND r.TABLE_NAME = k.TABLE_NAME"
            " WHERE k.TABLE_SCHEMA = DATABASE() AND k.REFERENCED_TABLE_NAME IS NOT NULL"
            " ORDER BY k.TABLE_NAME, k.CONSTRAINT_NAME, k.ORDINAL_POSITION"
        ):
            keys.setdefault((_text(table), _text(name)), []).append(
                (_text(column), _text(parent), _text(parent_column), _text(rule))
            )
        for (table, _name), rows in keys.items():
            facts.foreign_keys.append(
                (table, tuple(r[0] for r in rows), rows[0][1], tuple(r[2] for r in rows), rows[0][3])
            )
        return facts
