"""The in-process cache tier: a thread-safe LRU bounded by bytes, with a short TTL and tags."""

from __future__ import annotations

import sys
import threading
import time
from collections import OrderedDict
from collections.abc import Callable, Iterable
from typing import Any

# What the tier's own structures hold besides keys and values, from tracemalloc on 64-bit CPython
# 3.11 (tests/cache/test_local.py checks the total against tracemalloc):
# - per entry: the item object with its expiry float and size int, and an OrderedDict slot;
ENTRY_OVERHEAD = 64 + 24 + 28 + 80
# - per tag an entry carries: the key's slot in that tag's set (sets grow in steps, hence the margin);
TAG_OVERHEAD = 100
# - per distinct tag: its string is kept once (entries share it), plus its set and the dict slots;
TAG_FIXED = 216 + 56 + 100
# - per distinct value: its slot in the table that counts a value stored under several keys once.
VALUE_OVERHEAD = 150


class _Item:
    __slots__ = ("value", "expires", "nbytes", "tags")

    def __init__(self, value: Any, expires: float, nbytes: int, tags: tuple[str, ...]) -> None:
        self.value = value
        self.expires = expires
        self.nbytes = nbytes  # the entry's own bytes: the value is counted in LocalCache._values
        self.tags = tags


def value_size(value: Any) -> int:
    """Bytes a value holds: its ``nbytes`` (CachedRender, memoryview), its size (bytes, str), or a guess."""
    nbytes = getattr(value, "nbytes", None)
    if isinstance(nbytes, int):
        return nbytes
    if isinstance(value, (bytes, bytearray, str)):
        return sys.getsizeof(value)
    # Not expected here; count something so an odd value still pushes out others.
    return 1024


def entry_size(key: str, tags: tuple[str, ...]) -> int:
    """Bytes one entry holds besides its value and its tags' shared parts: key, item, slots, tag tuple."""
    size = ENTRY_OVERHEAD + sys.getsizeof(key)
    if tags:
        size += sys.getsizeof(tags) + len(tags) * TAG_OVERHEAD
    return size


def tag_size(tag: str) -> int:
    return TAG_FIXED + sys.getsizeof(tag)


class LocalCache:
    """Values by key for one process. Values are kept as given (no copy, no encoding): a hit is a lookup.

    The byte budget counts what the tier keeps alive: each entry (key, item, slots), each distinct
    tag once, and each distinct value object once, however many keys hold it (the render cache
    keeps a render under its key and under its last-good key: one set of bodies, counted once).
    The least recently used entries go first when it is exceeded. Expired entries are dropped when
    touched or pushed out.
    """

    backend = "local"

    def __init__(self, max_bytes: int, *, clock: Callable[[], float] = time.monotonic) -> None:
        if max_bytes <= 0:
            raise ValueError("max_bytes must be positive (leave the tier out to disable it)")
        self.max_bytes = max_bytes
        self._clock = clock
        self._lock = threading.Lock()
        self._items: OrderedDict[str, _Item] = OrderedDict()
        # tag -> (the tag string every entry shares, the keys carrying it)
        self._by_tag: dict[str, tuple[str, set[str]]] = {}
        # id(value) -> (how many entries hold it, its counted bytes); an entry keeps its value alive,
        # so an id here always names the same object.
        self._values: dict[int, tuple[int, int]] = {}
        self._bytes = 0
        self._hits = 0
        self._misses = 0
        self._sets = 0
        self._evictions = 0
        self._expirations = 0
        self._invalidations = 0
        self._rejected = 0

    def get(self, key: str) -> Any | None:
        """The value kept for ``key``, or None."""
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
        value_bytes = value_size(value)
        nbytes = entry_size(key, tags)
        # Alone in the tier (nothing shared), could it fit at all?
        whole = nbytes + value_bytes + VALUE_OVERHEAD + sum(map(tag_size, tags))
        expires = self._clock() + ttl_s
        with self._lock:
            old = self._items.get(key)
            if old is not None:
                self._remove(key, old)
            if ttl_s <= 0 or whole > self.max_bytes:
                # Never leave the older value behind: a later get would return it as current.
                self._rejected += 1
                return False
            if tags:
                tags = tuple(self._tag(tag, key) for tag in tags)
            self._items[key] = _Item(value, expires, nbytes, tags)
            self._bytes += nbytes
            value_id = id(value)
            held = self._values.get(value_id)
            if held is None:
                self._values[value_id] = (1, value_bytes)
                self._bytes += value_bytes + VALUE_OVERHEAD
            else:
                self._values[value_id] = (held[0] + 1, held[1])
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
                tagged = self._by_tag.get(tag)
                if tagged is not None:
                    keys.update(tagged[1])
            for key in keys:
                self._remove(key, self._items[key])
            self._invalidations += len(keys)
            return len(keys)

    def clear(self) -> None:
        with self._lock:
            self._items.clear()
            self._by_tag.clear()
            self._values.clear()
            self._bytes = 0

    def __len__(self) -> int:
        return len(self._items)

    def stats(self) -> dict[str, int]:
        with self._lock:
            return {
                "entries": len(self._items),
                "values": len(self._values),
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

    def _tag(self, tag: str, key: str) -> str:
        # Caller holds the lock. Returns the one string kept for ``tag``.
        tagged = self._by_tag.get(tag)
        if tagged is None:
            tagged = self._by_tag[tag] = (tag, set())
            self._bytes += tag_size(tag)
        tagged[1].add(key)
        return tagged[0]

    def _remove(self, key: str, item: _Item) -> None:
        # Caller holds the lock.
        del self._items[key]
        self._bytes -= item.nbytes
        value_id = id(item.value)
        refs, value_bytes = self._values[value_id]
        if refs == 1:
            del self._values[value_id]
            self._bytes -= value_bytes + VALUE_OVERHEAD
        else:
            self._values[value_id] = (refs - 1, value_bytes)
        for tag in item.tags:
            tagged = self._by_tag.get(tag)
            if tagged is not None:
                tagged[1].discard(key)
                if not tagged[1]:
                    del self._by_tag[tag]
                    self._bytes -= tag_size(tag)
