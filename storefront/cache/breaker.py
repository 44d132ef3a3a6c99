"""A circuit breaker: after N consecutive failures skip the backend for M seconds, then try it once."""

from __future__ import annotations

import threading
import time
from collections.abc import Callable

CLOSED = "closed"
OPEN = "open"
HALF_OPEN = "half_open"


class CircuitBreaker:
    """Closed: every call goes through. Open: none does, until ``reset_s`` has passed. Half-open: one
    trial call goes through; its success closes the breaker, its failure opens it again.

    ``on_change(state)`` is called (outside the lock) on every transition, for logging.
    """

    def __init__(
        self,
        failures: int,
        reset_s: float,
        *,
        clock: Callable[[], float] = time.monotonic,
        on_change: Callable[[str], None] | None = None,
    ) -> None:
        if failures < 1:
            raise ValueError("failures must be at least 1")
        self.failure_threshold = failures
        self.reset_s = reset_s
        self.on_change = on_change
        self._clock = clock
        self._lock = threading.Lock()
        self._state = CLOSED
        self._failures = 0
        self._opened_at = 0.0
        self._trial_at = 0.0

    @property
    def state(self) -> str:
        return self._state

    @property
    def consecutive_failures(self) -> int:
        return self._failures

    def allow(self) -> bool:
        """May a call go to the backend now? In half-open state this hands out the one trial."""
        if self._state is CLOSED:
            # Unlocked: reading one attribute is atomic, and this is every call's path.
            return True
        with self._lock:
            now = self._clock()
            if self._state is OPEN:
                if now - self._opened_at < self.reset_s:
                    return False
                self._state = HALF_OPEN
                self._trial_at = now
                changed = True
            elif self._state is HALF_OPEN:
                # A trial that never reported back (its thread died) must not wedge the breaker.
                if now - self._trial_at < self.reset_s:
                    return False
                self._trial_at = now
                changed = False
            else:
                return True
        if changed:
            self._notify(HALF_OPEN)
        return True

    def record_success(self) -> None:
        if self._state is CLOSED and self._failures == 0:
            return
        with self._lock:
            if self._state is OPEN:
                # A call admitted before the breaker opened: not evidence enough to close it.
                return
            changed = self._state is not CLOSED
            self._state = CLOSED
            self._failures = 0
        if changed:
            self._notify(CLOSED)

    def record_failure(self) -> None:
        with self._lock:
            if self._state is OPEN:
                return
            self._failures += 1
            if self._state is CLOSED and self._failures < self.failure_threshold:
                return
            self._state = OPEN
            self._opened_at = self._clock()
        self._notify(OPEN)

    def _notify(self, state: str) -> None:
        if self.on_change is not None:
            try:
                self.on_change(state)
            except Exception:  # a logging hook must never break a cache call
                pass
