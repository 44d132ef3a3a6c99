"""The shared cache tier over Redis: short timeouts, a circuit breaker, and every error turned into a miss."""

from __future__ import annotations

import logging
import secrets
import threading
import time
from collections import Counter
from collections.abc import Callable, Iterable
from typing import Any, NamedTuple, TypeVar

import redis
from redis.backoff import NoBackoff
from redis.exceptions import ConnectionError as RedisConnectionError
from redis.exceptions import RedisError
from redis.exceptions import TimeoutError as RedisTimeoutError
from redis.retry import Retry

from storefront.cache.breaker import CLOSED, OPEN, CircuitBreaker

log = logging.getLogger(__name__)

T = TypeVar("T")

# Compare-and-delete: a lock whose TTL ran out and was taken by another worker is not ours to drop.
_RELEASE_LOCK = """
if redis.call('get', KEYS[1]) == ARGV[1] then
    return redis.call('del', KEYS[1])
end
return 0
"""
_LOCK_NAMESPACE = "lock:"
_FAILED = object()


class LockAttempt(NamedTuple):
    """The outcome of ``acquire_lock``: ours (token), someone else's, or Redis could not be asked."""

    token: str | None
    held_elsewhere: bool

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

    Keys are stored under ``key_prefix``; nothing connects before the first call.
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
        self._client = redis.Redis.from_url(
            url,
            socket_connect_timeout=self.connect_timeout_s,
            socket_timeout=self.timeout_s,
            # redis-py retries 10 times by default: each retry would add a full timeout.
            retry=Retry(NoBackoff(), 0),
            health_check_interval=0,
            max_connections=max_connections,
            # RESP2 without CLIENT SETINFO: a new connection costs no round trip before the command
            # (RESP3 adds HELLO and maintenance-notification handshakes, which may relax timeouts).
            protocol=2,
            driver_info=None,
        )
        self._release_script = self._client.register_script(_RELEASE_LOCK)
        self._error_log = _ErrorLog(log, log_interval_s)
        self._stats_lock = threading.Lock()
        self._errors: Counter[str] = Counter()
        self._skipped = 0

    # -- the cache contract -------------------------------------------------------------------

    def get(self, key: str) -> bytes | None:
        full = self.key_prefix + key
        return self._call("get", lambda client: client.get(full), None)

    def set(self, key: str, value: bytes, ttl_s: float) -> bool:
        """Store ``value`` with a PX TTL; a TTL under a millisecond deletes the key instead."""
        px = int(ttl_s * 1000)
        if px <= 0:
            self.delete(key)
            return False
        full = self.key_prefix + key
        return bool(self._call("set", lambda client: client.set(full, value, px=px), False))

    def set_many(self, items: Iterable[tuple[str, bytes, float]]) -> bool:
        """Several ``(key, value, ttl_s)`` writes in one round trip (not atomic)."""
        writes = [(self.key_prefix + key, value, int(ttl_s * 1000)) for key, value, ttl_s in items]
        writes = [write for write in writes if write[2] > 0]
        if not writes:
            return True

        def run(client: redis.Redis) -> bool:
            pipe = client.pipeline(transaction=False)
            for full, value, px in writes:
                pipe.set(full, value, px=px)
            pipe.execute()
            return True

        return self._call("set", run, False)

    def delete(self, key: str) -> bool:
        full = self.key_prefix + key
        return bool(self._call("delete", lambda client: client.delete(full), 0))

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
            for full in client.scan_iter(match=_glob_escape(self.key_prefix) + pattern, count=500):
                batch.append(full)
                if len(batch) >= 500:
                    deleted += client.unlink(*batch)
                    batch.clear()
            if batch:
                deleted += client.unlink(*batch)
            return deleted

        return self._call("delete_matching", run, 0)

    # -- locks ----------------------------------------------------------------------------------

    def acquire_lock(self, name: str, ttl_ms: int) -> LockAttempt:
        """``SET lock NX PX ttl`` with a random token; only the token's holder can release it."""
        token = secrets.token_hex(16)
        full = self.key_prefix + _LOCK_NAMESPACE + name
        won = self._call("lock", lambda client: client.set(full, token, nx=True, px=ttl_ms), _FAILED)
        if won is _FAILED:
            return LockAttempt(None, False)
        return LockAttempt(token, False) if won else LockAttempt(None, True)

    def release_lock(self, name: str, token: str) -> bool:
        full = self.key_prefix + _LOCK_NAMESPACE + name
        return bool(self._call("unlock", lambda client: self._release_script(keys=[full], args=[token]), 0))

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
    ) -> Subscription:
        """Call ``callback(data)`` for each message on ``channel``, from a daemon thread, until stop().

        Messages published while disconnected are lost; ``on_resubscribe`` runs after every
        re-subscription (not the first) so the caller can drop what it may have missed.
        """
        subscription = Subscription(self, channel, callback, on_resubscribe, ping_interval_s)
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
        self._client.close()

    def _call(self, op: str, fn: Callable[[redis.Redis], T], default: T) -> T:
        if not self.breaker.allow():
            with self._stats_lock:
                self._skipped += 1
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
    """A daemon thread subscribed to one channel; it resubscribes after errors with a capped backoff."""

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
    ) -> None:
        self.channel = channel
        self._cache = cache
        self._full_channel = cache.key_prefix + channel
        self._callback = callback
        self._on_resubscribe = on_resubscribe
        self._ping_interval_s = ping_interval_s
        self._stopping = threading.Event()
        # Set while subscribed (tests and readiness checks wait on it).
        self.subscribed = threading.Event()
        self.subscriptions = 0
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
                pubsub = self._cache._client.pubsub()
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
                self.subscribed.clear()
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

    def _deliver(self, data: bytes) -> None:
        try:
            self._callback(data)
        except Exception:
            log.exception("redis message callback for %s failed", self.channel)


def _glob_escape(text: str) -> str:
    return "".join("\\" + char if char in "*?[]\\" else char for char in text)
