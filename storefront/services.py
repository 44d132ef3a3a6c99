"""The backends one app uses (store, render cache, lookups), built once from settings and wired together."""

from __future__ import annotations

import dataclasses
import json
import logging
import threading

from storefront import metrics
from storefront.cache import RenderCache, create_render_cache
from storefront.settings import Settings
from storefront.store import Store, create_store
from storefront.widget_lookup import WidgetLookup
from storefront.widget_renders import WidgetRenders

log = logging.getLogger(__name__)

INVALIDATION_CHANNEL = "invalidate"


@dataclasses.dataclass
class Services:
    settings: Settings
    store: Store
    cache: RenderCache
    lookup: WidgetLookup
    renders: WidgetRenders
    _listener_lock: threading.Lock = dataclasses.field(default_factory=threading.Lock)
    _listener: object | None = None

    def changed(self, shop: str, *, kind: str | None = None, product_id: int | None = None) -> None:
        """A committed change that can alter renders of ``shop`` (narrowed by kind or product).

        Render keys carry the versions of the shop, the widget and the product, so the shared
        tier can never answer with bytes from before the change. What remains is each worker's
        in-process state: this worker drops it now, and the others on the broadcast message (or,
        if that is lost, when the short in-process TTL runs out).
        """
        tags = [f"shop:{shop}"] if kind is None and product_id is None else []
        if kind is not None:
            tags.append(f"widget:{shop}:{kind}")
        if product_id is not None:
            tags.append(f"product:{shop}:{product_id}")
        self._drop_local(shop, tags)
        if self.cache.shared is not None:
            self.cache.shared.publish(INVALIDATION_CHANNEL, json.dumps({"shop": shop, "tags": tags}))

    def _drop_local(self, shop: str, tags: list[str]) -> None:
        self.lookup.invalidate_shop([shop])
        self.cache.invalidate_tags(tags)

    def _on_message(self, data: bytes) -> None:
        try:
            message = json.loads(data)
            self._drop_local(str(message["shop"]), [str(tag) for tag in message["tags"]])
        except (ValueError, KeyError, TypeError):
            log.warning("ignored a malformed invalidation message")

    def start_request(self) -> None:
        """First request in this process: start listening for other workers' invalidations.

        Started lazily, never at import, so the thread belongs to the gunicorn worker, not the master.
        """
        if self._listener is not None or self.cache.shared is None:
            return
        with self._listener_lock:
            if self._listener is None:
                self._listener = self.cache.shared.listen(INVALIDATION_CHANNEL, self._on_message)

    def cache_status(self) -> str:
        """``ok``, ``down`` or ``disabled`` (no shared cache configured)."""
        if self.cache.shared is None:
            return "disabled"
        return "ok" if self.cache.shared.ping() else "down"

    def close_request(self) -> None:
        """End of a request: give back this thread's database connection."""
        self.store.close()


def build_services(settings: Settings) -> Services:
    # Nothing here connects: connections open lazily on first use in a request.
    store = create_store(settings.database_url, settings.db_timeout_s)
    cache = create_render_cache(settings, settings.redis_key_prefix, on_event=metrics.on_cache_event)
    return Services(
        settings=settings,
        store=store,
        cache=cache,
        lookup=WidgetLookup(store, settings.local_cache_ttl_s, settings.negative_ttl_s),
        renders=WidgetRenders(cache, settings),
    )
