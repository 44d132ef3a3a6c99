"""The shared cache tier over Redis or Redis Cluster: short timeouts, circuit breakers, every error a miss."""

from __future__ import annotations

import logging
import random
import secrets
import socket
import struct
import sys
import threading
import time
import weakref
from collections import Counter
from collections.abc import Callable, Iterable
from typing import Any, NamedTuple, TypeVar

import redis
from redis._parsers import _RESP2Parser
from redis.backoff import NoBackoff
from redis.cluster import ClusterNode, RedisCluster
from redis.connection import parse_url
from redis.crc import key_slot
from redis.exceptions import AskError, ClusterDownError, RedisError
from redis.exceptions import ConnectionError as RedisConnectionError
from redis.exceptions import TimeoutError as RedisTimeoutError
from redis.retry import Retry

from storefront import per_process
from storefront.cache.breaker import CLOSED, OPEN, CircuitBreaker

log = logging.getLogger(__name__)

T = TypeVar("T")

# Compare-and-delete: a lock whose TTL ran out and was taken by another worker is not ours to drop.
# It touches KEYS[1] only, so on a cluster it runs on the one node that owns the lock's slot.
_RELEASE_LOCK = """
if redis.call('get', KEYS[1]) == ARGV[1] then
    return redis.call('del', KEYS[1])
end
return 0
"""
_LOCK_NAMESPACE = "lock:"
# RESP2 without CLIENT SETINFO: a new connection costs no round trip before the command
# (RESP3 adds HELLO and maintenance-notification handshakes, which may relax timeouts).
_CONNECTION_OPTIONS: dict[str, Any] = {"protocol": 2, "driver_info": None}
_FAILED = object()
_SCAN_BATCH = 500


class _KernelTimeoutConnection(redis.Connection):
    """A TCP connection whose read and write timeouts the kernel keeps (SO_RCVTIMEO, SO_SNDTIMEO).

    Python keeps a socket's timeout by polling before every send and receive: two more system
    calls per round trip, about 20 us of server CPU per cache hit here (bench: a bare callable
    plus one GET, with and without a timeout). On a blocking socket with kernel timeouts the
    receive itself waits; a timeout fails it with EAGAIN, which redis-py wraps in a
    ConnectionError and this class reports as the TimeoutError it is, as a Python-kept timeout
    would be. Used for this thread's own connections on Linux.
    """

    def _connect(self) -> socket.socket:
        sock: socket.socket = super()._connect()
        if self.socket_timeout:
            seconds, fraction = divmod(self.socket_timeout, 1)
            timeval = struct.pack("ll", int(seconds), int(fraction * 1_000_000))
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVTIMEO, timeval)
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_SNDTIMEO, timeval)
            sock.settimeout(None)
        return sock

    def send_packed_command(self, command: Any, check_health: bool = True) -> None:
        try:
            super().send_packed_command(command, check_health)
        except RedisConnectionError as error:
            _raise_if_timed_out(error)
            raise

    def read_response(self, *args: Any, **kwargs: Any) -> Any:
        try:
            return super().read_response(*args, **kwargs)
        except RedisConnectionError as error:
            _raise_if_timed_out(error)
            raise

    def read_get_reply(self) -> bytes | None:
        """The reply to a GET, read off the socket into one buffer.

        redis-py's own reader copies a 14 KB value through its buffer about five times (its
        ``read_response`` cost a hit twice what the rest of the round trip does); this reads the
        header, then the value straight into place. Its own reader answers whenever it holds
        bytes already, or is another kind (hiredis). Errors are redis-py's: a reply error as its
        parser makes it, a timeout as TimeoutError, a broken or closed socket as ConnectionError.
        """
        parser = self._parser
        buffer = getattr(parser, "_buffer", None)
        if parser.__class__ is not _RESP2Parser or buffer is None or buffer.unread_bytes():
            return self.read_response()  # type: ignore[no-any-return]
        try:
            return _read_bulk(self._sock, parser)
        except (TimeoutError, BlockingIOError) as error:  # a kernel-kept or Python-kept timeout
            raise RedisTimeoutError(f"Timeout reading from socket: {error}") from error
        except OSError as error:
            raise RedisConnectionError(f"Error while reading from socket: {error}") from error


# What one receive asks for: a value of a few tens of KB arrives in one or two.
_READ_SIZE = 65536


def _read_bulk(sock: socket.socket, parser: _RESP2Parser) -> bytes | None:
    """One RESP2 bulk-string reply (``$<length>\\r\\n<bytes>\\r\\n``, ``$-1`` for none) off ``sock``.

    Exactly one reply is read: Redis sends one per command, and nothing else on this connection.
    """
    data = sock.recv(_READ_SIZE)
    end = data.find(b"\r\n")
    while end < 0:
        more = sock.recv(_READ_SIZE)
        if not more:
            raise RedisConnectionError("Connection closed by server.")
        data += more
        end = data.find(b"\r\n")
    marker = data[:1]
    if marker == b"-":
        raise parser.parse_error(data[1:end].decode("utf-8", errors="replace"))
    if marker != b"$":
        raise RedisConnectionError(f"Protocol error, got {data[:end]!r} as reply to GET")
    length = int(data[1:end])
    if length < 0:
        return None
    start, stop = end + 2, end + 2 + length
    if len(data) >= stop + 2:
        if len(data) > stop + 2:
            raise RedisConnectionError("Protocol error: bytes after the reply to GET")
        return data[start:stop]
    whole = bytearray(stop + 2)
    whole[:len(data)] = data
    view = memoryview(whole)
    got = len(data)
    while got < stop + 2:
        received = sock.recv_into(view[got:])
        if not received:
            raise RedisConnectionError("Connection closed by server.")
        got += received
    return bytes(view[start:stop])


def _exchange_get(connection: redis.Connection, full_key: str) -> bytes | None:
    """GET ``full_key`` on ``connection``: sent pre-packed, its reply read off the socket where the
    connection can (``read_get_reply``)."""
    connection.send_packed_command((packed_get(full_key),))
    if isinstance(connection, _KernelTimeoutConnection):
        return connection.read_get_reply()
    return connection.read_response()  # type: ignore[no-any-return]


def _exchange_commands(connection: redis.Connection, commands: list[tuple[Any, ...]]) -> list[Any]:
    """``commands`` in one round trip on ``connection``: their replies."""
    if len(commands) == 1:
        connection.send_command(*commands[0])
    else:
        connection.send_packed_command(connection.pack_commands(commands))
    return [connection.read_response() for _ in commands]


def packed_get(full_key: str) -> bytes:
    """``GET full_key`` in RESP, byte for byte what redis-py's packer makes of it (a str key is sent
    as UTF-8), in one step: its general packer costs a hit about as much as reading the reply."""
    key = full_key.encode("utf-8")
    return b"*2\r\n$3\r\nGET\r\n$%d\r\n%b\r\n" % (len(key), key)


def _raise_if_timed_out(error: RedisConnectionError) -> None:
    """Raise ``error`` as the TimeoutError it is when a kernel-kept timeout ran out (EAGAIN)."""
    if isinstance(error.__context__, BlockingIOError):
        raise RedisTimeoutError(f"Timeout on the socket: {error}") from error


class LockAttempt(NamedTuple):
    """The outcome of ``acquire_lock``: ours (token), someone else's, or Redis could not be asked."""

    token: str | None
    held_elsewhere: bool
    # With ``acquire_lock(read=key)``: that key's value, read in the same round trip just after.
    value: bytes | None = None

    @property
    def acquired(self) -> bool:
        return self.token is not None


class _ErrorLog:
    """Logs the first error of each kind per interval and how many were left out since."""

    def __init__(self, logger: logging.Logger, interval_s: float) -> None:
        self._logger = logger
        self.interval_s = interval_s
        self._lock = threading.Lock()
        self._last: dict[str, float] = {}
        self._suppressed: dict[str, int] = {}

    def report(self, kind: str, op: str, exc: BaseException) -> None:
        now = time.monotonic()
        with self._lock:
            last = self._last.get(kind)
            if last is not None and now - last < self.interval_s:
                self._suppressed[kind] = self._suppressed.get(kind, 0) + 1
                return
            self._last[kind] = now
            suppressed = self._suppressed.pop(kind, 0)
        self._logger.warning(
            "redis %s failed, serving without it: %s: %s (%d more %s since the last report)",
            op, kind, exc, suppressed, kind,
        )


class RedisCache:
    """Bytes by key in Redis, shared by every worker.

    No method raises: a Redis error (connection refused, timeout, ``-OOM``, ``READONLY``, ...) is
    counted, reported through ``on_error(backend, exc)``, logged at most once per interval per
    kind, and answered like a miss (``get`` -> None) or a no-op (``set`` -> False). Each call costs
    at most one socket timeout: redis-py's own retries are switched off, and after
    ``breaker.failure_threshold`` consecutive connection failures or timeouts the circuit breaker
    skips Redis altogether until its reset time has passed. Errors the server itself answers with
    (OOM, READONLY) do not trip the breaker: they cost no waiting, and reads still work.

    Keys are stored under ``key_prefix``; the cache's own namespaces (``lock:``) go between the prefix
    and the caller's key. Nothing connects before the first call.
    """

    backend = "redis"

    def __init__(
        self,
        url: str,
        *,
        key_prefix: str = "sf:",
        connect_timeout_ms: int = 50,
        timeout_ms: int = 50,
        breaker: CircuitBreaker | None = None,
        on_error: Callable[[str, BaseException], None] | None = None,
        log_interval_s: float = 60.0,
        max_connections: int | None = None,
    ) -> None:
        self.url = url
        self.key_prefix = key_prefix
        self.connect_timeout_s = connect_timeout_ms / 1000
        self.timeout_s = timeout_ms / 1000
        self.on_error = on_error
        self.breaker = breaker if breaker is not None else CircuitBreaker(3, 5.0)
        if self.breaker.on_change is None:
            self.breaker.on_change = self._breaker_changed
        self.max_connections = max_connections
        self._error_log = _ErrorLog(log, log_interval_s)
        self._stats_lock = threading.Lock()
        self._errors: Counter[str] = Counter()
        self._skipped = 0
        self._own = threading.local()
        self._own_lock = threading.Lock()
        # Weak: a finished thread's connection is closed when collected (redis-py's __del__).
        self._own_connections: weakref.WeakSet[Any] = weakref.WeakSet()
        self._client = self._create_client()

    def _create_client(self) -> Any:
        client = redis.Redis.from_url(
            self.url,
            socket_connect_timeout=self.connect_timeout_s,
            socket_timeout=self.timeout_s,
            # redis-py retries 10 times by default: each retry would add a full timeout.
            retry=Retry(NoBackoff(), 0),
            health_check_interval=0,
            max_connections=self.max_connections,
            **_CONNECTION_OPTIONS,
        )
        self._release_script = client.register_script(_RELEASE_LOCK)
        return client

    # -- the cache contract -------------------------------------------------------------------

    def get(self, key: str) -> bytes | None:
        full = self.key_prefix + key
        return self._call_key("get", full, lambda client: self._get_on_own_connection(client, full), None)

    def _get_on_own_connection(self, client: Any, full_key: str) -> bytes | None:
        """GET on a connection this thread keeps for itself, past redis-py's client layers.

        Every cache hit is a GET. Through the client, its pool, retry and observability layers cost
        about twice the command (here 130 against 58 us of CPU for a 14 KB value), so GETs
        skip them: same connection settings and timeouts, same errors, one connection per
        thread (a gthread worker has a handful). The cluster variant routes GETs by slot instead.
        """
        if not isinstance(client, redis.Redis):
            return client.get(full_key)  # type: ignore[no-any-return]
        return self._on_own_connection(client, _exchange_get, full_key)

    def _on_own_connection(self, client: redis.Redis, exchange: Callable[..., T], *args: Any) -> T:
        """``exchange(connection, *args)``, one round trip on this thread's own connection: a GET
        (``_exchange_get``), or a miss's lock and writes (``_exchange_commands``); its result, or the
        first error raised."""
        connection = getattr(self._own, "connection", None)
        if connection is None or self._own.pid != per_process.pid:
            pool = client.connection_pool
            connection_class = pool.connection_class
            if connection_class is redis.Connection and sys.platform.startswith("linux"):
                connection_class = _KernelTimeoutConnection
            connection = connection_class(**pool.connection_kwargs)
            self._own.connection, self._own.pid = connection, per_process.pid
            with self._own_lock:
                self._own_connections.add(connection)
        try:
            return exchange(connection, *args)
        except BaseException:
            # Whatever state the socket is in (a timeout mid-reply, replies left unread after an
            # error), the next command starts afresh.
            connection.disconnect()
            raise

    def set(self, key: str, value: bytes, ttl_s: float) -> bool:
        """Store ``value`` with a PX TTL; a TTL under a millisecond deletes the key instead."""
        px = int(ttl_s * 1000)
        if px <= 0:
            self.delete(key)
            return False
        full = self.key_prefix + key
        return bool(self._call_key("set", full, lambda client: client.set(full, value, px=px), False))

    def set_many(
        self, items: Iterable[tuple[str, bytes, float]], *, unlock: tuple[str, str] | None = None
    ) -> bool:
        """Several ``(key, value, ttl_s)`` writes in one round trip (not atomic).

        ``unlock``: a lock's ``(name, token)`` to release after the writes, in the same round trip.
        """
        commands: list[tuple[Any, ...]] = [
            ("SET", self.key_prefix + key, value, "PX", int(ttl_s * 1000))
            for key, value, ttl_s in items if int(ttl_s * 1000) > 0]
        if unlock is not None:
            full = self.key_prefix + _LOCK_NAMESPACE + unlock[0]
            # EVAL, not the registered script: a pipeline would first ask whether it is loaded.
            commands.append(("EVAL", _RELEASE_LOCK, 1, full, unlock[1]))
        if not commands:
            return True

        def run(client: redis.Redis) -> bool:
            self._pipeline(client, commands)
            return True

        return self._call("set", run, False)

    def delete(self, key: str) -> bool:
        full = self.key_prefix + key
        return bool(self._call_key("delete", full, lambda client: client.delete(full), 0))

    def clear(self) -> int:
        """Delete every key under this prefix (tests, ``flask`` commands); returns how many."""
        return self.delete_matching("*")

    def delete_matching(self, pattern: str) -> int:
        """Delete the keys under this prefix matching the glob ``pattern`` (an explicit purge).

        SCAN walks the keyspace in small steps, so Redis never blocks on it; the caller (an admin
        request) pays for the walk, shoppers do not.
        """

        def run(client: redis.Redis) -> int:
            deleted = 0
            batch: list[bytes] = []
            for full in client.scan_iter(match=_glob_escape(self.key_prefix) + pattern, count=_SCAN_BATCH):
                batch.append(full)
                if len(batch) >= _SCAN_BATCH:
                    deleted += client.unlink(*batch)
                    batch.clear()
            if batch:
                deleted += client.unlink(*batch)
            return deleted

        return self._call("delete_matching", run, 0)

    # -- locks ----------------------------------------------------------------------------------

    def acquire_lock(self, name: str, ttl_ms: int, *, read: str | None = None) -> LockAttempt:
        """``SET lock NX PX ttl`` with a random token; only the token's holder can release it.

        ``read``: a key of the lock's slot to GET in the same round trip, right after the SET (what
        a renderer checks once it holds the lock), returned as ``value``.
        """
        token = secrets.token_hex(16)
        full = self.key_prefix + _LOCK_NAMESPACE + name
        if read is None:
            won = self._call_key(
                "lock", full, lambda client: client.set(full, token, nx=True, px=ttl_ms), _FAILED)
            value = None
        else:
            commands = [("SET", full, token, "NX", "PX", ttl_ms), ("GET", self.key_prefix + read)]
            replies = self._call_key("lock", full, lambda client: self._pipeline(client, commands), _FAILED)
            won, value = (_FAILED, None) if replies is _FAILED else replies
        if won is _FAILED:
            return LockAttempt(None, False)
        return LockAttempt(token, False, value) if won else LockAttempt(None, True, value)

    def release_lock(self, name: str, token: str) -> bool:
        full = self.key_prefix + _LOCK_NAMESPACE + name
        return bool(self._call_key(
            "unlock", full, lambda client: self._release_script(keys=[full], args=[token], client=client), 0))

    # -- pub/sub --------------------------------------------------------------------------------

    def publish(self, channel: str, message: bytes | str) -> int:
        """Returns how many subscribers received it (0 when Redis could not be reached)."""
        full = self.key_prefix + channel
        return int(self._call("publish", lambda client: client.publish(full, message), 0))

    def listen(
        self,
        channel: str,
        callback: Callable[[bytes], None],
        *,
        on_resubscribe: Callable[[], None] | None = None,
        ping_interval_s: float = 5.0,
        on_disconnect: Callable[[], None] | None = None,
    ) -> Subscription:
        """Call ``callback(data)`` for each message on ``channel``, from a daemon thread, until stop().

        Messages published while disconnected are lost; ``on_resubscribe`` runs after every
        re-subscription (not the first) so the caller can drop what it may have missed, and
        ``on_disconnect`` when a subscription is lost.
        """
        subscription = Subscription(self, channel, callback, on_resubscribe, ping_interval_s, on_disconnect)
        subscription.start()
        return subscription

    # -- health and bookkeeping -----------------------------------------------------------------

    def ping(self) -> bool:
        return bool(self._call("ping", lambda client: client.ping(), False))

    @property
    def available(self) -> bool:
        """False while the breaker is open: callers can stop waiting on Redis."""
        return self.breaker.state is not OPEN

    def stats(self) -> dict[str, Any]:
        with self._stats_lock:
            return {
                "breaker": self.breaker.state,
                "errors": dict(self._errors),
                "skipped": self._skipped,
            }

    def close(self) -> None:
        with self._own_lock:
            own, self._own_connections = list(self._own_connections), weakref.WeakSet()
        for connection in own:
            connection.disconnect()
        self._client.close()

    def _call_key(self, op: str, full_key: str, fn: Callable[[Any], T], default: T) -> T:
        """A command on one key (the cluster variant routes it, and its breaker, by the key's slot)."""
        return self._call(op, fn, default)

    def _pipeline(self, client: Any, commands: list[tuple[Any, ...]]) -> list[Any]:
        """``commands`` in one round trip; their replies, or the first error raised."""
        return self._on_own_connection(client, _exchange_commands, commands)

    def _call(self, op: str, fn: Callable[[redis.Redis], T], default: T) -> T:
        if not self.breaker.allow():
            self._count_skip()
            return default
        try:
            result = fn(self._client)
        except (RedisConnectionError, RedisTimeoutError) as exc:
            self.breaker.record_failure()
            self.report_error(op, exc)
            return default
        except RedisError as exc:
            # The server answered (OOM, READONLY, ...): it is reachable, so this is no breaker failure.
            self.breaker.record_success()
            self.report_error(op, exc)
            return default
        except Exception as exc:
            # Anything redis-py did not wrap is still not allowed to reach a request.
            self.breaker.record_failure()
            self.report_error(op, exc)
            return default
        self.breaker.record_success()
        return result

    def _count_skip(self) -> None:
        with self._stats_lock:
            self._skipped += 1

    def _open_pubsub(self, attempt: int) -> tuple[Any, str]:
        """A pubsub for the ``attempt``-th subscription (0 first, +1 per failure) and the server it uses."""
        kwargs = self._client.connection_pool.connection_kwargs
        server = kwargs.get("path") or f"{kwargs.get('host')}:{kwargs.get('port')}"
        return self._client.pubsub(), server

    def report_error(self, op: str, exc: BaseException) -> None:
        kind = type(exc).__name__
        with self._stats_lock:
            self._errors[kind] += 1
        hook = self.on_error
        if hook is not None:
            try:
                hook(self.backend, exc)
            except Exception:  # a metrics hook must never turn a cache miss into a 500
                log.exception("redis on_error hook failed")
        self._error_log.report(kind, op, exc)

    def _breaker_changed(self, state: str) -> None:
        if state is OPEN:
            log.warning(
                "redis circuit breaker open after %d consecutive failures: skipping Redis for %ss",
                self.breaker.failure_threshold, self.breaker.reset_s,
            )
        elif state is CLOSED:
            log.warning("redis circuit breaker closed: Redis answers again")


class Subscription:
    """A daemon thread subscribed to one channel; it resubscribes after errors with a capped backoff.

    On a cluster each attempt after a failure goes to the next node, so a dead node is left behind.
    """

    _POLL_S = 0.2
    _BACKOFF_MIN_S = 0.1
    _BACKOFF_MAX_S = 5.0

    def __init__(
        self,
        cache: RedisCache,
        channel: str,
        callback: Callable[[bytes], None],
        on_resubscribe: Callable[[], None] | None,
        ping_interval_s: float,
        on_disconnect: Callable[[], None] | None = None,
    ) -> None:
        self.channel = channel
        self._on_disconnect = on_disconnect
        self._cache = cache
        self._full_channel = cache.key_prefix + channel
        self._callback = callback
        self._on_resubscribe = on_resubscribe
        self._ping_interval_s = ping_interval_s
        self._stopping = threading.Event()
        # Set while subscribed (tests and readiness checks wait on it).
        self.subscribed = threading.Event()
        self.subscriptions = 0
        # host:port of the server the subscription is (or was last) on.
        self.server: str | None = None
        self._failures = 0
        self._thread = threading.Thread(target=self._run, name=f"redis-listen:{channel}", daemon=True)

    def start(self) -> None:
        self._thread.start()

    def stop(self, timeout: float = 5.0) -> None:
        self._stopping.set()
        if self._thread.is_alive() and threading.current_thread() is not self._thread:
            self._thread.join(timeout)

    @property
    def alive(self) -> bool:
        return self._thread.is_alive()

    def _run(self) -> None:
        backoff = self._BACKOFF_MIN_S
        while not self._stopping.is_set():
            pubsub = None
            try:
                pubsub, self.server = self._cache._open_pubsub(self._failures)
                pubsub.subscribe(self._full_channel)
                last_heard = last_ping = time.monotonic()
                while not self._stopping.is_set():
                    message = pubsub.get_message(timeout=self._POLL_S)
                    now = time.monotonic()
                    if message is not None:
                        last_heard = now
                        kind = message["type"]
                        if kind == "message":
                            self._deliver(message["data"])
                        elif kind == "subscribe":
                            self._subscribed()
                            backoff = self._BACKOFF_MIN_S
                    if now - last_ping >= self._ping_interval_s:
                        # A hung or partitioned server sends nothing, not even an error: PING finds out.
                        pubsub.ping()
                        last_ping = now
                    if now - last_heard > 2 * self._ping_interval_s + self._POLL_S:
                        raise RedisTimeoutError("no reply to PING on the subscription")
            except Exception as exc:
                if self.subscribed.is_set():
                    self.subscribed.clear()
                    self._lost()
                self._failures += 1
                self._cache.report_error("subscribe", exc)
            finally:
                if pubsub is not None:
                    try:
                        pubsub.close()
                    except Exception:  # closing a broken connection may fail too; nothing to do
                        pass
            self.subscribed.clear()
            self._stopping.wait(backoff)
            backoff = min(backoff * 2, self._BACKOFF_MAX_S)

    def _subscribed(self) -> None:
        self.subscriptions += 1
        self.subscribed.set()
        if self.subscriptions > 1 and self._on_resubscribe is not None:
            try:
                self._on_resubscribe()
            except Exception:
                log.exception("redis on_resubscribe callback for %s failed", self.channel)

    def _lost(self) -> None:
        if self._on_disconnect is not None:
            try:
                self._on_disconnect()
            except Exception:
                log.exception("redis on_disconnect callback for %s failed", self.channel)

    def _deliver(self, data: bytes) -> None:
        try:
            self._callback(data)
        except Exception:
            log.exception("redis message callback for %s failed", self.channel)


class RedisClusterCache(RedisCache):
    """The same shared tier on a Redis Cluster; ``url`` is one seed node, the others are discovered.

    Keys: the caller's key carries one ``{hash tag}`` and the cache's namespaces go between the prefix
    and that key (``sf:{tag}:...``, ``sf:lock:{tag}:...``, ``sf:last-good:{tag}:...``), so a render's
    value, lock and last-good pointer hash to one slot and live on one master. Every command touches
    keys of one slot (the lock release script included); batches are split by node.

    Failures: one command per call, like the single-node client (redis-py's cluster retries are off;
    it still follows MOVED/ASK). Each master has its own breaker, so a dead or hung master costs a
    few timeouts on its own keys and then nothing, while keys on the other masters still hit. The
    ``breaker`` passed in guards the cluster as a whole: it counts what says no node is serving (the
    client cannot be built, a topology refresh reaches no node, CLUSTERDOWN). With the server default
    ``cluster-require-full-coverage yes`` one lost master makes the whole cluster answer CLUSTERDOWN
    (redis-py then pauses 250 ms per call until that breaker opens); a cache cluster should run with
    ``cluster-require-full-coverage no``.

    Pub/sub is classic PUBLISH/SUBSCRIBE, which the cluster broadcasts to every node: the subscriber
    listens on one node and moves to the next one when that node fails.

    Nothing connects before the first call (redis-py's cluster client would at construction).
    """

    # redis-py asks the cluster's default node (the owner of slot 0) for COMMAND while it starts; with
    # a retry it moves on to another master when that one is down. Only start-up uses it.
    _STARTUP_RETRIES = 2
    # Publish and ping try a second node when the first cannot be reached.
    _KEYLESS_TRIES = 2

    def _create_client(self) -> None:
        # Checked here, without connecting, so a wrong URL stops the app at start-up instead of
        # turning every call into a logged miss.
        options = parse_url(self.url)
        if "path" in options or options.get("db", 0) != 0:
            raise ValueError("a Redis Cluster seed must be a redis:// or rediss:// URL without a database")
        self._cluster: RedisCluster | None = None
        self._connect_lock = threading.Lock()
        self._node_breakers: dict[str, CircuitBreaker] = {}
        self._node_breakers_lock = threading.Lock()
        # Which node this instance prefers for subscribing and publishing, so workers spread over the nodes.
        self._node_offset = random.randrange(1 << 16)
        return None

    # -- the cache contract -------------------------------------------------------------------

    def set_many(
        self, items: Iterable[tuple[str, bytes, float]], *, unlock: tuple[str, str] | None = None
    ) -> bool:
        """Several ``(key, value, ttl_s)`` writes, one round trip per master (not atomic); then
        ``unlock``'s release, on its own."""
        stored = self._set_many(items)
        if unlock is not None:
            self.release_lock(*unlock)
        return stored

    def _set_many(self, items: Iterable[tuple[str, bytes, float]]) -> bool:
        writes = [(self.key_prefix + key, value, int(ttl_s * 1000)) for key, value, ttl_s in items]
        writes = [write for write in writes if write[2] > 0]
        if not writes:
            return True
        client = self._connected("set")
        if client is None:
            return False
        by_node: dict[str, tuple[ClusterNode, list[tuple[str, bytes, int]]]] = {}
        stored = True
        for write in writes:
            node = self._owner(client, "set", write[0])
            if node is None:
                stored = False
                continue
            by_node.setdefault(node.name, (node, []))[1].append(write)
        for node, group in by_node.values():
            commands = [("SET", full, value, "PX", px) for full, value, px in group]

            def write(client: RedisCluster, node: ClusterNode = node, commands: list = commands) -> list:
                return _run_on_node(client, node, commands)

            stored = self._on_node("set", node, write, None) is not None and stored
        return stored

    def delete_matching(self, pattern: str) -> int:
        """Delete the keys under this prefix matching the glob ``pattern`` on every master.

        Each master is SCANned on its own and its keys are UNLINKed one slot per command. A master
        that cannot be reached is skipped (and reported); the count covers the others.
        """
        client = self._connected("delete_matching")
        if client is None:
            return 0
        match = _glob_escape(self.key_prefix) + pattern
        deleted = 0
        for node in client.get_primaries():
            deleted += self._on_node(
                "delete_matching", node, lambda client, node=node: _unlink_on_node(client, node, match), 0
            )
        return deleted

    # -- locks ----------------------------------------------------------------------------------

    def release_lock(self, name: str, token: str) -> bool:
        full = self.key_prefix + _LOCK_NAMESPACE + name
        # EVAL, not EVALSHA: loading a script goes to every master and fails while one of them is down.
        return bool(self._call_key(
            "unlock", full, lambda client: client.eval(_RELEASE_LOCK, 1, full, token), 0))

    # -- pub/sub and health ---------------------------------------------------------------------

    def publish(self, channel: str, message: bytes | str) -> int:
        """Returns how many subscribers received it on the node that took it (the cluster passes the
        message on to every other node; their subscribers are not counted), 0 when no node could."""
        full = self.key_prefix + channel
        result = self._on_some_node(
            "publish", lambda client, node: client.get_redis_connection(node).publish(full, message)
        )
        return 0 if result is _FAILED else int(result)

    def ping(self) -> bool:
        """True when a node answers and reports ``cluster_state:ok`` (the cluster serves its slots)."""
        result = self._on_some_node(
            "ping", lambda client, node: client.get_redis_connection(node).execute_command("CLUSTER INFO")
        )
        return isinstance(result, dict) and str(result.get("cluster_state")) == "ok"

    @property
    def available(self) -> bool:
        """False while the cluster-wide breaker is open (a single master's breaker does not count)."""
        return self.breaker.state is not OPEN

    def stats(self) -> dict[str, Any]:
        stats = super().stats()
        with self._node_breakers_lock:
            stats["nodes"] = {name: breaker.state for name, breaker in sorted(self._node_breakers.items())}
        return stats

    def close(self) -> None:
        with self._connect_lock:
            client, self._cluster = self._cluster, None
        if client is not None:
            # close() alone leaves the nodes' pools connected: redis-py made them from the URL.
            client.disconnect_connection_pools()
            client.close()

    # -- routing and breakers -------------------------------------------------------------------

    def _call_key(self, op: str, full_key: str, fn: Callable[[Any], T], default: T) -> T:
        client = self._connected(op)
        if client is None:
            return default
        node = self._owner(client, op, full_key)
        if node is None:
            return default
        return self._on_node(op, node, fn, default)

    def _call(self, op: str, fn: Callable[[Any], T], default: T) -> T:
        # Every operation here names its node or its key; nothing may run unrouted.
        raise NotImplementedError("RedisClusterCache routes by key or node")

    def _pipeline(self, client: Any, commands: list[tuple[Any, ...]]) -> list[Any]:
        # Every key of ``commands`` is in one slot (acquire_lock's are): the first names the node.
        return _run_on_node(client, client.get_node_from_key(commands[0][1]), commands)

    def _connected(self, op: str) -> RedisCluster | None:
        """The cluster client, built on first use; None (counted) when the cluster is out of reach."""
        if not self.breaker.allow():
            self._count_skip()
            return None
        client = self._cluster
        if client is not None:
            return client
        with self._connect_lock:
            if self._cluster is None:
                if self.breaker.state is OPEN:
                    # Others failed to connect while this thread waited for the lock.
                    self._count_skip()
                    return None
                try:
                    self._cluster = self._build_cluster()
                except Exception as exc:
                    self.breaker.record_failure()
                    self.report_error(op, exc)
                    return None
            return self._cluster

    def _build_cluster(self) -> RedisCluster:
        options: dict[str, Any] = {}
        if self.max_connections is not None:
            options["max_connections"] = self.max_connections
        client = RedisCluster.from_url(
            self.url,
            socket_connect_timeout=self.connect_timeout_s,
            socket_timeout=self.timeout_s,
            retry=Retry(NoBackoff(), self._STARTUP_RETRIES),
            # Serve the slots that have a master even when others have none.
            require_full_coverage=False,
            **_CONNECTION_OPTIONS,
            **options,
        )
        # From now on one try per call: a retry would add a full timeout (MOVED/ASK are still followed).
        client.set_retry(Retry(NoBackoff(), 0))
        return client

    def _owner(self, client: RedisCluster, op: str, full_key: str) -> ClusterNode | None:
        """The master that owns the key's slot, or None (reported) when no master does."""
        try:
            return client.get_node_from_key(full_key)
        except Exception as exc:  # SlotNotCoveredError: nobody serves the slot; no I/O happened
            self.report_error(op, exc)
            return None

    def _node_breaker(self, name: str) -> CircuitBreaker:
        breaker = self._node_breakers.get(name)
        if breaker is None:
            with self._node_breakers_lock:
                breaker = self._node_breakers.get(name)
                if breaker is None:
                    breaker = CircuitBreaker(
                        self.breaker.failure_threshold, self.breaker.reset_s,
                        on_change=lambda state, name=name: self._node_breaker_changed(name, state),
                    )
                    self._node_breakers[name] = breaker
        return breaker

    def _on_node(self, op: str, node: ClusterNode, fn: Callable[[RedisCluster], T], default: T) -> T:
        """``fn(client)`` for a command bound for ``node``, behind that node's breaker."""
        client = self._cluster
        breaker = self._node_breaker(node.name)
        if client is None or not breaker.allow():
            self._count_skip()
            return default
        try:
            result = fn(client)
        except ClusterDownError as exc:
            # The cluster refuses keys (lost slots with full coverage required): as good as down.
            breaker.record_failure()
            self.breaker.record_failure()
            self.report_error(op, exc)
            return default
        except (RedisConnectionError, RedisTimeoutError) as exc:
            # This master is down or hung; that says nothing about the others.
            breaker.record_failure()
            self.report_error(op, exc)
            return default
        except RedisError as exc:
            # The server answered (OOM, READONLY, ...): reachable, so no breaker failure.
            breaker.record_success()
            self.breaker.record_success()
            self.report_error(op, exc)
            return default
        except Exception as exc:
            # RedisClusterException: a topology refresh reached no node. Or anything redis-py did not wrap.
            breaker.record_failure()
            self.breaker.record_failure()
            self.report_error(op, exc)
            return default
        breaker.record_success()
        self.breaker.record_success()
        return result

    def _on_some_node(self, op: str, fn: Callable[[RedisCluster, ClusterNode], T]) -> T | object:
        """``fn(client, node)`` on a master that looks healthy, then on another if that one fails."""
        client = self._connected(op)
        if client is None:
            return _FAILED
        for node in self._keyless_order(client)[: self._KEYLESS_TRIES]:
            result = self._on_node(op, node, lambda client, node=node: fn(client, node), _FAILED)
            if result is not _FAILED:
                return result
        return _FAILED

    def _keyless_order(self, client: RedisCluster) -> list[ClusterNode]:
        """Masters, this instance's preferred one first, those whose breaker saw failures last.

        A fixed preference keeps one publisher's messages in order: the cluster forwards a message
        to the other nodes over its bus, so two nodes may deliver two messages in either order.
        """
        nodes = sorted(client.get_primaries(), key=lambda node: node.name)
        start = self._node_offset % len(nodes)
        nodes = nodes[start:] + nodes[:start]

        def doubtful(node: ClusterNode) -> bool:
            breaker = self._node_breakers.get(node.name)
            return breaker is not None and (breaker.state is not CLOSED or breaker.consecutive_failures > 0)

        return sorted(nodes, key=doubtful)

    def _open_pubsub(self, attempt: int) -> tuple[Any, str]:
        """A subscriber connection of its own on one node; each failed attempt moves to the next node."""
        with self._connect_lock:
            if self._cluster is None:
                # The background thread builds the client too, but its failures are no request's: no breaker.
                self._cluster = self._build_cluster()
            client = self._cluster
        nodes = sorted(client.get_nodes(), key=lambda node: node.name)
        node = nodes[(self._node_offset + attempt) % len(nodes)]
        # Not the node's shared pool: a topology refresh recycles those connections, and with them
        # the subscription.
        pool = client.get_redis_connection(node).connection_pool
        own = redis.ConnectionPool(connection_class=pool.connection_class, **pool.connection_kwargs)
        return redis.Redis(connection_pool=own).pubsub(), node.name

    def _node_breaker_changed(self, name: str, state: str) -> None:
        if state is OPEN:
            log.warning(
                "redis cluster node %s breaker open after %d consecutive failures: skipping its keys for %ss",
                name, self.breaker.failure_threshold, self.breaker.reset_s,
            )
        elif state is CLOSED:
            log.warning("redis cluster node %s breaker closed: it answers again", name)


def _run_on_node(client: RedisCluster, node: ClusterNode, commands: list[tuple[Any, ...]]) -> list[Any]:
    """One pipeline to ``node``; commands answered with MOVED/ASK (a slot being moved) go through the
    cluster client, which follows the redirection. Raises the first other error."""
    pipe = client.get_redis_connection(node).pipeline(transaction=False)
    for command in commands:
        pipe.execute_command(*command)
    results = pipe.execute(raise_on_error=False)
    for index, result in enumerate(results):
        if isinstance(result, AskError):  # MovedError is an AskError
            results[index] = client.execute_command(*commands[index])
        elif isinstance(result, Exception):
            raise result
    return results


def _unlink_on_node(client: RedisCluster, node: ClusterNode, match: str) -> int:
    """SCAN one master for ``match`` and UNLINK what it finds, one command per slot."""
    deleted = 0
    batch: list[bytes] = []

    def flush() -> int:
        by_slot: dict[int, list[bytes]] = {}
        for key in batch:
            by_slot.setdefault(key_slot(key), []).append(key)
        batch.clear()
        return sum(_run_on_node(client, node, [("UNLINK", *keys) for keys in by_slot.values()]))

    for full in client.get_redis_connection(node).scan_iter(match=match, count=_SCAN_BATCH):
        batch.append(full)
        if len(batch) >= _SCAN_BATCH:
            deleted += flush()
    if batch:
        deleted += flush()
    return deleted

def _glob_escape(text: str) -> str:
    return "".join("\\" + char if char in "*?[]\\" else char for char in text)
