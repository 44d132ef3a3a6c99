"""How long a worker may trust its in-process copies of store data: long while it hears invalidations."""

from __future__ import annotations

import threading
from typing import Protocol


class _Listening(Protocol):
    subscribed: threading.Event


class LocalFreshness:
    """The TTL for in-process lookups and hot URLs, and a generation that every invalidation bumps.

    While this worker is subscribed to the invalidation channel, every change reaches it within
    milliseconds (``changed`` waits for the acknowledgements), so its copies may live ``max_age_s``.
    Without the subscription (no Redis, or Redis unreachable) they live ``short_ttl_s``: the bound
    on staleness when a change cannot be heard. Losing or regaining the subscription bumps the
    generation too, because messages may have been missed in between.

    A reader notes ``generation`` before it reads the store and passes it to ``ttl_s``: if an
    invalidation arrived meanwhile, what it read may predate the change and gets the short TTL.
    """

    def __init__(self, short_ttl_s: float, max_age_s: float) -> None:
        self.short_ttl_s = short_ttl_s
        # A short TTL of 0 means nothing is kept in process at all, subscribed or not.
        self.max_age_s = max(max_age_s, short_ttl_s) if short_ttl_s > 0 else 0
        self.generation = 0
        self._subscription: _Listening | None = None
        self._lock = threading.Lock()

    def listen_through(self, subscription: _Listening | None) -> None:
        self._subscription = subscription

    def bump(self) -> None:
        with self._lock:
            self.generation += 1

    def ttl_s(self, since_generation: int) -> float:
        subscription = self._subscription
        if subscription is None or not subscription.subscribed.is_set():
            return self.short_ttl_s
        if since_generation != self.generation:
            return self.short_ttl_s
        return self.max_age_s
