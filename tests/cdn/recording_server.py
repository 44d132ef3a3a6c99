"""A real HTTP server for tests, on a free port: records every request and answers as the test scripts it."""

from __future__ import annotations

import dataclasses
import json
import sys
import threading
import time
from collections.abc import Callable
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any


@dataclasses.dataclass(frozen=True)
class Reply:
    status: int = 200
    body: bytes = b""
    headers: tuple[tuple[str, str], ...] = ()

    @classmethod
    def json(cls, status: int, payload: Any, *headers: tuple[str, str]) -> Reply:
        return cls(status, json.dumps(payload).encode(), (("Content-Type", "application/json"), *headers))


@dataclasses.dataclass(frozen=True)
class Call:
    """One request as the server saw it; header names lower-cased."""

    method: str
    path: str
    headers: dict[str, str]
    body: bytes
    at: float  # time.monotonic() when it arrived

    def json(self) -> Any:
        return json.loads(self.body)


Responder = Callable[[Call], Reply]


class _QuietServer(ThreadingHTTPServer):
    daemon_threads = True

    def handle_error(self, request: Any, client_address: Any) -> None:
        # A client that gave up (a purger's timeout, a test's hang) is expected, not a failure.
        if not isinstance(sys.exc_info()[1], ConnectionError):
            super().handle_error(request, client_address)


class RecordingServer:
    """A threaded ``http.server`` on 127.0.0.1 (port chosen by the kernel) with a scripted behaviour.

    Replies come from ``script(...)`` first (one each, in order), then from the default responder.
    ``hang()`` makes every request wait until ``release()``; ``stop()`` releases them too. Each
    response closes its connection, so a stopped server answers nothing more.
    """

    def __init__(self, default: Responder | Reply = Reply()) -> None:
        self.default: Responder = default if callable(default) else (lambda call: default)
        self._lock = threading.Lock()
        self._calls: list[Call] = []
        self._script: list[Reply] = []
        self._released = threading.Event()
        self._released.set()
        self._arrived = threading.Condition(self._lock)
        self._httpd: ThreadingHTTPServer | None = None
        self._thread: threading.Thread | None = None
        self.port = 0

    # -- control ---------------------------------------------------------------------------
    def start(self) -> RecordingServer:
        server = self

        class Handler(BaseHTTPRequestHandler):
            def _handle(self) -> None:
                length = int(self.headers.get("Content-Length") or 0)
                body = self.rfile.read(length) if length else b""
                call = Call(self.command, self.path, {k.lower(): v for k, v in self.headers.items()}, body,
                            time.monotonic())
                reply = server._record(call)
                server._released.wait(30)
                self.send_response(reply.status)
                for name, value in reply.headers:
                    self.send_header(name, value)
                self.send_header("Content-Length", str(len(reply.body)))
                self.send_header("Connection", "close")
                self.end_headers()
                if self.command != "HEAD":
                    self.wfile.write(reply.body)

            do_GET = do_POST = do_PURGE = do_HEAD = do_PUT = do_DELETE = _handle

            def log_message(self, format: str, *args: Any) -> None:
                pass

        self._httpd = _QuietServer(("127.0.0.1", 0), Handler)
        self.port = self._httpd.server_address[1]
        self._thread = threading.Thread(target=self._httpd.serve_forever, kwargs={"poll_interval": 0.05},
                                        name="recording-server", daemon=True)
        self._thread.start()
        return self

    def stop(self) -> None:
        self._released.set()
        if self._httpd is not None:
            self._httpd.shutdown()
            self._httpd.server_close()
            self._httpd = None

    def __enter__(self) -> RecordingServer:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()

    @property
    def address(self) -> str:
        return f"127.0.0.1:{self.port}"

    def script(self, *replies: Reply) -> None:
        """Answer the next requests with ``replies``, in order, before falling back to the default."""
        with self._lock:
            self._script.extend(replies)

    def hang(self) -> None:
        """Hold every request (once recorded) until ``release()``."""
        self._released.clear()

    def release(self) -> None:
        self._released.set()

    # -- inspection ------------------------------------------------------------------------
    @property
    def calls(self) -> list[Call]:
        with self._lock:
            return list(self._calls)

    def wait_for_calls(self, count: int, timeout: float = 5.0) -> list[Call]:
        with self._arrived:
            if not self._arrived.wait_for(lambda: len(self._calls) >= count, timeout):
                raise AssertionError(f"expected {count} requests within {timeout}s, got {len(self._calls)}")
            return list(self._calls)

    def _record(self, call: Call) -> Reply:
        with self._arrived:
            self._calls.append(call)
            self._arrived.notify_all()
            reply = self._script.pop(0) if self._script else None
        return reply if reply is not None else self.default(call)
