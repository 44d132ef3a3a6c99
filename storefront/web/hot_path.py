"""The hot path: a WSGI layer in front of Flask that answers cache hits and 304s for known URLs.

Most widget requests repeat a URL this worker has already answered. For those, routing, validation,
the lookup and Flask's request machinery would only reach the same conclusion again, so the first
full answer leaves a note here: the exact raw request target maps to the render's cache key and
its response headers. A later request for the same raw target is answered from the in-process
tier directly, or with one Redis GET when this worker does not hold the render; when no tier holds
it, the render is made here too (``render_miss``), as the view would. Everything else (a URL that
is not a valid widget request, an error, any body, another method) goes to Flask unchanged. Notes
live no longer than the in-process TTL and are all dropped whenever this worker learns of a
change, so they never outlive what they point at.
"""

from __future__ import annotations

import dataclasses
import itertools
import os
import sys
import threading
import time
from collections.abc import Callable, Iterable
from typing import Any

from werkzeug.datastructures import Accept
from werkzeug.http import parse_accept_header

from storefront import metrics
from storefront.cache import CachedRender, CacheResult, RenderCache
from storefront.freshness import LocalFreshness
from storefront.web.request_log import (
    REQUEST_ID_PATTERN,
    direct_access_handler,
    json_fields,
    log_request,
    new_request_id,
)

ENCODINGS = ("br", "gzip", "identity")
# A WSGI answer: status line, headers, body items.
Answer = tuple[str, list[tuple[str, str]], list[bytes]]
_MAX_ACCEPT_FORMS = 512
# Request headers (as gunicorn names them) an answer before WSGI reads, and those that send a
# request through WSGI.
_PARSED_HEADERS = frozenset({"IF-NONE-MATCH", "ACCEPT-ENCODING", "X-REQUEST-ID"})
_WSGI_ONLY_HEADERS = frozenset({"CONTENT-LENGTH", "TRANSFER-ENCODING", "EXPECT"})


class _Handoff(threading.local):
    # The key whose every tier answer_parsed looked in, finding nothing to answer with.
    key: str | None = None
    # The raw target answer_parsed tried to note and could not (resolve gave None).
    unresolved: str | None = None


@dataclasses.dataclass(frozen=True, slots=True)
class LogShape:
    """What the access lines of one shop, widget and path share, made once for all their URLs."""

    fields: tuple[tuple[str, Any], ...]
    path: str
    # The line's path as a JSON string, and its fields after total_ms, per answering tier.
    path_json: str
    tails: dict[str, str]


@dataclasses.dataclass(frozen=True, slots=True)
class HotTarget:
    key: str
    expires: float
    # Headers every answer for this URL carries (Cache-Control, tags, Vary), as WSGI pairs.
    headers: tuple[tuple[str, str], ...]
    log: LogShape

    @property
    def tags(self) -> tuple[str, ...]:
        """The surrogate keys (for tagging a copy kept in process), from the header that names them."""
        for name, value in self.headers:
            if name == "Surrogate-Key":
                return tuple(value.split())
        return ()


# What a note costs besides its own strings: the HotTarget, its headers' tuples, its slot in the
# table (tracemalloc on CPython 3.11: about 560 bytes; tests/web/test_hot_path.py checks the total).
_TARGET_OVERHEAD = 600


class HotTargets:
    """Raw request target -> what answered it last, bounded in bytes and in time (LocalFreshness)."""

    def __init__(self, cache: RenderCache, freshness: LocalFreshness, max_bytes: int = 8 << 20) -> None:
        self.cache = cache
        self.local = cache.local
        self.freshness = freshness
        self.max_bytes = max_bytes
        self._targets: dict[str, HotTarget] = {}
        self._bytes = 0
        self._shapes: dict[tuple[str, tuple[tuple[str, Any], ...]], LogShape] = {}
        self._lock = threading.Lock()

    @property
    def enabled(self) -> bool:
        tiers = self.cache.local is not None or self.cache.shared is not None
        return tiers and self.freshness.short_ttl_s > 0

    @property
    def nbytes(self) -> int:
        return self._bytes

    def remember(self, raw_target: str, key: str, headers: dict[str, str], path: str,
                 fields: dict[str, Any], generation: int) -> HotTarget | None:
        """Note what answers ``raw_target``; ``generation``: LocalFreshness's when its key was read."""
        if not self.enabled:
            return None
        shape = self._shape(path, fields)
        pairs = tuple(headers.items())
        target = HotTarget(key, time.monotonic() + self.freshness.ttl_s(generation), pairs, shape)
        size = self._size_of(raw_target, target)
        with self._lock:
            old = self._targets.pop(raw_target, None)
            if old is not None:
                self._bytes -= self._size_of(raw_target, old)
            if self._bytes + size > self.max_bytes:
                self._evict_oldest(size)
            self._targets[raw_target] = target
            self._bytes += size
        return target

    def _evict_oldest(self, room: int) -> None:
        """Drop the oldest notes (by when they were made) until ``room`` bytes fit; caller holds the lock.

        A quarter at a time: a URL dropped costs its next request one first sight, and the order
        notes were made in costs no bookkeeping per hit (a full clear would make every URL of a
        catalogue larger than the budget a first sight at once, again and again).
        """
        targets = self._targets
        while targets and self._bytes + room > self.max_bytes:
            for raw_target in list(itertools.islice(targets, max(1, len(targets) // 4))):
                self._bytes -= self._size_of(raw_target, targets.pop(raw_target))

    @staticmethod
    def _size_of(raw_target: str, target: HotTarget) -> int:
        # Strings shared by every note (Cache-Control, Vary, the names) are not counted.
        return (_TARGET_OVERHEAD + sys.getsizeof(raw_target) + sys.getsizeof(target.key)
                + sum(sys.getsizeof(value) for name, value in target.headers
                      if name in ("Surrogate-Key", "Cache-Tag")))

    def _shape(self, path: str, fields: dict[str, Any]) -> LogShape:
        items = tuple(fields.items())
        shape = self._shapes.get((path, items))
        if shape is None:
            tail = json_fields(fields)
            shape = LogShape(items, path, json_fields({"path": path})[len(',"path":'):],
                             {tier: tail + json_fields({"cache": "HIT", "tier": tier, "render_ms": None})
                              for tier in ("local", "redis")})
            with self._lock:
                if len(self._shapes) >= 4096:  # a few per shop and widget; bounded all the same
                    self._shapes.clear()
                self._shapes[(path, items)] = shape
        return shape

    def get(self, raw_target: str) -> HotTarget | None:
        target = self._targets.get(raw_target)
        if target is None or target.expires <= time.monotonic():
            return None
        return target

    def clear(self) -> None:
        with self._lock:
            self._targets.clear()
            self._bytes = 0


class HotPath:
    """WSGI middleware: answers remembered URLs from the in-process tier, else calls ``app``."""

    def __init__(self, app: Callable[..., Iterable[bytes]], targets: HotTargets,
                 resolve: Callable[[str, str, str], HotTarget | None] | None = None,
                 render_miss: Callable[[dict[str, Any], str, HotTarget],
                                       tuple[HotTarget, CacheResult] | None] | None = None) -> None:
        self.app = app
        self.targets = targets
        # For a URL not noted yet (path as routed, query string, raw target): its target if the
        # request is valid and its inputs are known without rendering (storefront/web/widgets.py),
        # else None and Flask answers.
        self.resolve = resolve
        # answer_parsed notes new URLs itself only where its raw target's path is PATH_INFO: no
        # SCRIPT_NAME for gunicorn to strip from it.
        self._resolve_parsed = resolve is not None and not os.environ.get("SCRIPT_NAME")
        # For a noted URL that no tier holds: the render cache's answer (rendered once per key) and
        # the URL's current target, or None when it failed; Flask then answers with what it met.
        self.render_miss = render_miss
        self._encodings: dict[str, str] = {}
        # What answer_parsed found in the tiers for a request it leaves to WSGI, for this thread's
        # __call__ of that same request: it looks no tier up a second time.
        self._handoff = _Handoff()

    def __call__(self, environ: dict[str, Any], start_response: Callable[..., Any]) -> Iterable[bytes]:
        started = time.perf_counter()
        method = environ["REQUEST_METHOD"]
        if (method == "GET" or method == "HEAD") and not environ.get("CONTENT_LENGTH") \
                and "HTTP_TRANSFER_ENCODING" not in environ:
            raw_target = raw_request_target(environ)
            target = self.targets.get(raw_target) if raw_target else None
            if target is None and raw_target and self.resolve is not None and self.targets.enabled:
                if self._handoff.unresolved == raw_target:
                    self._handoff.unresolved = None  # answer_parsed tried already: Flask answers
                else:
                    target = self.resolve(environ.get("PATH_INFO", ""), environ.get("QUERY_STRING", ""),
                                          raw_target)
            if target is not None:
                request = (method, environ.get("HTTP_IF_NONE_MATCH"),
                           environ.get("HTTP_ACCEPT_ENCODING", ""), environ.get("HTTP_X_REQUEST_ID"))
                if self._handoff.key == target.key:
                    # answer_parsed looked in every tier for this very request: none could answer.
                    self._handoff.key = None
                    answer = None
                else:
                    answer = self._answer_from_tiers(request, target, started)
                if answer is None and self.render_miss is not None:
                    # A miss (or a copy due for refresh): the render cache decides, as for the view.
                    missed = self.render_miss(environ, raw_target, target)
                    if missed is not None:
                        target, result = missed
                        answer = self._answer(request, target, result.entry, started, result.tier,
                                              result.status)
                if answer is not None:
                    start_response(answer[0], answer[1])
                    return answer[2]
        return self.app(environ, start_response)

    def answer_parsed(self, method: str, raw_target: str, headers: list[tuple[str, str]]) -> Answer | None:
        """The answer to a request a server has parsed but not turned into a WSGI environ yet, when
        a tier holds its render: status line, headers and body items; else None, and the server
        goes on to call the app as usual.

        gunicorn's worker (gunicorn.conf.py) asks this first: for a hit, building the environ costs
        as much as the rest of the answer. ``headers``: the request's, names in upper case, as
        gunicorn parses them. A URL not noted yet is noted here (``resolve``) when its raw target
        is a plain path and query; noted URLs are answered from the in-process tier or with one
        Redis GET. For anything else the WSGI path that follows, on this thread, takes over what
        was found (no second look in either tier or the lookup, each lookup counted once).
        """
        started = time.perf_counter()
        handoff = self._handoff
        handoff.key = handoff.unresolved = None
        if method != "GET" and method != "HEAD":
            return None
        read: dict[str, str] = {}
        for name, value in headers:
            if name in _PARSED_HEADERS:
                # Repeated, a header's values are joined as they are in the environ.
                read[name] = f"{read[name]},{value}" if name in read else value
            elif name in _WSGI_ONLY_HEADERS or "_" in name:
                # A body (Flask answers, or refuses, it), a 100 Continue for gunicorn to send, or a
                # name the environ would spell like a hyphenated one (gunicorn's header_map).
                return None
        target = self.targets.get(raw_target)
        if target is None:
            if not self._resolve_parsed or not self.targets.enabled:
                return None
            path, _, query = raw_target.partition("?")
            if path[:1] != "/" or "%" in path:
                # An absolute or encoded target: the environ's PATH_INFO is not the raw path.
                return None
            target = self.resolve(path, query, raw_target)  # type: ignore[misc]
            if target is None:
                handoff.unresolved = raw_target
                return None
        request = (method, read.get("IF-NONE-MATCH"), read.get("ACCEPT-ENCODING", ""),
                   read.get("X-REQUEST-ID"))
        answer = self._answer_from_tiers(request, target, started)
        if answer is None:
            # A miss, a not-found marker or a copy due for refresh: WSGI takes it from here.
            handoff.key = target.key
        return answer

    def _answer_from_tiers(self, request: tuple[str, str | None, str, str | None], target: HotTarget,
                           started: float) -> Answer | None:
        """The answer from this worker's in-process tier, else from one Redis GET; None when neither
        holds a current render (the render cache then decides, as for the view)."""
        local = self.targets.local
        entry = local.get(target.key) if local is not None else None
        if entry.__class__ is CachedRender:
            return self._answer(request, target, entry, started, "local", local_hit=True)
        if entry is None and self.targets.cache.shared is not None:
            # Not in this worker (or no in-process tier): one Redis GET, no routing, no lookup.
            result = self.targets.cache.shared_hit(target.key, target.tags, self._encoding(request[2]))
            if result is not None:
                return self._answer(request, target, result.entry, started, "redis")
        return None

    def _answer(self, request: tuple[str, str | None, str, str | None], target: HotTarget,
                entry: CachedRender, started: float, tier: str, cache: str = "HIT",
                local_hit: bool = False) -> Answer:
        """Status line, headers and body items for ``entry``. ``request``: the method, If-None-Match,
        Accept-Encoding and X-Request-ID; ``local_hit``: counted here as an in-process hit (the
        render cache counts what it answers itself)."""
        method, if_none_match, accept_encoding, incoming = request
        request_id = incoming if incoming and REQUEST_ID_PATTERN.fullmatch(incoming) else new_request_id()
        status, headers, body = widget_answer(target.headers, entry, cache, if_none_match,
                                              self._encoding(accept_encoding))
        headers.append(("X-Request-ID", request_id))
        render_ms = round(entry.render_ms, 3) if cache == "MISS" else None
        elapsed = time.perf_counter() - started
        metrics.HOT_PATH.answered(local_hit, elapsed)
        handler = direct_access_handler()
        if handler is not None:
            tail = target.log.tails.get(tier) if cache == "HIT" else None
            if tail is None:
                tail = json_fields({**dict(target.log.fields), "cache": cache, "tier": tier,
                                    "render_ms": render_ms})
            handler.write_access(time.time(), request_id, method, target.log.path_json, status, elapsed, tail)
        else:
            log_request(request_id, method, target.log.path, status, elapsed,
                        {**dict(target.log.fields), "cache": cache, "tier": tier, "render_ms": render_ms})
        # No body, no item: gunicorn would send an empty item with a system call of its own.
        return ("200 OK" if status == 200 else "304 NOT MODIFIED", headers,
                [body] if body and method != "HEAD" else [])

    def _encoding(self, accept_encoding: str) -> str:
        encoding = self._encodings.get(accept_encoding)
        if encoding is None:
            accept = parse_accept_header(accept_encoding, Accept)
            encoding = accept.best_match(ENCODINGS, default="identity") or "identity"
            if len(self._encodings) >= _MAX_ACCEPT_FORMS:
                self._encodings.clear()
            self._encodings[accept_encoding] = encoding
        return encoding


def widget_answer(base_headers: Iterable[tuple[str, str]], entry: CachedRender, cache: str,
                  if_none_match: str | None, encoding: str) -> tuple[int, list[tuple[str, str]], bytes]:
    """Status, headers and body of a widget answer, for the hot path and the view alike.

    ``base_headers``: the URL's own (Cache-Control, tags, Vary); ``cache``: the X-Cache status (a
    MISS also says its render time in Server-Timing). A 304 when ``if_none_match`` holds the ETag,
    answered from the header alone; else the body compressed for ``encoding``. X-Request-ID is the
    caller's to add.
    """
    headers = [*base_headers, ("ETag", entry.etag), ("X-Cache", cache)]
    if cache == "MISS":
        headers.append(("Server-Timing", f"render;dur={entry.render_ms:.2f}"))
    if if_none_match and _etag_matches(if_none_match, entry.etag):
        return 304, headers, b""
    body = encoded_body(entry, encoding)
    if encoding != "identity":
        headers.append(("Content-Encoding", encoding))
    headers.append(("Content-Type", entry.content_type))
    headers.append(("Content-Length", str(len(body))))
    return 200, headers, body


def encoded_body(entry: CachedRender, encoding: str) -> bytes:
    """The body compressed once per render for ``encoding`` (br, gzip or identity)."""
    return entry.br if encoding == "br" else entry.gzip if encoding == "gzip" else entry.identity


def raw_request_target(environ: dict[str, Any]) -> str | None:
    """The request target exactly as the client sent it (path and query), if the server says.

    None when the server gives no raw target, or one that does not carry the query string
    (some test servers): then two URLs could share a note, so none is kept.
    """
    raw = environ.get("RAW_URI") or environ.get("REQUEST_URI")
    if not raw:
        return None
    query = environ.get("QUERY_STRING", "")
    if query:
        return raw if raw.endswith("?" + query) else None
    return raw if "?" not in raw else None


def _etag_matches(header: str, etag: str) -> bool:
    """If-None-Match uses the weak comparison: ``W/"x"`` matches ``"x"``; ``*`` matches anything."""
    if header == etag:
        return True  # what a CDN sends: the one ETag it holds
    for candidate in header.split(","):
        candidate = candidate.strip()
        if candidate == "*" or candidate == etag or (candidate.startswith("W/") and candidate[2:] == etag):
            return True
    return False
