"""What a widget render depends on (shop, published settings, product and their versions), looked up once."""

from __future__ import annotations

import dataclasses
import json
import sys
import threading
import time
from collections import OrderedDict
from collections.abc import Iterable
from typing import Any

from storefront.freshness import LocalFreshness
from storefront.store import Shop, Store

# The lookups' share of the default in-process budget (Settings.lookup_cache_bytes, an eighth of
# STOREFRONT_LOCAL_CACHE_BYTES): an entry is about 320 bytes, so 8 MiB keeps some 26,000 products.
DEFAULT_MAX_BYTES = 8 << 20
# Per entry besides the objects sized with sys.getsizeof: its OrderedDict slot, with the slack of a
# table that grows in steps (tracemalloc, CPython 3.11; tests/test_widget_lookup.py checks the total).
_SLOT_BYTES = 110
# Per shell: its slot in the table of current shells, and that slot's key tuple.
_SHELL_SLOT_BYTES = 80 + 56
# A shell keeps the inputs it last answered with for a few product versions (most products share a
# few low ones), so a kept lookup builds no object: each an instance, its versions string, a slot.
_VIEWS = 8
_VIEWS_BYTES = 360 + _VIEWS * (150 + 70 + 50)



@dataclasses.dataclass(frozen=True)
class RenderInputs:
    """Plain data for render_widget, plus the versions that make up the cache key."""

    shop: dict[str, Any]
    default_locale: str
    locales: tuple[str, ...]
    settings: dict[str, Any] | None
    settings_version: int | None
    product: dict[str, Any] | None
    versions: str
    # False for the copy kept in memory: it carries the versions (all a cache hit needs) but not
    # the settings and product documents, which a render decodes from what the lookup's read
    # brought along on the same thread, or else reads again (see WidgetLookup.read).
    complete: bool = True


class Missing(Exception):
    """The shop or product does not exist (``what`` says which)."""

    def __init__(self, what: str) -> None:
        super().__init__(what)
        self.what = what


class _Shell:
    """What the kept lookups of one shop and widget kind share while their versions agree.

    Kept once, not once per product: a product's entry adds only its own version.
    """

    __slots__ = ("shop_name", "kind", "shop", "default_locale", "locales", "settings_version", "prefix",
                 "views", "refs", "nbytes")

    def __init__(self, shop_name: str, kind: str, inputs: RenderInputs, prefix: str) -> None:
        self.shop_name = shop_name
        self.kind = kind
        self.shop = inputs.shop
        self.default_locale = inputs.default_locale
        self.locales = inputs.locales
        self.settings_version = inputs.settings_version
        self.prefix = prefix  # the versions up to the product's: "s3.w7.p"
        self.views: dict[int | str, RenderInputs] = {}
        self.refs = 0  # entries holding it; its bytes are counted while there are any
        self.nbytes = (sys.getsizeof(self) + _SHELL_SLOT_BYTES + _deep_size(shop_name) + _deep_size(kind)
                       + _deep_size(self.shop) + _deep_size(self.default_locale) + _deep_size(self.locales)
                       + _deep_size(prefix) + _VIEWS_BYTES)

    def matches(self, inputs: RenderInputs, prefix: str) -> bool:
        return (self.prefix == prefix and self.settings_version == inputs.settings_version
                and self.default_locale == inputs.default_locale and self.locales == inputs.locales
                and self.shop == inputs.shop)

    def inputs(self, product_version: int | str) -> RenderInputs:
        """The kept inputs for a product at ``product_version`` (caller holds the lookup's lock)."""
        inputs = self.views.get(product_version)
        if inputs is None:
            if len(self.views) >= _VIEWS:
                self.views.clear()
            inputs = self.views[product_version] = RenderInputs(
                shop=self.shop, default_locale=self.default_locale, locales=self.locales, settings=None,
                settings_version=self.settings_version, product=None,
                versions=f"{self.prefix}{product_version}", complete=False)
        return inputs


class _Entry:
    """One kept lookup: inputs (a shell and the product's version) or a remembered Missing."""

    __slots__ = ("expires", "shell", "detail", "nbytes")

    def __init__(self, expires: float, shell: _Shell | None, detail: int | str) -> None:
        self.expires = expires
        self.shell = shell
        self.detail = detail  # the product's version (or whole versions), or what is missing
        self.nbytes = 0


def _deep_size(value: Any) -> int:
    """Bytes of a plain JSON-like value: containers and everything they hold."""
    size = sys.getsizeof(value)
    if isinstance(value, dict):
        size += sum(_deep_size(key) + _deep_size(item) for key, item in value.items())
    elif isinstance(value, (list, tuple)):
        size += sum(_deep_size(item) for item in value)
    return size


class WidgetLookup:
    """Reads render inputs from the store and keeps them in-process for a short TTL.

    Keeping them saves three queries on every request that the render cache then answers. The
    TTL bounds staleness if an invalidation is missed; ``invalidate_shop`` (called on every
    change, in every worker) makes a change visible at once. Unknown shops and products are
    remembered too (for the negative TTL) so junk requests do not reach the database.

    What is kept is bounded in bytes (``max_bytes``: Settings.lookup_cache_bytes), least recently used
    first out: entries keep only versions, and the shop's part once per shop and widget kind.
    """

    def __init__(self, store: Store, ttl_s: float, negative_ttl_s: float, max_entries: int = 50_000,
                 freshness: LocalFreshness | None = None, *, max_bytes: int = DEFAULT_MAX_BYTES) -> None:
        self.store = store
        self.ttl_s = ttl_s
        # When given, it decides the TTL: long while this worker hears invalidations (freshness.py).
        self.freshness = freshness
        self.negative_ttl_s = negative_ttl_s
        self.max_entries = max_entries
        self.max_bytes = max_bytes
        self._entries: OrderedDict[tuple[str, str, int | None], _Entry] = OrderedDict()
        # (shop, kind) -> the shell new entries of that widget share while its versions hold.
        self._shells: dict[tuple[str, str], _Shell] = {}
        self._bytes = 0
        self._evictions = 0
        self._lock = threading.Lock()
        # The undecoded documents of this thread's last versions read, for the render that often
        # follows on the same thread (``read``): a cold URL then costs one statement, not two.
        self._handoff = threading.local()

    def lookup(self, shop: str, kind: str, product_id: int | None) -> RenderInputs:
        """Raises Missing for an unknown shop or product, StoreUnavailable when the database is down."""
        key = (shop, kind, product_id)
        now = time.monotonic()
        cached = self._entries.get(key)
        if cached is not None and cached.expires > now:
            shell = cached.shell
            with self._lock:
                if self._entries.get(key) is cached:
                    self._entries.move_to_end(key)
                if shell is not None:
                    return shell.inputs(cached.detail)
            # A new exception per request: raising a kept one would grow its traceback every time.
            raise Missing(cached.detail)
        freshness = self.freshness
        generation = freshness.generation if freshness is not None else 0
        found = self._read_versions(shop, kind, product_id)
        if isinstance(found, Missing):
            ttl = self.negative_ttl_s
        else:
            ttl = freshness.ttl_s(generation) if freshness is not None else self.ttl_s
        if ttl > 0:
            # Documents stay out of memory: thousands of products would otherwise hold
            # tens of kilobytes each here, outside the render cache's byte budget.
            self._keep(key, now + ttl, found)
        if isinstance(found, Missing):
            raise found
        return found

    def read(self, shop: str, kind: str, product_id: int | None, versions: str | None = None) -> RenderInputs:
        """Complete inputs (a render's own read). Raises Missing or StoreUnavailable.

        ``versions``: those of the key being rendered. When this thread's last lookup read exactly
        them, its documents are decoded instead of read again: the same snapshot, so the bytes
        match the key exactly. Otherwise they are read now, and can only be newer than the key.
        """
        if versions is not None:
            handed = getattr(self._handoff, "last", None)
            if handed is not None:
                self._handoff.last = None
                key, inputs, (product_text, settings_text) = handed
                if key == (shop, kind, product_id) and inputs.versions == versions:
                    return dataclasses.replace(
                        inputs, complete=True,
                        product=None if product_text is None else json.loads(product_text),
                        settings=None if settings_text is None else json.loads(settings_text))
        found = self._read(shop, kind, product_id)
        if isinstance(found, Missing):
            raise found
        return found

    def _read_versions(self, shop: str, kind: str, product_id: int | None) -> RenderInputs | Missing:
        """Inputs without the documents (complete=False): all a cache hit needs, nothing to decode."""
        record, product_version, published_version, documents = self.store.get_widget_versions(
            shop, kind, product_id)
        if record is None:
            return Missing("shop")
        if product_id is not None and product_version is None:
            return Missing("product")
        found = _inputs(record, published_version, product_version, None, None, complete=False)
        # Overwritten by the next read: at most one pair of documents per thread is held.
        self._handoff.last = None if documents is None else ((shop, kind, product_id), found, documents)
        return found

    def _read(self, shop: str, kind: str, product_id: int | None) -> RenderInputs | Missing:
        # One read for all three: one round trip on SQL stores (ids past 64 bits match nothing).
        record, product, published = self.store.get_widget_inputs(shop, kind, product_id)
        if record is None:
            return Missing("shop")
        if product_id is not None and product is None:
            return Missing("product")
        return _inputs(record, published.version if published else None, product.version if product else None,
                       published.settings if published else None, product.document if product else None,
                       complete=True)

    def invalidate_shop(self, shops: Iterable[str]) -> None:
        wanted = set(shops)
        with self._lock:
            for key in [k for k in self._entries if k[0] in wanted]:
                self._remove(key, self._entries[key])

    def clear(self) -> None:
        with self._lock:
            self._entries.clear()
            self._shells.clear()
            self._bytes = 0

    def stats(self) -> dict[str, int]:
        with self._lock:
            return {"entries": len(self._entries), "shells": len(self._shells), "bytes": self._bytes,
                    "max_bytes": self.max_bytes, "evictions": self._evictions}

    # -- kept entries ----------------------------------------------------------------------------

    def _keep(self, key: tuple[str, str, int | None], expires: float, found: RenderInputs | Missing) -> None:
        shop, kind, product_id = key
        if isinstance(found, Missing):
            entry = _Entry(expires, None, found.what)
            own = sys.getsizeof(shop) + sys.getsizeof(kind)  # this entry's own key strings
        else:
            head, sep, version = found.versions.rpartition(".p")
            prefix, detail = (head + sep, int(version)) if sep and version.isdigit() else ("", found.versions)
            entry = _Entry(expires, None, detail)
            own = 0
        entry.nbytes = (_SLOT_BYTES + sys.getsizeof(key) + sys.getsizeof(product_id) + sys.getsizeof(entry)
                        + sys.getsizeof(expires) + sys.getsizeof(entry.detail) + own)
        if entry.nbytes > self.max_bytes:
            return
        with self._lock:
            if not isinstance(found, Missing):
                shell = self._shells.get((shop, kind))
                if shell is None or not shell.matches(found, prefix):
                    shell = _Shell(shop, kind, found, prefix)
                    if shell.nbytes > self.max_bytes:
                        return
                    self._shells[(shell.shop_name, shell.kind)] = shell
                entry.shell = shell
                # The shell's strings, not the request's: one copy per shop, not per entry.
                key = (shell.shop_name, shell.kind, product_id)
                if shell.refs == 0:
                    self._bytes += shell.nbytes
                shell.refs += 1
            old = self._entries.pop(key, None)
            if old is not None:
                self._release(old)
            self._entries[key] = entry
            self._bytes += entry.nbytes
            while self._bytes > self.max_bytes or len(self._entries) > self.max_entries:
                oldest_key, oldest = self._entries.popitem(last=False)
                self._release(oldest)
                self._evictions += 1

    def _remove(self, key: tuple[str, str, int | None], entry: _Entry) -> None:
        # Caller holds the lock.
        del self._entries[key]
        self._release(entry)

    def _release(self, entry: _Entry) -> None:
        # Caller holds the lock; ``entry`` has left ``_entries``.
        self._bytes -= entry.nbytes
        shell = entry.shell
        if shell is not None:
            shell.refs -= 1
            if shell.refs == 0:
                self._bytes -= shell.nbytes
                if self._shells.get((shell.shop_name, shell.kind)) is shell:
                    del self._shells[(shell.shop_name, shell.kind)]


def _inputs(record: Shop, published_version: int | None, product_version: int | None,
            settings: dict[str, Any] | None, product: dict[str, Any] | None, *,
            complete: bool) -> RenderInputs:
    """RenderInputs from what a read found. The versions string is part of every cache key: one
    place builds it, so a lookup's key and a render's key always agree."""
    return RenderInputs(
        shop=record.to_json(), default_locale=record.default_locale, locales=tuple(record.locales),
        settings=settings, settings_version=published_version, product=product,
        versions=f"s{record.version}.w{published_version or 0}.p{product_version or 0}", complete=complete)
