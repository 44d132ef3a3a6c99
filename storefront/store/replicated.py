"""A Store over a primary and a read replica: writes to the primary, reads from the replica unless pinned."""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable
from typing import Any, TypeVar

from storefront.store.base import (
    Product,
    PublishedVersion,
    Shop,
    Store,
    StoreUnavailable,
    WidgetInputs,
    WidgetState,
    WidgetVersions,
)

log = logging.getLogger(__name__)

T = TypeVar("T")

# After a replica fault, reads skip the replica for this long: a replica that hangs instead of
# refusing would otherwise cost every read its connect timeout (twice, with the reconnect) first.
REPLICA_RETRY_S = 5.0
# At most one warning a minute about a failing replica, however many reads it turns away.
FAULT_LOG_INTERVAL_S = 60.0
# Shops pinned one by one at most; past it every shop is read from the primary until the pins
# run out, which keeps read-your-writes and bounds memory whatever the rate of changes.
MAX_PINS = 100_000


class ReplicatedStore(Store):
    """Writes, migrations and webhook records go to ``primary``; reads go to ``replica``.

    A shop is *pinned* to the primary for a while after it changes (``pin_primary``, called by
    every worker on the change's invalidation, and by this store after its own writes), so the
    change is read back at once although the replica may lag behind. A replica that cannot be
    reached never fails a read: the read goes to the primary, and the replica is skipped for
    ``retry_s`` before it is tried again.
    """

    def __init__(
        self,
        primary: Store,
        replica: Store,
        pin_s: float,
        *,
        retry_s: float = REPLICA_RETRY_S,
        fault_log_interval_s: float = FAULT_LOG_INTERVAL_S,
        max_pins: int = MAX_PINS,
    ) -> None:
        if isinstance(pin_s, bool) or not isinstance(pin_s, int | float) or pin_s < 0:
            raise ValueError("pin_s must be a number of seconds, at least 0")
        if max_pins < 1:
            raise ValueError("max_pins must be at least 1")
        self._primary = primary
        self._replica = replica
        self.pin_s = pin_s
        self.retry_s = retry_s
        self.fault_log_interval_s = fault_log_interval_s
        self.max_pins = max_pins
        self._pins: dict[str, float] = {}  # shop -> monotonic deadline
        self._pin_all_until = 0.0
        self._pins_lock = threading.Lock()
        self._fault_lock = threading.Lock()
        self._replica_skipped_until = 0.0
        self._replica_failing = False
        self._fault_reported = False
        self._next_fault_report = 0.0
        self._faults_unreported = 0

    def __repr__(self) -> str:
        return f"ReplicatedStore(primary={self._primary!r}, replica={self._replica!r})"

    @property
    def primary(self) -> Store:
        return self._primary

    @property
    def replica(self) -> Store:
        return self._replica

    # -- pins ----------------------------------------------------------------------------
    def pin_primary(self, shop: str, seconds: float) -> None:
        if seconds <= 0:
            return
        now = time.monotonic()
        deadline = now + seconds
        with self._pins_lock:
            if deadline <= self._pins.get(shop, 0.0):
                return  # a pin is never shortened
            if shop not in self._pins and len(self._pins) >= self.max_pins:
                for pinned_shop, until in list(self._pins.items()):
                    if until <= now:
                        del self._pins[pinned_shop]
                if len(self._pins) >= self.max_pins:
                    # Too many shops changed at once to track one by one: pin them all instead,
                    # until the latest of their pins would have run out.
                    self._pin_all_until = max(self._pin_all_until, deadline, *self._pins.values())
                    self._pins.clear()
                    return
            self._pins[shop] = deadline

    def pinned(self, shop: str) -> bool:
        """Whether reads of ``shop`` go to the primary now."""
        now = time.monotonic()
        with self._pins_lock:
            return now < self._pin_all_until or now < self._pins.get(shop, 0.0)

    def pin_count(self) -> int:
        """Shops pinned one by one (expired pins included until they are swept)."""
        with self._pins_lock:
            return len(self._pins)

    # -- routing -------------------------------------------------------------------------
    def _read(self, shop: str, read: Callable[[Store], T]) -> T:
        if self.pinned(shop) or time.monotonic() < self._replica_skipped_until:
            return read(self._primary)
        try:
            result = read(self._replica)
        except StoreUnavailable as error:
            self._replica_fault(error)
            return read(self._primary)
        if self._replica_failing:
            self._replica_recovered()
        return result

    def _replica_fault(self, error: StoreUnavailable) -> None:
        now = time.monotonic()
        with self._fault_lock:
            self._replica_skipped_until = now + self.retry_s
            self._replica_failing = True
            self._faults_unreported += 1
            if now < self._next_fault_report:
                return
            self._next_fault_report = now + self.fault_log_interval_s
            faults, self._faults_unreported = self._faults_unreported, 0
            self._fault_reported = True
        log.warning(
            "read replica unavailable, reading from the primary (%d fault(s) since the last report;"
            " retried every %ss): %s", faults, self.retry_s, error,
        )

    def _replica_recovered(self) -> None:
        with self._fault_lock:
            if not self._replica_failing:
                return
            self._replica_failing = False
            # Only an outage that was reported gets its end reported: a flapping replica logs at
            # most a pair of lines per interval.
            reported, self._fault_reported = self._fault_reported, False
        if reported:
            log.warning("read replica answers again: reads go to it")

    def _write(self, shop: str, write: Callable[[Store], T]) -> T:
        result = write(self._primary)
        # This worker reads its own writes at once; other workers pin on the change's broadcast.
        self.pin_primary(shop, self.pin_s)
        return result

    # -- schema and connections ------------------------------------------------------------
    def migrate(self) -> list[str]:
        # A replica gets the schema through replication (and is read-only to us).
        return self._primary.migrate()

    def ping(self) -> None:
        # Readiness is the primary's: without the replica, reads fall back to it.
        self._primary.ping()

    def replica_ping(self) -> None:
        """Raise StoreUnavailable unless the replica answers a trivial query."""
        self._replica.ping()

    def close(self) -> None:
        try:
            self._replica.close()
        finally:
            self._primary.close()

    def release(self) -> None:
        try:
            self._replica.release()
        finally:
            self._primary.release()

    def close_all(self) -> None:
        try:
            self._replica.close_all()
        finally:
            self._primary.close_all()

    # -- shops ---------------------------------------------------------------------------
    def get_shop(self, shop: str) -> Shop | None:
        return self._read(shop, lambda store: store.get_shop(shop))

    def put_shop(self, shop: str, fields: dict[str, Any]) -> tuple[Shop, bool]:
        return self._write(shop, lambda store: store.put_shop(shop, fields))

    def delete_shop(self, shop: str) -> bool:
        return self._write(shop, lambda store: store.delete_shop(shop))

    # -- products ------------------------------------------------------------------------
    def get_product(self, shop: str, product_id: int) -> Product | None:
        return self._read(shop, lambda store: store.get_product(shop, product_id))

    def put_product(self, shop: str, product_id: int, document: dict[str, Any]) -> tuple[Product, bool]:
        return self._write(shop, lambda store: store.put_product(shop, product_id, document))

    def delete_product(self, shop: str, product_id: int) -> bool:
        return self._write(shop, lambda store: store.delete_product(shop, product_id))

    def list_product_ids(self, shop: str) -> list[int]:
        return self._read(shop, lambda store: store.list_product_ids(shop))

    # -- widgets -------------------------------------------------------------------------
    def get_widget(self, shop: str, kind: str) -> WidgetState:
        return self._read(shop, lambda store: store.get_widget(shop, kind))

    def put_draft(self, shop: str, kind: str, settings: dict[str, Any]) -> WidgetState:
        return self._write(shop, lambda store: store.put_draft(shop, kind, settings))

    def publish(self, shop: str, kind: str) -> int:
        return self._write(shop, lambda store: store.publish(shop, kind))

    def rollback(self, shop: str, kind: str, version: int) -> int:
        return self._write(shop, lambda store: store.rollback(shop, kind, version))

    def list_versions(self, shop: str, kind: str) -> list[PublishedVersion]:
        return self._read(shop, lambda store: store.list_versions(shop, kind))

    def get_widget_inputs(self, shop: str, kind: str, product_id: int | None) -> WidgetInputs:
        return self._read(shop, lambda store: store.get_widget_inputs(shop, kind, product_id))

    def get_widget_versions(self, shop: str, kind: str, product_id: int | None) -> WidgetVersions:
        return self._read(shop, lambda store: store.get_widget_versions(shop, kind, product_id))

    # -- webhooks ------------------------------------------------------------------------
    def record_webhook(self, webhook_id: str) -> bool:
        return self._primary.record_webhook(webhook_id)
