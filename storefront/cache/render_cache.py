"""Renders by key across tiers: in-process, then Redis, then one render per key, with stale fallbacks.

Events reported through ``on_event(name, **labels)`` (each name always carries the same labels, so
the app can map them straight onto Prometheus counters):

- ``cache`` (tier=local|redis|wait, result=hit|miss|negative): a lookup; ``wait`` is a request
  that got its value from another thread's render in this process
- ``render``: a render succeeded and was stored
- ``render_error``: the render callable raised (never cached)
- ``not_found``: the render callable raised NotFoundRender (cached for ``negative_ttl_s``)
- ``stale``: a copy past its soft expiry (or the last good render) was served
- ``early_refresh``: XFetch chose this request to refresh an entry before its soft expiry
- ``backend_error`` (backend=redis): the shared tier failed and was answered like a miss
"""

from __future__ import annotations

import logging
import math
import random
import threading
import time
from collections.abc import Callable, Iterable
from types import TracebackType
from typing import Any, NamedTuple

from storefront.cache.entry import CachedRender, NotFoundEntry, decode_entry
from storefront.cache.local import LocalCache
from storefront.cache.rediscache import RedisCache

log = logging.getLogger(__name__)

HIT = "HIT"
MISS = "MISS"
STALE = "STALE"
# Where the versionless "last good" copies live, apart from the caller's versioned keys.
LAST_GOOD_PREFIX = "last-good:"

Render = Callable[[], tuple[bytes, str]]
# _newer_in_shared's "nothing read yet": None is what Redis answers for a missing key.
_UNREAD = object()


class _Absent(threading.local):
    key: str | None = None


class NotFoundRender(Exception):
    """Raised by a render callable when there is nothing to render (unknown shop or product).

    The cache remembers it for ``negative_ttl_s`` and raises it again without rendering.
    """


class CacheResult(NamedTuple):
    entry: CachedRender
    status: str  # HIT, MISS or STALE: what X-Cache says
    tier: str  # local, redis, wait (another thread's render), render, stale


class _Flight:
    """One render in progress in this process; other threads asking for the key wait on it."""

    __slots__ = ("done", "result", "error", "traceback")

    def __init__(self) -> None:
        self.done = threading.Event()
        self.result: CacheResult | None = None
        self.error: Exception | None = None
        self.traceback: TracebackType | None = None


class RenderCache:
    """Render results by key: a local LRU tier, a shared Redis tier, and single-flight rendering.

    ``key`` must already name every version the render depends on, so whatever is found under it
    is current. Every tier is optional and every backend failure degrades to rendering here: the
    only exceptions ``get_or_render`` raises are the render callable's own (NotFoundRender, or an
    error when no stale copy exists).
    """

    def __init__(
        self,
        local: LocalCache | None,
        shared: RedisCache | None,
        *,
        render_ttl_s: float,
        stale_ttl_s: float,
        local_ttl_s: float,
        lock_ttl_ms: int,
        lock_wait_ms: int,
        negative_ttl_s: float,
        on_event: Callable[..., None] | None = None,
        xfetch_beta: float = 1.0,
        rand: Callable[[], float] = random.random,
        clock: Callable[[], float] = time.time,
    ) -> None:
        self.local = local
        self.shared = shared
        self.render_ttl_s = render_ttl_s
        self.stale_ttl_s = stale_ttl_s
        self.local_ttl_s = local_ttl_s
        self.lock_ttl_ms = lock_ttl_ms
        self.lock_wait_ms = lock_wait_ms
        self.negative_ttl_s = negative_ttl_s
        self.on_event = on_event
        self.xfetch_beta = xfetch_beta
        self._rand = rand
        self._clock = clock
        self._flights: dict[str, _Flight] = {}
        self._flights_lock = threading.Lock()
        # The key this thread's last shared_hit found nothing under, for get_or_render to skip its
        # GET. Safe even if stale: leading a render re-reads the key with the lock.
        self._absent = _Absent()
        self._hook_failed_at = float("-inf")
        if shared is not None and shared.on_error is None:
            shared.on_error = self._backend_error

    # -- public ---------------------------------------------------------------------------------

    def get_or_render(
        self,
        key: str,
        render: Render,
        *,
        tags: Iterable[str] = (),
        last_good_key: str | None = None,
    ) -> CacheResult:
        """The render under ``key``: from a tier, or rendered once (per key, across workers) and stored.

        ``render()`` returns ``(body, content_type)``. If it raises, a copy past its soft expiry or
        the last good render under ``last_good_key`` is served as STALE; with neither, the
        exception propagates. NotFoundRender is remembered for ``negative_ttl_s``.
        """
        local = self.local
        if local is not None:
            found = local.get(key)
            if found is not None:
                if found.__class__ is CachedRender:
                    now = self._clock()
                    if not self._should_refresh(found, now):
                        if self.on_event is not None:
                            self._emit("cache", tier="local", result="hit")
                        return CacheResult(found, HIT, "local")
                    return self._refresh(key, render, tags, last_good_key, found, "local", now)
                if found.__class__ is NotFoundEntry:
                    self._emit("cache", tier="local", result="negative")
                    raise NotFoundRender(found.message)
            self._emit("cache", tier="local", result="miss")

        seen: CachedRender | None = None
        if self.shared is not None:
            # Redis held nothing under this key a moment ago (shared_hit, on this thread): the lock
            # reads the key again in its own round trip, so a GET here would only repeat that read.
            absent, self._absent.key = self._absent.key == key, None
            found = None if absent else decode_entry(self.shared.get(key))
            now = self._clock()
            if found.__class__ is CachedRender:
                if not self._should_refresh(found, now):
                    return self._redis_hit(key, found, tags)
                seen = found
            elif found.__class__ is NotFoundEntry and found.expires > now:
                self._keep_not_found_local(key, found, tags, now)
                self._emit("cache", tier="redis", result="negative")
                raise NotFoundRender(found.message)
            else:
                self._emit("cache", tier="redis", result="miss")
        return self._refresh(key, render, tags, last_good_key, seen, "redis", self._clock())

    def shared_hit(self, key: str, tags: Iterable[str] = (),
                   encoding: str | None = None) -> CacheResult | None:
        """A current render under ``key`` from Redis alone, kept in this process too; None otherwise.

        For a caller that already knows the key (the hot path): anything else (a miss, a stale or
        soon-to-expire copy, a remembered not-found, Redis down) is left to ``get_or_render``,
        which skips its own GET when this found nothing under the key. ``encoding``: the one body
        the caller sends; with no in-process tier to keep the render in, only that one is decoded.
        """
        if self.shared is None:
            return None
        value = self.shared.get(key)
        self._absent.key = key if value is None else None
        found = decode_entry(value, encoding if self.local is None else None)
        if found.__class__ is not CachedRender or self._should_refresh(found, self._clock()):
            return None
        return self._redis_hit(key, found, tags)

    def get_stale(self, last_good_key: str) -> CachedRender | None:
        """The last good render stored under ``last_good_key`` (local, then Redis), however old."""
        name = LAST_GOOD_PREFIX + last_good_key
        if self.local is not None:
            found = self.local.get(name)
            if found.__class__ is CachedRender:
                return found
        if self.shared is None:
            return None
        # The shared tier keeps a pointer to the versioned key rather than a second copy of the bytes.
        pointer = self.shared.get(name)
        if not pointer:
            return None
        entry = CachedRender.decode(self.shared.get(pointer.decode("utf-8", "replace")))
        if entry is not None and self.local is not None:
            self.local.set(name, entry, self.local_ttl_s)
        return entry

    def invalidate_tags(self, tags: Iterable[str]) -> int:
        """Drop this process's local entries carrying any of ``tags``; returns how many.

        The shared tier needs no deletion: its keys carry versions, so a change makes new keys.
        """
        if self.local is None:
            return 0
        return self.local.invalidate_tags(tags)

    def stats(self) -> dict[str, Any]:
        return {
            "local": self.local.stats() if self.local is not None else None,
            "redis": self.shared.stats() if self.shared is not None else None,
            "renders_in_flight": len(self._flights),
        }

    # -- single flight --------------------------------------------------------------------------

    def _refresh(
        self,
        key: str,
        render: Render,
        tags: Iterable[str],
        last_good_key: str | None,
        seen: CachedRender | None,
        seen_tier: str,
        now: float,
    ) -> CacheResult:
        # early: XFetch picked this request although ``seen`` is still current.
        early = seen is not None and now < seen.soft_expiry
        with self._flights_lock:
            flight = self._flights.get(key)
            leader = flight is None
            if leader:
                flight = self._flights[key] = _Flight()
        if not leader:
            if early:
                self._emit("cache", tier=seen_tier, result="hit")
                return CacheResult(seen, HIT, seen_tier)
            return self._follow(flight, key, render, tags, last_good_key, seen)
        try:
            if early:
                self._emit("early_refresh")
            result = self._lead(key, render, tags, last_good_key, seen, seen_tier, early)
        except Exception as exc:
            flight.error = exc
            flight.traceback = exc.__traceback__
            raise
        else:
            flight.result = result
            return result
        finally:
            with self._flights_lock:
                if self._flights.get(key) is flight:
                    del self._flights[key]
            flight.done.set()

    def _follow(
        self,
        flight: _Flight,
        key: str,
        render: Render,
        tags: Iterable[str],
        last_good_key: str | None,
        seen: CachedRender | None,
    ) -> CacheResult:
        """Wait for this process's leader; past lock_wait serve stale, past lock_ttl render alone."""
        wait_s = self.lock_wait_ms / 1000
        done = flight.done.wait(wait_s)
        if not done and seen is None:
            done = flight.done.wait(max(0.0, self.lock_ttl_ms / 1000 - wait_s))
        if done:
            if flight.error is not None:
                error = flight.error
                if isinstance(error, NotFoundRender):
                    raise NotFoundRender(*error.args)
                # Re-raise from the leader's traceback, not one grown by every earlier waiter.
                raise error.with_traceback(flight.traceback)
            if flight.result is not None:
                self._emit("cache", tier="wait", result="hit")
                status = STALE if flight.result.status == STALE else HIT
                return flight.result._replace(status=status, tier="wait")
            # The leader was interrupted (BaseException) before it had an outcome: render below.
        elif seen is not None:
            self._emit("stale")
            return CacheResult(seen, STALE, "stale")
        # A leader stuck for longer than a lock lives: never block a request on it forever.
        return self._render_and_store(key, render, tags, last_good_key, seen, "stale", False)

    def _lead(
        self,
        key: str,
        render: Render,
        tags: Iterable[str],
        last_good_key: str | None,
        seen: CachedRender | None,
        seen_tier: str,
        early: bool,
    ) -> CacheResult:
        shared = self.shared
        token: str | None = None
        if shared is not None:
            # The key is read in the same round trip: another worker may have stored it between our
            # GET and our lock.
            attempt = shared.acquire_lock(key, self.lock_ttl_ms, read=key)
            token = attempt.token
            if token is None and attempt.held_elsewhere:
                if early:
                    # Another worker is refreshing it; this copy is still current.
                    self._emit("cache", tier=seen_tier, result="hit")
                    return CacheResult(seen, HIT, seen_tier)
                result, token = self._wait_elsewhere(key, tags, seen)
                if result is not None:
                    return result
                if token is None and seen is not None:
                    self._emit("stale")
                    return CacheResult(seen, STALE, "stale")
                # Nothing stale and the other worker is still at it: render here, without the lock.
            elif token is not None:
                try:
                    result = self._newer_in_shared(key, tags, seen, attempt.value)
                except BaseException:
                    shared.release_lock(key, token)
                    raise
                if result is not None:
                    shared.release_lock(key, token)
                    return result
            # Otherwise Redis could not be asked: render anyway; the flight keeps it to one per process.
        return self._render_and_store(key, render, tags, last_good_key, seen, seen_tier, early, token)

    def _wait_elsewhere(
        self, key: str, tags: Iterable[str], seen: CachedRender | None
    ) -> tuple[CacheResult | None, str | None]:
        """Poll Redis while another worker renders: (its result, None), (None, our lock) or (None, None)."""
        shared = self.shared
        deadline = time.monotonic() + self.lock_wait_ms / 1000
        pause = 0.005
        while True:
            remaining = deadline - time.monotonic()
            if remaining <= 0 or not shared.available:
                return None, None
            time.sleep(min(pause, remaining))
            pause = min(pause * 2, 0.05)
            result = self._newer_in_shared(key, tags, seen)
            if result is not None:
                return result, None
            attempt = shared.acquire_lock(key, self.lock_ttl_ms, read=key)
            if attempt.token is not None:
                # The other worker gave up (its render failed, or its lock ran out): our turn, unless
                # it stored the value between the GET and the lock.
                try:
                    result = self._newer_in_shared(key, tags, seen, attempt.value)
                except BaseException:
                    shared.release_lock(key, attempt.token)
                    raise
                if result is not None:
                    shared.release_lock(key, attempt.token)
                    return result, None
                return None, attempt.token
            if not attempt.held_elsewhere:
                return None, None

    def _newer_in_shared(
        self, key: str, tags: Iterable[str], seen: CachedRender | None, value: Any = _UNREAD
    ) -> CacheResult | None:
        """A current value in Redis that is newer than ``seen``; raises for a remembered not-found.

        ``value``: what Redis holds under ``key``, when already read (with the lock); else a GET.
        """
        found = decode_entry(self.shared.get(key) if value is _UNREAD else value)
        now = self._clock()
        if found.__class__ is CachedRender:
            if found.soft_expiry > now and (seen is None or found.created > seen.created):
                return self._redis_hit(key, found, tags)
        elif found.__class__ is NotFoundEntry and found.expires > now:
            self._keep_not_found_local(key, found, tags, now)
            self._emit("cache", tier="redis", result="negative")
            raise NotFoundRender(found.message)
        return None

    # -- rendering and storing ------------------------------------------------------------------

    def _render_and_store(
        self,
        key: str,
        render: Render,
        tags: Iterable[str],
        last_good_key: str | None,
        seen: CachedRender | None,
        seen_tier: str,
        early: bool,
        token: str | None = None,
    ) -> CacheResult:
        """Render, compress and store; ``token``: this key's Redis lock, held, given back here."""
        try:
            started = time.perf_counter()
            try:
                body, content_type = render()
                render_ms = (time.perf_counter() - started) * 1000
                entry = CachedRender.build(body, content_type, render_ms, self.render_ttl_s,
                                           now=self._clock())
            except NotFoundRender as exc:
                self._emit("not_found")
                self._remember_not_found(key, tags, exc)
                raise
            except Exception:
                self._emit("render_error")
                if early and seen is not None:
                    # A failed early refresh costs nothing: the copy we have is still current.
                    self._emit("cache", tier=seen_tier, result="hit")
                    return CacheResult(seen, HIT, seen_tier)
                stale = seen
                if stale is None and last_good_key is not None:
                    stale = self.get_stale(last_good_key)
                if stale is None:
                    raise
                self._emit("stale")
                return CacheResult(stale, STALE, "stale")
            self._emit("render")
            # The lock goes with the writes, in the same round trip and after them, so a waiter that
            # sees it gone finds the value.
            self._store(key, entry, tags, last_good_key, token)
            token = None
            return CacheResult(entry, MISS, "render")
        finally:
            if token is not None:
                self.shared.release_lock(key, token)

    def _store(
        self, key: str, entry: CachedRender, tags: Iterable[str], last_good_key: str | None,
        token: str | None = None,
    ) -> None:
        keep_last_good = last_good_key is not None and self.stale_ttl_s > 0
        if self.local is not None:
            self.local.set(key, entry, self.local_ttl_s, tags)
            if keep_last_good:
                # Untagged on purpose: it is only served when rendering fails, as stale-if-error.
                self.local.set(LAST_GOOD_PREFIX + last_good_key, entry, self.stale_ttl_s)
        if self.shared is not None:
            writes = [(key, entry.encode(), self.render_ttl_s + self.stale_ttl_s)]
            if keep_last_good:
                writes.append((LAST_GOOD_PREFIX + last_good_key, key.encode("utf-8"), self.stale_ttl_s))
            self.shared.set_many(writes, unlock=None if token is None else (key, token))

    def _remember_not_found(self, key: str, tags: Iterable[str], exc: NotFoundRender) -> None:
        if self.negative_ttl_s <= 0:
            return
        now = self._clock()
        marker = NotFoundEntry(str(exc), now + self.negative_ttl_s)
        self._keep_not_found_local(key, marker, tags, now)
        if self.shared is not None:
            self.shared.set(key, marker.encode(), self.negative_ttl_s)

    def _redis_hit(self, key: str, entry: CachedRender, tags: Iterable[str]) -> CacheResult:
        """A current render found in Redis: kept in this process too, counted, answered as a HIT."""
        self._keep_local(key, entry, tags)
        self._emit("cache", tier="redis", result="hit")
        return CacheResult(entry, HIT, "redis")

    def _keep_local(self, key: str, entry: CachedRender, tags: Iterable[str]) -> None:
        if self.local is not None and not entry.partial:
            self.local.set(key, entry, self.local_ttl_s, tags)

    def _keep_not_found_local(self, key: str, marker: NotFoundEntry, tags: Iterable[str], now: float) -> None:
        if self.local is not None:
            self.local.set(key, marker, min(self.local_ttl_s, marker.expires - now), tags)

    # -- XFetch and events ----------------------------------------------------------------------

    def _should_refresh(self, entry: CachedRender, now: float) -> bool:
        """XFetch: refresh when ``now - delta * beta * ln(rand) >= expiry`` (delta = render time).

        The chance grows as expiry nears and with the cost of a render, so one request refreshes
        a hot key shortly before it expires instead of all of them just after.
        """
        remaining = entry.soft_expiry - now
        if remaining <= 0:
            return True
        delta = entry.render_ms * 0.001 * self.xfetch_beta
        if delta <= 0:
            return False
        draw = self._rand()
        if draw <= 0.0:
            return True
        return -delta * math.log(draw) >= remaining

    def _emit(self, name: str, **labels: str) -> None:
        hook = self.on_event
        if hook is None:
            return
        try:
            hook(name, **labels)
        except Exception:
            # A broken metrics hook must not fail requests, nor flood the log.
            now = time.monotonic()
            if now - self._hook_failed_at > 60:
                self._hook_failed_at = now
                log.exception("render cache on_event hook failed for %s", name)

    def _backend_error(self, backend: str, exc: BaseException) -> None:
        self._emit("backend_error", backend=backend)
