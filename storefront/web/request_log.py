"""One structured JSON log line per request, the X-Request-ID header, and the request latency histogram."""

from __future__ import annotations

import collections
import itertools
import json
import logging
import os
import re
import secrets
import time
from typing import Any

from flask import Flask, Response, g, has_request_context, request

from storefront import metrics, per_process
from storefront.per_process import ProcessLoop

log = logging.getLogger("storefront.access")

# An incoming id is echoed only if it is short and plain: it ends up in logs and headers.
REQUEST_ID_PATTERN = re.compile(r"[A-Za-z0-9._:-]{1,64}")


def _seed_request_ids() -> None:
    global _id_prefix, _id_counter
    _id_prefix = secrets.token_hex(8)
    _id_counter = itertools.count(1)


_id_prefix = ""
_id_counter = itertools.count(1)
_seed_request_ids()
# A forked worker must not repeat its parent's (or a sibling's) ids.
os.register_at_fork(after_in_child=_seed_request_ids)


def new_request_id() -> str:
    """32 hex digits, unique across workers and restarts: a random per-process prefix and a counter.

    A uuid4 per request costs 16 bytes from the kernel and an object; this costs a counter step.
    """
    return f"{_id_prefix}{next(_id_counter):016x}"


def annotate(**fields: Any) -> None:
    """Add fields (shop, kind, cache status, tier, render time...) to this request's log line."""
    g.setdefault("log_fields", {}).update(fields)


def register_request_log(app: Flask) -> None:
    @app.before_request
    def _begin() -> None:
        g.started = time.perf_counter()
        incoming = request.headers.get("X-Request-ID", "")
        g.request_id = incoming if REQUEST_ID_PATTERN.fullmatch(incoming) else new_request_id()

    @app.after_request
    def _finish(response: Response) -> Response:
        response.headers["X-Request-ID"] = g.get("request_id", "")
        started = g.get("started")
        if started is None:
            return response
        elapsed = time.perf_counter() - started
        endpoint = request.blueprint or "other"
        metrics.REQUEST_DURATION.labels(endpoint).observe(elapsed)
        # The path only: query strings may carry signatures and preview tokens.
        log_request(g.request_id, request.method, request.path, response.status_code, elapsed,
                    g.get("log_fields", {}))
        return response


def log_request(request_id: str, method: str, path: str, status: int, elapsed_s: float,
                fields: dict[str, Any]) -> None:
    """A request's access line through ``logging`` (the hot path writes the same line itself)."""
    if log.isEnabledFor(logging.INFO):
        line: dict[str, Any] = {"request_id": request_id, "pid": per_process.pid, "method": method,
                                "path": path, "status": status, "total_ms": milliseconds(elapsed_s)}
        line.update(fields)
        log.info("request", extra={"fields": line})


def milliseconds(seconds: float) -> float:
    """``seconds`` in milliseconds to the microsecond, as ``round(seconds * 1000, 3)`` gives them.

    An integer over 1000 prints as its shortest decimal, like the rounded float, at a quarter
    of the cost (``round`` with digits goes through decimal strings), once per access line.
    """
    return int(seconds * 1_000_000 + 0.5) / 1000


def log_time(created: float) -> str:
    """``created`` as the log lines' UTC timestamp with milliseconds; the seconds part is cached."""
    global _second
    whole = int(created)
    second = _second
    if second[0] != whole:
        second = _second = (whole, time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(whole)))
    # A table lookup, not a format spec per line (min: a fraction a hair below 1 may round up).
    return second[1] + _MILLIS[min(int((created - whole) * 1000), 999)]


_second: tuple[int, str] = (-1, "")
_MILLIS = tuple(f".{millis:03d}Z" for millis in range(1000))


class JsonFormatter(logging.Formatter):
    """Every log record as one JSON object; a request's line carries its fields at the top level."""

    def format(self, record: logging.LogRecord) -> str:
        entry: dict[str, Any] = {
            "time": log_time(record.created),
            "level": record.levelname.lower(),
            "logger": record.name,
            "message": record.getMessage(),
        }
        fields = getattr(record, "fields", None)
        if isinstance(fields, dict):
            entry.update(fields)
        elif has_request_context() and g.get("request_id"):
            entry["request_id"] = g.request_id
        if record.exc_info:
            entry["exception"] = self.formatException(record.exc_info)
        return json.dumps(entry, separators=(",", ":"), ensure_ascii=False)


class JsonLineHandler(logging.StreamHandler):  # type: ignore[type-arg]
    """The app's own log handler: JsonFormatter lines on stderr, written in batches.

    A write per line is a system call per request, and in a threaded worker each one also hands
    the GIL to another thread. Lines are therefore collected and written together at least every
    ``FLUSH_S`` seconds (as nginx's ``access_log ... buffer= flush=``), at once when ``MAX_PENDING``
    characters wait or a WARNING or worse arrives, and at exit (``logging.shutdown`` flushes).
    A process killed outright loses at most its last ``FLUSH_S`` of lines.

    Adding a line takes no lock (a deque's append is atomic), so request threads never wait for
    one another or for a write in progress; only writers of a batch take the handler's lock.
    """

    FLUSH_S = 0.5
    MAX_PENDING = 64 * 1024

    def __init__(self, stream: Any = None) -> None:
        super().__init__(stream)
        self.setFormatter(JsonFormatter())
        # Formatted lines, and the fields of access lines still to format (``write_access``).
        self._pending: collections.deque[str | tuple[Any, ...]] = collections.deque()
        # Approximate (updated without a lock): it only decides when a batch is big enough.
        self._pending_chars = 0
        self._flusher = ProcessLoop(self.flush, self.FLUSH_S, "log-flush")

    def emit(self, record: logging.LogRecord) -> None:
        try:
            line = self.format(record)
        except Exception:
            self.handleError(record)
            return
        self.write_line(line, urgent=record.levelno >= logging.WARNING)

    def write_line(self, line: str, urgent: bool = False) -> None:
        """One formatted JSON line, written with the next batch (now, if ``urgent``)."""
        self._pending.append(line)
        self._queued(len(line) + 1, urgent)

    def write_access(self, created: float, request_id: str, method: str, path_json: str, status: int,
                     elapsed_s: float, tail: str) -> None:
        """An access line (``access_line``'s fields), formatted when its batch is written.

        Formatted one by one between requests, a line costs the hot path as much as the rest of an
        in-process hit (its code and data gone cold from the caches in between); a batch formats
        them all in one warm loop. The order of lines is kept.
        """
        self._pending.append((created, request_id, method, path_json, status, elapsed_s, tail))
        self._queued(_ACCESS_LINE_CHARS + len(path_json) + len(tail))

    def _queued(self, chars: int, urgent: bool = False) -> None:
        """A line of about ``chars`` characters was queued: write the batch now if it is due."""
        self._pending_chars += chars
        if urgent or self._pending_chars >= self.MAX_PENDING:
            self.flush()
            return
        self._flusher.ensure_running()

    def flush(self) -> None:
        with self.lock:  # type: ignore[union-attr]
            self._write_pending()

    def _write_pending(self) -> None:
        # Caller holds the lock. Lines appended meanwhile either make this batch or wait for the next.
        pending = self._pending
        batch = []
        for _ in range(len(pending)):
            line = pending.popleft()
            batch.append(line if line.__class__ is str else access_line(*line))
        if batch:
            self._pending_chars = 0
            try:
                self.stream.write(self.terminator.join(batch) + self.terminator)
            except Exception:  # a log line must never fail a request
                pass
        try:
            if self.stream and hasattr(self.stream, "flush"):
                self.stream.flush()
        except Exception:
            pass


_root = logging.getLogger()
# An access line's length besides its path and tail (time, id, names): it only sizes the batches.
_ACCESS_LINE_CHARS = 190


def direct_access_handler() -> JsonLineHandler | None:
    """The handler to write access lines to directly, when logging is configured as the app does it.

    That is: the access logger is enabled for INFO and only propagates to the root logger, whose
    only handler is the app's JsonLineHandler. A line is then exactly what ``log.info`` would
    write, without building a LogRecord per request. Any other set-up (a test's caplog, a host
    process's own handlers) gets None, and the caller logs the ordinary way.
    """
    handlers = _root.handlers
    if len(handlers) != 1 or log.handlers or not log.isEnabledFor(logging.INFO):
        return None
    handler = handlers[0]
    if handler.__class__ is not JsonLineHandler or handler.filters or handler.level > logging.INFO:
        return None
    return handler  # type: ignore[return-value]


def json_fields(fields: dict[str, Any]) -> str:
    """``fields`` as the inside of a JSON object, with a leading comma, to append to a line."""
    return "," + json.dumps(fields, separators=(",", ":"), ensure_ascii=False)[1:-1] if fields else ""


def access_line(created: float, request_id: str, method: str, path_json: str, status: int,
                elapsed_s: float, tail: str) -> str:
    """The access log line JsonFormatter would write for these fields; ``tail`` from json_fields.

    ``request_id`` and ``method`` need no escaping (REQUEST_ID_PATTERN, GET/HEAD); ``path_json``
    is already a JSON string.
    """
    return (f'{{"time":"{log_time(created)}","level":"info","logger":"storefront.access",'
            f'"message":"request","request_id":"{request_id}","pid":{per_process.pid},"method":"{method}",'
            f'"path":{path_json},"status":{status},"total_ms":{milliseconds(elapsed_s)}{tail}}}')
