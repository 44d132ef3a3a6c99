"""What a widget render depends on (shop, published settings, product and their versions), looked up once."""

from __future__ import annotations

import dataclasses
import threading
import time
from collections.abc import Iterable
from typing import Any

from storefront.freshness import LocalFreshness
from storefront.store import Store

MAX_PRODUCT_ID = 2**63 - 1


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
    # the settings and product documents, which a render re-reads (see WidgetLookup.read).
    complete: bool = True


class Missing(Exception):
    """The shop or product does not exist (``what`` says which)."""

    def __init__(self, what: str) -> None:
        super().__init__(what)
        self.what = what


class WidgetLookup:
    """Reads render inputs from the store and keeps them in-process for a short TTL.

    Keeping them saves three queries on every request that the render cache then answers. The
    TTL bounds staleness if an invalidation is missed; ``invalidate_shop`` (called on every
    change, in every worker) makes a change visible at once. Unknown shops and products are
    remembered too (for the negative TTL) so junk requests do not reach the database.
    """

    def __init__(self, store: Store, ttl_s: float, negative_ttl_s: float, max_entries: int = 50_000,
                 freshness: LocalFreshness | None = None) -> None:
        self.store = store
        self.ttl_s = ttl_s
        # When given, it decides the TTL: long while this worker hears invalidations (freshness.py).
        self.freshness = freshness
        self.negative_ttl_s = negative_ttl_s
        self.max_entries = max_entries
        self._entries: dict[tuple[str, str, int | None], tuple[float, RenderInputs | Missing]] = {}
        self._lock = threading.Lock()

    def lookup(self, shop: str, kind: str, product_id: int | None) -> RenderInputs:
        """Raises Missing for an unknown shop or product, StoreUnavailable when the database is down."""
        key = (shop, kind, product_id)
        now = time.monotonic()
        cached = self._entries.get(key)
        if cached is not None and cached[0] > now:
            found = cached[1]
        else:
            freshness = self.freshness
            generation = freshness.generation if freshness is not None else 0
            found = self._read(shop, kind, product_id)
            if isinstance(found, Missing):
                ttl = self.negative_ttl_s
            else:
                ttl = freshness.ttl_s(generation) if freshness is not None else self.ttl_s
            if ttl > 0:
                # Documents stay out of memory: thousands of products would otherwise hold
                # tens of kilobytes each here, outside the render cache's byte budget.
                kept = found if isinstance(found, Missing) else dataclasses.replace(
                    found, settings=None, product=None, complete=False)
                with self._lock:
                    if len(self._entries) >= self.max_entries:
                        self._entries.clear()  # crude but bounded; entries are cheap to rebuild
                    self._entries[key] = (now + ttl, kept)
        if isinstance(found, Missing):
            raise found
        return found

    def read(self, shop: str, kind: str, product_id: int | None) -> RenderInputs:
        """Complete inputs, read now (a render's own read). Raises Missing or StoreUnavailable."""
        found = self._read(shop, kind, product_id)
        if isinstance(found, Missing):
            raise found
        return found

    def _read(self, shop: str, kind: str, product_id: int | None) -> RenderInputs | Missing:
        record = self.store.get_shop(shop)
        if record is None:
            return Missing("shop")
        product = None
        if product_id is not None:
            product = self.store.get_product(shop, product_id) if product_id <= MAX_PRODUCT_ID else None
            if product is None:
                return Missing("product")
        published = self.store.get_widget(shop, kind).published
        versions = (f"s{record.version}.w{published.version if published else 0}"
                    f".p{product.version if product else 0}")
        return RenderInputs(
            shop=record.to_json(), default_locale=record.default_locale, locales=tuple(record.locales),
            settings=published.settings if published else None,
            settings_version=published.version if published else None,
            product=product.document if product else None, versions=versions)

    def invalidate_shop(self, shops: Iterable[str]) -> None:
        wanted = set(shops)
        with self._lock:
            for key in [k for k in self._entries if k[0] in wanted]:
                del self._entries[key]

    def clear(self) -> None:
        with self._lock:
            self._entries.clear()
