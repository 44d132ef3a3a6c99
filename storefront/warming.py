"""Cache warming: after a publish, render the affected widgets again in the background, a few at a time."""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor

from storefront.store import Store, StoreError
from storefront.web.widget_request import WidgetRequest
from storefront.widget_lookup import Missing, WidgetLookup
from storefront.widget_renders import WidgetRenders

log = logging.getLogger(__name__)

class CacheWarmer:
    """Re-renders a widget's renders after a publish so the first shopper does not pay for it.

    Runs on a small pool (``concurrency`` threads per process) off the request path; renders go
    through the render cache, so they take the same one-render-per-key lock as shoppers' requests
    and land in Redis for every worker. At most ``max_renders`` renders per publish: a shop with
    thousands of products warms its first ones and lets the rest fill on demand.
    """

    def __init__(self, store: Store, lookup: WidgetLookup, renders: WidgetRenders, *, concurrency: int = 2,
                 max_renders: int = 200, on_done: Callable[[int], None] | None = None) -> None:
        self.store = store
        self.lookup = lookup
        self.renders = renders
        self.concurrency = concurrency
        self.max_renders = max_renders
        self.on_done = on_done
        self._pool: ThreadPoolExecutor | None = None
        self._lock = threading.Lock()

    def warm(self, shop: str, kind: str) -> None:
        """Schedule warming of ``shop``'s ``kind`` widget; returns at once, never raises."""
        if self.max_renders <= 0:
            return
        with self._lock:
            if self._pool is None:  # created on first use: the threads belong to this worker process
                self._pool = ThreadPoolExecutor(self.concurrency, thread_name_prefix="storefront-warm")
            pool = self._pool
        try:
            pool.submit(self._warm, shop, kind)
        except RuntimeError:  # the pool is shutting down with the process
            pass

    def _requests(self, shop: str, kind: str) -> Iterator[WidgetRequest]:
        record = self.store.get_shop(shop)
        if record is None:
            return
        # One stylesheet per widget, whatever the product or language; then the scripts.
        yield WidgetRequest(shop=shop, kind=kind, fmt="css", product_id=None, locale=None)
        products: list[int | None] = [None]
        if kind != "loyalty":
            products = list(self.store.list_product_ids(shop))
        for product_id in products:
            for locale in record.locales:
                yield WidgetRequest(shop=shop, kind=kind, fmt="js", product_id=product_id, locale=locale)

    def _warm(self, shop: str, kind: str) -> None:
        done = 0
        try:
            for request in self._requests(shop, kind):
                if done >= self.max_renders:
                    break
                try:
                    inputs = self.lookup.lookup(request.shop, request.kind, request.product_id)
                    self.renders.get(request, inputs)  # stored in both tiers; the answer is not needed
                    done += 1
                except Missing:
                    continue
        except StoreError as error:
            log.warning("cache warming of %s %s stopped: %s", shop, kind, error)
        except Exception:  # a background thread has nobody to raise to
            log.exception("cache warming of %s %s failed", shop, kind)
        finally:
            self.store.close()
            if self.on_done is not None:
                self.on_done(done)
