"""PurgeQueue: CDN purges sent off the request path, coalesced, retried with backoff, never lost silently."""

from __future__ import annotations

import logging
import os
import random
import threading
import time
import weakref
from collections.abc import Callable, Iterable

from storefront.cdn.base import PurgeError, Purger, valid_tag
from storefront.cdn.noop import NoPurger

log = logging.getLogger(__name__)

OK = "ok"
RETRY = "retry"
FAILED = "failed"
DROPPED = "dropped"
INVALID = "invalid"


class PurgeQueue:
    """Tags to purge, sent by one daemon thread per process.

    ``submit`` only records the tags and returns: it never blocks on the CDN and never raises, so an
    admin request is as fast with a slow or failing CDN as without one. The worker thread starts on
    the first ``submit`` (never at import or construction, so it belongs to the gunicorn worker, not the
    master) and again in a forked child. It takes every pending tag (up to ``max_batch``) as one call
    to ``purger.purge``, so a burst of changes costs few API calls; a tag submitted again while pending
    is sent once. A failed call is retried with exponential backoff and jitter (``backoff_s``, doubling,
    each wait drawn from its upper half, at most ``max_backoff_s``, longer if the CDN says Retry-After)
    up to ``max_attempts`` calls; a refusal that cannot pass (4xx other than 408/429) is not retried.

    ``repeat_after_s`` > 0 purges each tag a second time that long after its first purge succeeded.
    Between a change and the moment every worker has dropped its in-process state (at most
    ``STOREFRONT_LOCAL_CACHE_TTL_S``; sooner with the Redis broadcast) a CDN refetching a purged object
    may get the old bytes from another worker and keep them for the whole edge TTL; the second purge
    clears such a copy. Pass a little more than that TTL.

    At most ``max_pending`` tags wait (and as many wait for their repeat); beyond that the oldest are
    dropped. Every outcome is logged when it is bad and reported through
    ``on_event("purge", result=..., cdn=purger.name, tags=n)`` with ``result`` one of ``ok``, ``retry``
    (an attempt failed, another follows), ``failed`` (given up), ``dropped`` (the queue was full) or
    ``invalid`` (malformed tags refused by ``submit``); ``tags`` is how many tags the event concerns.
    """

    def __init__(self, purger: Purger, *, max_pending: int = 10_000, max_batch: int = 1000,
                 max_attempts: int = 5, backoff_s: float = 0.5, max_backoff_s: float = 30.0,
                 repeat_after_s: float = 0.0, on_event: Callable[..., None] | None = None) -> None:
        if max_pending < 1 or max_batch < 1 or max_attempts < 1:
            raise ValueError("max_pending, max_batch and max_attempts must be at least 1")
        if backoff_s < 0 or max_backoff_s < backoff_s or repeat_after_s < 0:
            raise ValueError("need 0 <= backoff_s <= max_backoff_s and repeat_after_s >= 0")
        self.purger = purger
        self.max_pending = max_pending
        self.max_batch = max_batch
        self.max_attempts = max_attempts
        self.backoff_s = backoff_s
        self.max_backoff_s = max_backoff_s
        self.repeat_after_s = repeat_after_s
        self.on_event = on_event
        self._reset()
        # A child forked after the thread started inherits neither the thread nor a usable lock; it
        # starts afresh (its parent still owns, and sends, what was pending at the fork).
        reference = weakref.WeakMethod(self._reset)
        os.register_at_fork(after_in_child=lambda: (method := reference()) is not None and method())

    def _reset(self) -> None:
        self._cond = threading.Condition(threading.Lock())
        # Insertion-ordered, the oldest first. The value says whether a repeat is still owed after
        # this purge (True for a submitted tag, False for the repeat itself).
        self._pending: dict[str, bool] = {}
        # Tags whose repeat is due at the monotonic time given; in due order, as the delay is constant.
        self._repeats: dict[str, float] = {}
        self._in_flight = 0
        self._stopping = False
        self._thread: threading.Thread | None = None

    @property
    def pending(self) -> int:
        """Tags waiting, being sent, or waiting for their repeat."""
        with self._cond:
            return len(self._pending) + self._in_flight + len(self._repeats)

    def submit(self, tags: Iterable[str]) -> None:
        """Queue ``tags`` for purging and return at once. Never raises."""
        try:
            self._submit(tags)
        except Exception:  # the admin request that changed the data must not fail here
            log.exception("could not queue a CDN purge via %s", self.purger.name)

    def _submit(self, tags: Iterable[str]) -> None:
        if isinstance(tags, str):
            tags = (tags,)
        wanted = list(tags)
        valid = [tag for tag in wanted if valid_tag(tag)]
        if len(valid) != len(wanted):
            bad = [tag for tag in wanted if not valid_tag(tag)]
            log.error("refused %d malformed surrogate keys for %s, e.g. %.80r",
                      len(bad), self.purger.name, bad[0])
            self._event(INVALID, len(bad))
        if not valid or isinstance(self.purger, NoPurger):
            return
        with self._cond:
            owes_repeat = self.repeat_after_s > 0
            for tag in valid:
                # A tag already waiting keeps its place (and now owes a repeat, if any is due).
                self._pending[tag] = self._pending.get(tag, False) or owes_repeat
            dropped = self._trim(self._pending)
            self._ensure_worker()
            self._cond.notify_all()
        self._report_dropped(dropped, "waiting")

    def _trim(self, tags: dict[str, bool] | dict[str, float]) -> int:
        # Called with the lock held: the oldest tags beyond max_pending go.
        dropped = 0
        while len(tags) > self.max_pending:
            del tags[next(iter(tags))]
            dropped += 1
        return dropped

    def _report_dropped(self, dropped: int, where: str) -> None:
        if dropped:
            log.error("CDN purge queue for %s is full (%d tags %s): dropped the %d oldest; their CDN "
                      "copies may stay stale until they expire", self.purger.name, self.max_pending, where,
                      dropped)
            self._event(DROPPED, dropped)

    def _ensure_worker(self) -> None:
        # Called with the lock held.
        if self._thread is not None and self._thread.is_alive():
            return
        self._stopping = False
        thread = threading.Thread(target=self._run, name=f"storefront-purge-{self.purger.name}", daemon=True)
        thread.start()  # RuntimeError (no thread to be had) reaches submit's handler; the tags stay queued
        self._thread = thread

    def _idle(self) -> bool:
        return not self._pending and not self._in_flight and not self._repeats

    def flush(self, timeout: float) -> bool:
        """Wait until nothing is pending, in flight or owed a repeat; False if ``timeout`` passes first."""
        with self._cond:
            if not self._idle():
                self._ensure_worker()
            return self._cond.wait_for(self._idle, timeout)

    def close(self, timeout: float = 5.0) -> bool:
        """Flush for up to ``timeout`` seconds, then stop the worker (a purge still retrying is given up).

        For graceful shutdown; True if everything was sent. A later ``submit`` starts a worker again.
        """
        deadline = time.monotonic() + timeout
        flushed = self.flush(timeout)
        with self._cond:
            self._stopping = True
            thread = self._thread
            self._cond.notify_all()
        if thread is not None and thread is not threading.current_thread():
            # A request under way ends within the purger's timeout; the thread is a daemon either way.
            thread.join(max(deadline - time.monotonic(), 0.1))
        return flushed

    def _next_batch(self) -> dict[str, bool] | None:
        """The next tags to send (None: stop), waiting for submissions or repeats falling due."""
        with self._cond:
            while True:
                if self._stopping:
                    return None
                now = time.monotonic()
                while self._repeats:
                    tag, due = next(iter(self._repeats.items()))
                    if due > now:
                        break
                    del self._repeats[tag]
                    self._pending.setdefault(tag, False)
                if self._pending:
                    break
                wait = next(iter(self._repeats.values())) - now if self._repeats else None
                self._cond.wait(wait)
            batch: dict[str, bool] = {}
            for tag, owes_repeat in self._pending.items():
                batch[tag] = owes_repeat
                if len(batch) >= self.max_batch:
                    break
            for tag in batch:
                del self._pending[tag]
            self._in_flight = len(batch)
            return batch

    def _run(self) -> None:
        while (batch := self._next_batch()) is not None:
            dropped = 0
            try:
                if self._send(list(batch)) and self.repeat_after_s > 0:
                    due = time.monotonic() + self.repeat_after_s
                    with self._cond:
                        for tag, owes_repeat in batch.items():
                            if owes_repeat:
                                self._repeats.pop(tag, None)  # re-inserted: due order stays insertion order
                                self._repeats[tag] = due
                        dropped = self._trim(self._repeats)
            finally:
                with self._cond:
                    self._in_flight = 0
                    self._cond.notify_all()
            self._report_dropped(dropped, "awaiting a repeat")

    def _send(self, batch: list[str]) -> bool:
        """One purge call with its retries; True if it succeeded."""
        name = self.purger.name
        for attempt in range(1, self.max_attempts + 1):
            try:
                self.purger.purge(batch)
            except PurgeError as error:
                if not error.retryable or attempt == self.max_attempts:
                    why = "not retryable" if not error.retryable else f"after {attempt} attempts"
                    log.error("CDN purge of %d tags via %s failed (%s): %s", len(batch), name, why, error)
                    self._event(FAILED, len(batch))
                    return False
                delay = self._delay(attempt, error.retry_after)
                log.warning("CDN purge of %d tags via %s failed (attempt %d of %d), retrying in %.2fs: %s",
                            len(batch), name, attempt, self.max_attempts, delay, error)
                self._event(RETRY, len(batch))
                with self._cond:
                    if self._cond.wait_for(lambda: self._stopping, delay):
                        log.error("CDN purge of %d tags via %s given up at shutdown", len(batch), name)
                        self._event(FAILED, len(batch))
                        return False
            except Exception:  # a bug or a malformed tag: report it and keep the worker alive
                log.exception("CDN purge of %d tags via %s failed and will not be retried", len(batch), name)
                self._event(FAILED, len(batch))
                return False
            else:
                self._event(OK, len(batch))
                return True
        return False

    def _delay(self, attempt: int, retry_after: float | None) -> float:
        ceiling = min(self.backoff_s * 2 ** (attempt - 1), self.max_backoff_s)
        delay = random.uniform(ceiling / 2, ceiling)
        if retry_after is not None:
            delay = max(delay, min(retry_after, self.max_backoff_s))
        return delay

    def _event(self, result: str, count: int) -> None:
        if self.on_event is None:
            return
        try:
            self.on_event("purge", result=result, cdn=self.purger.name, tags=count)
        except Exception:  # metrics must never break purging
            log.exception("the purge event hook failed")

    def __repr__(self) -> str:
        return f"<PurgeQueue {self.purger!r} pending={self.pending}>"
