"""The in-process cache tier: a thread-safe LRU bounded by bytes, with a short TTL and tags."""

from __future__ import annotations

import threading
import time
from collections import OrderedDict
from collections.abc import Callable, Iterable
from typing import Any

# What one entry costs beyond its value: the OrderedDict slot, the item object, the key string.
ENTRY_OVERHEAD = 256
TAG_OVERHEAD = 64


class _Item:
    __slots__ = ("value", "expires", "nbytes", "tags")

    def __init__(self, value: Any, expires: float, nbytes: int, tags: tuple[str, ...]) -> None:
        self.value = value
        self.expires = expires
        self.nbytes = nbytes
        self.tags = tags


def value_size(value: Any) -> int:
    """Bytes a value holds: its ``nbytes`` (CachedRender, memoryview), its length (bytes), or a guess."""
    nbytes = getattr(value, "nbytes", None)
    if isinstance(nbytes, int):
        return nbytes
    if isinstance(value, (bytes, bytearray, str)):
        return len(value)
    # Not expected here; count something so an odd value still pushes out others.
    return 1024


class LocalCache:
    """Values by key for one process. Values are kept as given (no copy, no encoding): a hit is a lookup.

    The byte budget counts each value's size plus a per-entry estimate; the least recently used
    entries go first when it is exceeded. Expired entries are dropped when touched or pushed out.
    """

    backend = "local"

    def __init__(self, max_bytes: int, *, clock: Callable[[], float] = time.monotonic) -> None:
        if max_bytes <= 0:
            raise ValueError("max_bytes must be positive (leave the tier out to disable it)")
        self.max_bytes = max_bytes
        self._clock = clock
        self._lock = threading.Lock()
        self._items: OrderedDict[str, _Item] = OrderedDict()
        self._by_tag: dict[str, set[str]] = {}
        self._bytes = 0
        self._hits = 0
        self._misses = 0
        self._sets = 0
        self._evictions = 0
        self._expirations = 0
        self._invalidations = 0
        self._rejected = 0

    def get(self, key: str) -> Any | None:
        now = self._clock()
        with self._lock:
            item = self._items.get(key)
            if item is None:
                self._misses += 1
                return None
            if item.expires <= now:
                self._remove(key, item)
                self._expirations += 1
                self._misses += 1
                return None
            self._items.move_to_end(key)
            self._hits += 1
            return item.value

    def set(self, key: str, value: Any, ttl_s: float, tags: Iterable[str] = ()) -> bool:
        """Store ``value`` for ``ttl_s`` seconds; False (and any older value dropped) if it cannot be kept."""
        tags = tuple(tags)
        nbytes = value_size(value) + ENTRY_OVERHEAD + len(key) + sum(len(tag) + TAG_OVERHEAD for tag in tags)
        expires = self._clock() + ttl_s
        with self._lock:
            old = self._items.get(key)
            if old is not None:
                self._remove(key, old)
            if ttl_s <= 0 or nbytes > self.max_bytes:
                # Never leave the older value behind: a later get would return it as current.
                self._rejected += 1
                return False
            self._items[key] = _Item(value, expires, nbytes, tags)
            self._bytes += nbytes
            for tag in tags:
                keys = self._by_tag.get(tag)
                if keys is None:
                    self._by_tag[tag] = {key}
                else:
                    keys.add(key)
            self._sets += 1
            while self._bytes > self.max_bytes:
                oldest_key, oldest = next(iter(self._items.items()))
                self._remove(oldest_key, oldest)
                self._evictions += 1
            return True

    def delete(self, key: str) -> bool:
        with self._lock:
            item = self._items.get(key)
            if item is None:
                return False
            self._remove(key, item)
            return True

    def invalidate_tags(self, tags: Iterable[str]) -> int:
        """Drop every entry carrying any of ``tags``; returns how many were dropped."""
        with self._lock:
            keys: set[str] = set()
            for tag in tags:
                keys.update(self._by_tag.get(tag, ()))
            for key in keys:
                self._remove(key, self._items[key])
            self._invalidations += len(keys)
            return len(keys)

    def clear(self) -> None:
        with self._lock:
            self._items.clear()
            self._by_tag.clear()
            self._bytes = 0

    def __len__(self) -> int:
        return len(self._items)

    def stats(self) -> dict[str, int]:
        with self._lock:
            return {
                "entries": len(self._items),
                "bytes": self._bytes,
                "max_bytes": self.max_bytes,
                "tags": len(self._by_tag),
                "hits": self._hits,
                "misses": self._misses,
                "sets": self._sets,
                "evictions": self._evictions,
                "expirations": self._expirations,
                "invalidations": self._invalidations,
                "rejected": self._rejected,
            }

    def _remove(self, key: str, item: _Item) -> None:
        # Caller holds the lock.
        del self._items[key]
        self._bytes -= item.nbytes
        for tag in item.tags:
            keys = self._by_tag.get(tag)
            if keys is not None:
                keys.discard(key)
                if not keys:
                    del self._by_tag[tag]
