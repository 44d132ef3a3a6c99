"""Faults to inject in tests: a private MariaDB to stop, kill or freeze, and Redis and SQLite faults."""

from __future__ import annotations

import contextlib
import os
import shutil
import signal
import sqlite3
import subprocess
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pymysql
import redis

from tests.services import PrivateRedis, free_port, unavailable, unique_name

# Small enough that the server initialises and starts in well under a second; the defaults
# (128M pool, 96M redo log) cost seconds and disk for nothing in a test.
MARIADB_TUNING = (
    "--innodb-buffer-pool-size=16M",
    "--innodb-log-file-size=8M",
    "--innodb-log-buffer-size=1M",
    "--key-buffer-size=1M",
    "--max-connections=200",
)
# Stated rather than left to the defaults: the durability tests depend on a commit being on
# disk before the client hears about it, and a SIGKILL must not lose it.
MARIADB_DURABILITY = ("--innodb-flush-log-at-trx-commit=1", "--innodb-doublewrite=1")
_STATEMENT_POLL_S = 0.02
_ER_NO_SUCH_THREAD = 1094


def _executable(*names: str) -> str | None:
    for name in names:
        found = shutil.which(name)
        if found is None:
            # /usr/sbin is not on every PATH (non-root shells, some CI images).
            for folder in ("/usr/sbin", "/usr/libexec", "/usr/local/sbin"):
                candidate = os.path.join(folder, name)
                if os.access(candidate, os.X_OK):
                    found = candidate
                    break
        if found is not None:
            return found
    return None


class PrivateMariaDB:
    """A mariadbd of the test session's own: its own datadir, socket and TCP port, root without password.

    Unlike the shared server it can be stopped, killed (SIGKILL, as an OOM killer or a host
    crash would), frozen (SIGSTOP: it accepts TCP connections in the kernel's backlog but
    never answers, like a hung or partitioned host), restarted on the same port with the same
    data, and have every client connection cut. Start-up errors raise RuntimeError with the
    server's own error log.
    """

    def __init__(self, folder: str | os.PathLike[str] | None = None, *extra: str) -> None:
        self.server_binary = _executable("mariadbd", "mysqld")
        install = _executable("mariadb-install-db", "mysql_install_db")
        if self.server_binary is None or install is None:
            unavailable("mariadbd / mariadb-install-db are not installed")
        self._owns_folder = folder is None
        self.folder = Path(folder) if folder is not None else Path(tempfile.mkdtemp(prefix="sf-mariadb-"))
        self.datadir = self.folder / "data"
        self.socket = self.folder / "mysqld.sock"
        self.error_log = self.folder / "error.log"
        self.extra = extra
        self.port = free_port()
        self.process: subprocess.Popen[bytes] | None = None
        self.paused = False
        # Running as root, mariadbd refuses to start unless told which user to be.
        self._user = ("--user=root",) if os.geteuid() == 0 else ()
        completed = subprocess.run(
            [install, "--no-defaults", f"--datadir={self.datadir}", "--skip-test-db",
             "--auth-root-authentication-method=normal", *self._user, *MARIADB_TUNING],
            capture_output=True, timeout=120,
        )
        self.default_database = "test"
        try:
            if completed.returncode != 0:
                output = (completed.stdout + completed.stderr).decode("utf-8", "replace")
                raise RuntimeError(f"{install} failed ({completed.returncode}):\n{output[-4000:]}")
            self.start()
            self.query(f"CREATE DATABASE IF NOT EXISTS `{self.default_database}`")
        except BaseException:
            self.close()
            raise

    # -- addresses -------------------------------------------------------------------------------
    @property
    def url(self) -> str:
        """A database URL the app accepts (the server's ``test`` database)."""
        return self.database_url(self.default_database)

    def database_url(self, name: str) -> str:
        return f"mysql://root@127.0.0.1:{self.port}/{name}"

    # -- databases and queries -------------------------------------------------------------------
    def connect(self, database: str | None = None, **options: Any) -> pymysql.connections.Connection:
        """A fresh client connection (autocommit), for setup and for looking behind the app's back."""
        # No TLS (the server has none): PyMySQL would otherwise build a TLS context per connection.
        return pymysql.connect(host="127.0.0.1", port=self.port, user="root", password="", database=database,
                               charset="utf8mb4", autocommit=True, connect_timeout=5, read_timeout=30,
                               ssl_disabled=True, **options)

    def query(self, sql: str, *params: Any, database: str | None = None) -> list[tuple[Any, ...]]:
        connection = self.connect(database)
        try:
            with connection.cursor() as cursor:
                cursor.execute(sql, params or None)
                return list(cursor.fetchall())
        finally:
            connection.close()

    def create_database(self, prefix: str = "sf_fault") -> str:
        """A new empty database; returns its URL."""
        name = unique_name(prefix)
        self.query(f"CREATE DATABASE `{name}` CHARACTER SET utf8mb4 COLLATE utf8mb4_unicode_ci")
        return self.database_url(name)

    def drop_database(self, url: str) -> None:
        name = url.rsplit("/", 1)[1]
        self.query(f"DROP DATABASE IF EXISTS `{name}`")

    # -- life cycle ------------------------------------------------------------------------------
    @property
    def running(self) -> bool:
        return self.process is not None and self.process.poll() is None

    def start(self, timeout: float = 60.0) -> None:
        """Start the server on its port and datadir (after stop() or kill()); waits until it answers."""
        if self.running:
            raise RuntimeError("mariadbd is already running")
        self.process = subprocess.Popen(
            [self.server_binary, "--no-defaults", f"--datadir={self.datadir}", f"--socket={self.socket}",
             f"--pid-file={self.folder / 'mysqld.pid'}", f"--log-error={self.error_log}",
             f"--tmpdir={self.folder}", "--skip-networking=0", "--bind-address=127.0.0.1",
             f"--port={self.port}", "--skip-name-resolve", "--character-set-server=utf8mb4",
             "--collation-server=utf8mb4_unicode_ci", *self._user, *MARIADB_TUNING, *MARIADB_DURABILITY,
             *self.extra],
            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
        )
        self.paused = False
        self._wait_until_answering(timeout)

    def _wait_until_answering(self, timeout: float) -> None:
        # The port opening is not enough: a query must succeed (crash recovery runs first).
        deadline = time.monotonic() + timeout
        last_error: Exception | None = None
        while time.monotonic() < deadline:
            if self.process is None or self.process.poll() is not None:
                raise RuntimeError(f"mariadbd exited during start-up:\n{self.error_log_tail()}")
            try:
                connection = pymysql.connect(host="127.0.0.1", port=self.port, user="root", password="",
                                             connect_timeout=1, read_timeout=2, ssl_disabled=True)
            except pymysql.err.MySQLError as error:
                last_error = error
                time.sleep(0.05)
                continue
            connection.close()
            return
        raise RuntimeError(
            f"mariadbd did not answer within {timeout}s ({last_error}):\n{self.error_log_tail()}")

    def error_log_tail(self, chars: int = 4000) -> str:
        try:
            return self.error_log.read_text(encoding="utf-8", errors="replace")[-chars:]
        except OSError:
            return "(no error log)"

    def stop(self, timeout: float = 30.0) -> None:
        """A clean shutdown (SIGTERM), as a service manager does it."""
        if not self.running:
            return
        assert self.process is not None
        self.resume()  # a stopped process would never act on SIGTERM
        self.process.terminate()
        try:
            self.process.wait(timeout)
        except subprocess.TimeoutExpired:
            self.process.kill()
            self.process.wait(10)

    def kill(self) -> None:
        """SIGKILL: no shutdown, no flush; InnoDB recovers committed work from its redo log on start()."""
        if not self.running:
            return
        assert self.process is not None
        self.process.kill()
        self.process.wait(10)
        self.paused = False

    def pause(self) -> None:
        """SIGSTOP: connects still succeed (the kernel completes them) but nothing is ever answered."""
        if self.running and not self.paused:
            assert self.process is not None
            self.process.send_signal(signal.SIGSTOP)
            self.paused = True

    def resume(self) -> None:
        if self.running and self.paused:
            assert self.process is not None
            self.process.send_signal(signal.SIGCONT)
        self.paused = False

    def restart(self, *, hard: bool = False) -> None:
        """stop() (or kill() when ``hard``) and start() again on the same port and data."""
        if hard:
            self.kill()
        else:
            self.stop()
        self.start()

    def ensure_healthy(self) -> None:
        """Running, not paused, answering: what a test must leave behind for the next one."""
        self.resume()
        if not self.running:
            self.start()
        self._wait_until_answering(30)

    def close(self) -> None:
        self.stop()
        if self._owns_folder:
            shutil.rmtree(self.folder, ignore_errors=True)

    # -- connections -----------------------------------------------------------------------------
    _CLIENTS = (
        "SELECT ID, COMMAND, STATE, INFO FROM information_schema.PROCESSLIST"
        " WHERE ID <> CONNECTION_ID() AND USER NOT IN ('system user', 'event_scheduler')"
        " AND COMMAND <> 'Daemon'"
    )

    def client_connections(self) -> list[tuple[int, str, str, str | None]]:
        """(id, command, state, statement) of every client connection but the one asking."""
        return [(int(row[0]), str(row[1]), str(row[2] or ""), row[3]) for row in self.query(self._CLIENTS)]

    def drop_connections(self) -> int:
        """KILL every client connection (as a failover or a proxy restart does); returns how many.

        Busy connections go first: were an idle one holding a lock killed first, the statement
        waiting for that lock could finish before its own connection is cut.
        """
        connection = self.connect()
        killed = 0
        try:
            with connection.cursor() as cursor:
                cursor.execute(self._CLIENTS)
                clients = sorted(cursor.fetchall(), key=lambda row: (row[1] == "Sleep", row[0]))
                for thread_id, *_ in clients:
                    try:
                        cursor.execute(f"KILL CONNECTION {int(thread_id)}")
                        killed += 1
                    except pymysql.err.MySQLError as error:
                        if error.args[0] != _ER_NO_SUCH_THREAD:  # else it ended by itself meanwhile
                            raise
        finally:
            connection.close()
        return killed

    def wait_for_statement(self, fragment: str, timeout: float = 10.0) -> int:
        """Wait until a client connection is running a statement containing ``fragment``; its id."""
        deadline = time.monotonic() + timeout
        connection = self.connect()
        try:
            with connection.cursor() as cursor:
                while time.monotonic() < deadline:
                    cursor.execute(self._CLIENTS)
                    for thread_id, _command, _state, statement in cursor.fetchall():
                        if statement and fragment in statement:
                            return int(thread_id)
                    time.sleep(_STATEMENT_POLL_S)
        finally:
            connection.close()
        raise RuntimeError(f"no connection ran a statement with {fragment!r} within {timeout}s")


# -- Redis ---------------------------------------------------------------------------------------
FILLER_PREFIX = "faults:filler:"


def _admin(server: PrivateRedis) -> redis.Redis:
    return redis.Redis(host="127.0.0.1", port=server.port, socket_timeout=5)


def fill_memory(server: PrivateRedis, filler_bytes: int = 2 * 1024 * 1024) -> None:
    """Make ``server`` full: ``filler_bytes`` of data, then maxmemory set below what it now holds.

    With ``noeviction`` every write is then refused with ``-OOM`` while reads still work, as on a
    production Redis that ran out of memory. The limit sits well below the memory in use: clients
    coming and going move that by kilobytes, and must not make room for a write.
    """
    client = _admin(server)
    try:
        client.config_set("maxmemory-policy", "noeviction")
        for number in range(filler_bytes // 65536):
            client.set(f"{FILLER_PREFIX}{number}", b"x" * 65536)
        used = int(client.info("memory")["used_memory"])
        client.config_set("maxmemory", used - filler_bytes // 2)
        try:
            client.set(f"{FILLER_PREFIX}probe", b"x")
        except redis.exceptions.OutOfMemoryError:
            return
        raise RuntimeError("redis did not fill up: a one-byte write still succeeds")
    finally:
        client.close()


def free_memory(server: PrivateRedis) -> None:
    """Undo fill_memory(): drop the filler keys and the memory limit."""
    client = _admin(server)
    try:
        client.config_set("maxmemory", 0)
        for key in client.scan_iter(match=FILLER_PREFIX + "*", count=500):
            client.delete(key)
    finally:
        client.close()


def read_only(server: PrivateRedis) -> None:
    """Make ``server`` a replica of a master that is not there: reads answer, writes get ``-READONLY``.

    That is what a client meets when a failover demoted the node it is still connected to.
    """
    client = _admin(server)
    try:
        client.execute_command("REPLICAOF", "127.0.0.1", str(free_port()))
    finally:
        client.close()


def writable(server: PrivateRedis) -> None:
    client = _admin(server)
    try:
        client.execute_command("REPLICAOF", "NO", "ONE")
    finally:
        client.close()


def redis_keys(server: PrivateRedis, prefix: str) -> set[bytes]:
    """The keys under ``prefix`` (to see whether the app wrote anything during a fault)."""
    client = _admin(server)
    try:
        return set(client.scan_iter(match=prefix + "*", count=500))
    finally:
        client.close()


# -- SQLite --------------------------------------------------------------------------------------
@contextlib.contextmanager
def sqlite_write_lock(path: str | os.PathLike[str]) -> Iterator[sqlite3.Connection]:
    """Another process holding the write lock (a long batch job, a migration, ``sqlite3 .import``).

    In WAL mode ``BEGIN EXCLUSIVE`` keeps out writers only: readers go on reading.
    """
    connection = sqlite3.connect(path, isolation_level=None, timeout=0.1)
    try:
        connection.execute("BEGIN EXCLUSIVE")
        yield connection
    finally:
        with contextlib.suppress(sqlite3.Error):
            connection.execute("ROLLBACK")
        connection.close()


@contextlib.contextmanager
def sqlite_exclusive_lock(path: str | os.PathLike[str]) -> Iterator[sqlite3.Connection]:
    """A connection in ``locking_mode=EXCLUSIVE`` that has written: nobody else can read or write
    (a maintenance tool or backup that took the whole file); every access waits the busy timeout.

    Taking it waits (up to 5 s) for every other connection to the file to be closed.
    """
    connection = sqlite3.connect(path, isolation_level=None, timeout=5)
    try:
        connection.execute("PRAGMA locking_mode = EXCLUSIVE")
        connection.execute("BEGIN EXCLUSIVE")
        # A write is what makes the lock stick past COMMIT in WAL mode.
        connection.execute("CREATE TABLE IF NOT EXISTS fault_lock_probe (x INTEGER)")
        connection.execute("DROP TABLE fault_lock_probe")
        connection.execute("COMMIT")
        yield connection
    finally:
        connection.close()


_SQLITE_SIDE_FILES = ("-wal", "-shm", "-journal")


@contextlib.contextmanager
def sqlite_file_replaced(path: str | os.PathLike[str], content: bytes | None) -> Iterator[None]:
    """The database file swapped for ``content`` (not a database), or gone when ``content`` is None:
    a botched restore or deploy. The real files are put back on exit."""
    path = Path(path)
    aside = path.with_name(path.name + ".aside")
    aside.mkdir()
    try:
        for suffix in ("", *_SQLITE_SIDE_FILES):
            source = Path(str(path) + suffix)
            if source.exists():
                os.replace(source, aside / (path.name + suffix))
        if content is not None:
            replacement = path.with_name(path.name + ".new")
            replacement.write_bytes(content)
            os.replace(replacement, path)
        yield
    finally:
        for suffix in ("", *_SQLITE_SIDE_FILES):
            # Whatever the app created meanwhile (an empty database, say) goes.
            Path(str(path) + suffix).unlink(missing_ok=True)
        for moved in aside.iterdir():
            os.replace(moved, path.with_name(moved.name))
        aside.rmdir()


REDIS_FAULTS = ("stopped", "paused", "full", "read_only")


@contextlib.contextmanager
def redis_fault(server: PrivateRedis, kind: str) -> Iterator[None]:
    """``server`` stopped, paused, full or read-only for the block ("healthy": untouched); then healthy
    again (a stopped one comes back empty, as a Redis without persistence does)."""
    if kind == "healthy":
        yield
        return
    if kind == "stopped":
        server.stop()
        try:
            yield
        finally:
            server.restart()
    elif kind == "paused":
        server.pause()
        try:
            yield
        finally:
            server.resume()
    elif kind == "full":
        fill_memory(server)
        try:
            yield
        finally:
            free_memory(server)
    elif kind == "read_only":
        read_only(server)
        try:
            yield
        finally:
            writable(server)
    else:
        raise ValueError(f"unknown redis fault {kind!r}; one of healthy, {', '.join(REDIS_FAULTS)}")
