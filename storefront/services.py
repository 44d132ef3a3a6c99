"""The backends one app uses (store, render cache, CDN purger), built once from settings."""

from __future__ import annotations

import dataclasses

from storefront.settings import Settings
from storefront.store import Store, create_store


@dataclasses.dataclass
class Services:
    settings: Settings
    store: Store

    def changed(self, shop: str, *, kind: str | None = None, product_id: int | None = None) -> None:
        """A committed change that can alter renders of ``shop`` (narrowed by kind or product).

        Render cache keys carry the versions of the shop, the widget and the product, so new
        requests already miss; this hook is where caches and the CDN are told as well.
        """

    def cache_status(self) -> str:
        """``ok``, ``down`` or ``disabled`` (no shared cache configured)."""
        return "disabled"

    def close_request(self) -> None:
        """End of a request: give back this thread's database connection."""
        self.store.close()


def build_services(settings: Settings) -> Services:
    # Nothing here connects: connections open lazily on first use in a request.
    return Services(settings=settings, store=create_store(settings.database_url, settings.db_timeout_s))
