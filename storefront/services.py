"""The backends one app uses (store, render cache, lookups), built once from settings and wired together."""

from __future__ import annotations

import dataclasses
import json
import logging
import threading
import uuid

from storefront import metrics
from storefront.cache import RenderCache, Subscription, create_render_cache
from storefront.cdn import PurgeQueue, create_purger
from storefront.freshness import LocalFreshness
from storefront.preview_links import PreviewSigner
from storefront.settings import Settings
from storefront.store import Store, create_store
from storefront.warming import CacheWarmer
from storefront.web.hot_path import HotTargets
from storefront.widget_lookup import WidgetLookup
from storefront.widget_renders import WidgetRenders

log = logging.getLogger(__name__)

INVALIDATION_CHANNEL = "invalidate"
# How long an admin change waits for every worker to confirm it dropped its in-process state.
ACK_WAIT_S = 1.0


class _Acks:
    """Counts the acknowledgements of one invalidation message."""

    def __init__(self) -> None:
        self.count = 0
        self._condition = threading.Condition()

    def add(self) -> None:
        with self._condition:
            self.count += 1
            self._condition.notify_all()

    def wait(self, expected: int, timeout: float) -> bool:
        with self._condition:
            return self._condition.wait_for(lambda: self.count >= expected, timeout)


@dataclasses.dataclass
class Services:
    settings: Settings
    store: Store
    cache: RenderCache
    lookup: WidgetLookup
    renders: WidgetRenders
    preview_signer: PreviewSigner
    purger: PurgeQueue
    warmer: CacheWarmer
    hot_targets: HotTargets
    freshness: LocalFreshness
    _listener_lock: threading.Lock = dataclasses.field(default_factory=threading.Lock)
    _acks: dict[str, _Acks] = dataclasses.field(default_factory=dict)
    _listener: Subscription | None = None

    def changed(self, shop: str, *, kind: str | None = None, product_id: int | None = None) -> None:
        """A committed change that can alter renders of ``shop`` (narrowed by kind or product).

        Render keys carry the versions of the shop, the widget and the product, so the shared
        tier can never answer with bytes from before the change. What remains is each worker's
        in-process state (this worker drops it now, the others on the broadcast message or, if
        that is lost, when the short in-process TTL runs out) and the CDN's copies.
        """
        tags = self.scope_tags(shop, kind, product_id)
        # Pinned before the local state is dropped, so nothing re-reads it from a lagging replica.
        self.store.pin_primary(shop, self.settings.replica_pin_s)
        self._drop_local(shop, tags)
        self._broadcast(shop, tags)
        self.purger.submit(tags)

    def _broadcast(self, shop: str, tags: list[str]) -> None:
        """Tell every worker (on every host) and wait, briefly, until each has dropped its state.

        PUBLISH says how many listeners got the message; each answers with an ack once it has
        acted on it. Waiting for those acks (at most ``ACK_WAIT_S``) is what lets the admin
        request promise that the next public request, to any worker, sees the change.
        """
        shared = self.cache.shared
        if shared is None:
            return
        message_id = uuid.uuid4().hex
        waiter = _Acks()
        self._acks[message_id] = waiter
        try:
            receivers = shared.publish(INVALIDATION_CHANNEL, json.dumps(
                {"type": "invalidate", "id": message_id, "shop": shop, "tags": tags}))
            if receivers and not waiter.wait(receivers, ACK_WAIT_S):
                log.warning("invalidation of %s: %d of %d workers acknowledged within %.1fs",
                            shop, waiter.count, receivers, ACK_WAIT_S)
        finally:
            self._acks.pop(message_id, None)

    def purge(self, shop: str, *, kind: str | None = None, product_id: int | None = None) -> int:
        """Forget cached renders of a scope without a data change: Redis, every worker, the CDN.

        Returns how many shared-tier keys were deleted.
        """
        deleted = 0
        if self.cache.shared is not None:
            deleted = self.cache.shared.delete_matching(self.renders.purge_pattern(shop, kind, product_id))
        self.changed(shop, kind=kind, product_id=product_id)
        return deleted

    def deleted(self, shop: str, *, product_id: int | None = None) -> None:
        """A shop or product is gone. Its versions restart if it is created again, so its shared
        renders are deleted, not just left behind under keys a re-created one could reach."""
        self.purge(shop, product_id=product_id)

    @staticmethod
    def scope_tags(shop: str, kind: str | None, product_id: int | None) -> list[str]:
        """The surrogate keys naming a scope; the narrowest wins (kind and product: the product)."""
        if product_id is not None:
            return [f"product:{shop}:{product_id}"]
        if kind is not None:
            return [f"widget:{shop}:{kind}"]
        return [f"shop:{shop}"]

    def _drop_local(self, shop: str, tags: list[str]) -> None:
        # First: a lookup or hot URL being read right now is then kept only briefly (freshness.py).
        self.freshness.bump()
        self.hot_targets.clear()
        self.lookup.invalidate_shop([shop])
        self.cache.invalidate_tags(tags)

    def _on_message(self, data: bytes) -> None:
        try:
            message = json.loads(data)
            if message.get("type") == "ack":
                waiter = self._acks.get(str(message["id"]))
                if waiter is not None:
                    waiter.add()
                return
            shop, tags = str(message["shop"]), [str(tag) for tag in message["tags"]]
        except (ValueError, KeyError, TypeError, AttributeError):
            log.warning("ignored a malformed invalidation message")
            return
        # Every worker reads a changed shop from the primary for a while: read-your-writes.
        self.store.pin_primary(shop, self.settings.replica_pin_s)
        self._drop_local(shop, tags)
        if "id" in message and self.cache.shared is not None:
            self.cache.shared.publish(INVALIDATION_CHANNEL, json.dumps({"type": "ack", "id": message["id"]}))

    def start_request(self) -> None:
        """First request in this process: start listening for other workers' invalidations.

        Started lazily, never at import, so the thread belongs to the gunicorn worker, not the master.
        """
        if self._listener is not None or self.cache.shared is None:
            return
        with self._listener_lock:
            if self._listener is None:
                self._listener = self.cache.shared.listen(
                    INVALIDATION_CHANNEL, self._on_message,
                    on_resubscribe=self._drop_all_local, on_disconnect=self._drop_all_local)
                self.freshness.listen_through(self._listener)

    def _drop_all_local(self) -> None:
        """The subscription was lost or regained: changes may have gone unheard, so forget everything."""
        self.freshness.bump()
        self.hot_targets.clear()
        self.lookup.clear()

    def cache_status(self) -> str:
        """``ok``, ``down`` or ``disabled`` (no shared cache configured)."""
        if self.cache.shared is None:
            return "disabled"
        return "ok" if self.cache.shared.ping() else "down"

    def close_request(self) -> None:
        """End of a request: this thread's database connection is kept for its next request."""
        self.store.release()


def build_services(settings: Settings) -> Services:
    # Nothing here connects: connections open lazily on first use in a request.
    store = create_store(settings.database_url, settings.db_timeout_s,
                         replica_url=settings.database_replica_url, replica_pin_s=settings.replica_pin_s)
    cache = create_render_cache(settings, settings.redis_key_prefix, on_event=metrics.on_cache_event)
    freshness = LocalFreshness(settings.local_cache_ttl_s, settings.local_cache_max_age_s)
    lookup = WidgetLookup(store, settings.local_cache_ttl_s, settings.negative_ttl_s, freshness=freshness,
                          max_bytes=settings.lookup_cache_bytes)
    renders = WidgetRenders(cache, settings, lookup)
    return Services(
        freshness=freshness,
        settings=settings,
        store=store,
        cache=cache,
        lookup=lookup,
        renders=renders,
        hot_targets=HotTargets(cache, freshness, max_bytes=settings.hot_targets_bytes),
        warmer=CacheWarmer(store, lookup, renders, concurrency=settings.warm_concurrency,
                           max_renders=settings.warm_max_renders),
        # Development may run without a secret; its preview links are then signed with a fixed
        # key, which is fine for a laptop and refused in production by the settings check.
        preview_signer=PreviewSigner(settings.secret_key or "storefront-development-preview-key"),
        # Purged twice: the second time after the in-process TTL, the bound on how long another
        # worker that missed the invalidation message could hand the CDN a pre-change copy.
        purger=PurgeQueue(create_purger(settings.cdn_purge), on_event=metrics.on_purge_event,
                          repeat_after_s=settings.local_cache_ttl_s + 1 if settings.local_cache_ttl_s else 0),
    )
