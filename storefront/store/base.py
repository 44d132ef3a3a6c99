"""The Store interface: what the rest of the app may ask of the database, and its records."""

from __future__ import annotations

import abc
import dataclasses
from typing import Any, NamedTuple

WIDGET_KINDS = ("subscription", "bundle", "loyalty")


class StoreError(Exception):
    """Base of every error a store raises on purpose."""


class StoreUnavailable(StoreError):
    """The database cannot be reached or did not answer in time (after one reconnect)."""


class NotFound(StoreError):
    """The shop, product, draft or version asked for does not exist."""


class Conflict(StoreError):
    """The change is impossible in the current state (for instance publish with no draft)."""


@dataclasses.dataclass(frozen=True)
class Shop:
    shop: str
    name: str
    currency: str
    money_format: str
    default_locale: str
    locales: tuple[str, ...]
    # Bumped on every update: part of every render's cache key.
    version: int
    created_at: str
    updated_at: str

    def to_json(self) -> dict[str, Any]:
        return {
            "shop": self.shop,
            "name": self.name,
            "currency": self.currency,
            "money_format": self.money_format,
            "default_locale": self.default_locale,
            "locales": list(self.locales),
            "version": self.version,
            "created_at": self.created_at,
            "updated_at": self.updated_at,
        }


@dataclasses.dataclass(frozen=True)
class Product:
    shop: str
    product_id: int
    # The validated Shopify product document (widget-model.md), as stored.
    document: dict[str, Any]
    # Bumped on every update: part of every render's cache key.
    version: int
    updated_at: str


@dataclasses.dataclass(frozen=True)
class PublishedVersion:
    version: int
    settings: dict[str, Any]
    published_at: str


class WidgetInputs(NamedTuple):
    """What a widget render reads: the shop, the product asked for and the published settings."""

    shop: Shop | None
    product: Product | None
    published: PublishedVersion | None


class WidgetVersions(NamedTuple):
    """What a cache key needs of a widget's inputs: the shop and the versions, documents undecoded."""

    shop: Shop | None
    product_version: int | None  # None: no product asked for, or it does not exist
    published_version: int | None  # None: never published
    # (product document, published settings) as the stored JSON text, read in the same statement
    # as the versions, each None where the version is; the whole pair None when this store did not
    # read them. Decoding is left to a render: most lookups end in a cache hit and never need them.
    documents: tuple[str | None, str | None] | None = None


@dataclasses.dataclass(frozen=True)
class WidgetState:
    shop: str
    kind: str
    draft: dict[str, Any] | None
    draft_updated_at: str | None
    published: PublishedVersion | None


class Store(abc.ABC):
    """One database behind one interface. Implementations: SQLiteStore, MySQLStore.

    Connections are per thread, opened lazily on first use and kept from one request to the
    next (:meth:`release` at the end of each; :meth:`close` ends this thread's, :meth:`close_all`
    every thread's). Nothing connects at import or construction time. Every method is atomic: it
    commits or changes nothing, and no connection is left inside a transaction between calls,
    so every call sees what was committed before it.
    Timestamps are UTC ISO-8601 strings with a ``Z`` suffix, second precision.
    """

    # -- schema -------------------------------------------------------------------------
    @abc.abstractmethod
    def migrate(self) -> list[str]:
        """Apply the numbered migrations not yet recorded; return the names applied."""

    @abc.abstractmethod
    def ping(self) -> None:
        """Raise StoreUnavailable unless the database answers a trivial query."""

    @abc.abstractmethod
    def close(self) -> None:
        """Close this thread's connection, if any (the next call opens another)."""

    def release(self) -> None:
        """End of a request: this thread's connection stays open for its next one, if it is fit to."""
        self.close()

    def close_all(self) -> None:
        """Close every thread's connection (shutdown, tests): only while no call is running."""
        self.close()

    # -- shops ---------------------------------------------------------------------------
    @abc.abstractmethod
    def get_shop(self, shop: str) -> Shop | None: ...

    @abc.abstractmethod
    def put_shop(self, shop: str, fields: dict[str, Any]) -> tuple[Shop, bool]:
        """Create or replace the shop's fields (name, currency, money_format,
        default_locale, locales). Returns (shop, created). An update bumps version."""

    @abc.abstractmethod
    def delete_shop(self, shop: str) -> bool:
        """Delete the shop with its products, widgets and versions. False if absent."""

    # -- products ------------------------------------------------------------------------
    @abc.abstractmethod
    def get_product(self, shop: str, product_id: int) -> Product | None: ...

    @abc.abstractmethod
    def put_product(self, shop: str, product_id: int, document: dict[str, Any]) -> tuple[Product, bool]:
        """Create or replace. Raises NotFound if the shop does not exist. Returns (product, created)."""

    @abc.abstractmethod
    def delete_product(self, shop: str, product_id: int) -> bool: ...

    @abc.abstractmethod
    def list_product_ids(self, shop: str) -> list[int]: ...

    # -- widgets -------------------------------------------------------------------------
    @abc.abstractmethod
    def get_widget(self, shop: str, kind: str) -> WidgetState:
        """The draft and the current published version (either may be None)."""

    @abc.abstractmethod
    def put_draft(self, shop: str, kind: str, settings: dict[str, Any]) -> WidgetState:
        """Store the complete (defaults filled) draft. Raises NotFound without the shop."""

    @abc.abstractmethod
    def publish(self, shop: str, kind: str) -> int:
        """Append the draft as the next version (gap-free, unique under concurrency) and
        make it current, atomically. Raises Conflict when there is no draft."""

    @abc.abstractmethod
    def rollback(self, shop: str, kind: str, version: int) -> int:
        """Re-publish version ``version``'s settings as a new version. NotFound if absent."""

    @abc.abstractmethod
    def list_versions(self, shop: str, kind: str) -> list[PublishedVersion]:
        """Every published version, oldest first."""

    def get_widget_inputs(self, shop: str, kind: str, product_id: int | None) -> WidgetInputs:
        """The shop, the product (None when ``product_id`` is None or it does not exist) and the
        widget's published version (None if never published), read together.

        Everything None when the shop does not exist. A store that can reads all three in one
        statement (one round trip, one snapshot); this fallback reads them one after another.
        """
        record = self.get_shop(shop)
        if record is None:
            return WidgetInputs(None, None, None)
        product = None if product_id is None else self.get_product(shop, product_id)
        return WidgetInputs(record, product, self.get_widget(shop, kind).published)

    def get_widget_versions(self, shop: str, kind: str, product_id: int | None) -> WidgetVersions:
        """``get_widget_inputs`` without decoding the product and settings documents.

        A cache hit needs only the versions. SQL stores also return the documents' text from the
        same statement (``documents``), for a render that follows to decode instead of reading
        again; this fallback does not, and a render reads them itself.
        """
        record, product, published = self.get_widget_inputs(shop, kind, product_id)
        return WidgetVersions(record, product.version if product is not None else None,
                              published.version if published is not None else None)

    # -- webhooks ------------------------------------------------------------------------
    @abc.abstractmethod
    def record_webhook(self, webhook_id: str) -> bool:
        """Remember a processed webhook id. True if new, False if already seen."""

    # -- read replicas -------------------------------------------------------------------
    @property
    def primary(self) -> Store:
        """The database that takes the writes; admin reads use it too. A lone store is its own."""
        return self

    def pin_primary(self, shop: str, seconds: float) -> None:
        """Read ``shop`` from the primary for ``seconds`` (after a change: read-your-writes).

        Only a store with a read replica has anything to do here.
        """
        return None
