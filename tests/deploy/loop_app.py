"""A WSGI app for testing gunicorn.conf.py's worker: /healthz, /echo/<anything>, /slow/<ms> and
/gc/frozen (how many objects the collector leaves alone: gc.freeze)."""

from __future__ import annotations

import gc
import time
from collections.abc import Callable, Iterable
from typing import Any


def app(environ: dict[str, Any], start_response: Callable[..., Any]) -> Iterable[bytes]:
    path = environ["PATH_INFO"]
    if path == "/gc/frozen":
        path = str(gc.get_freeze_count())
    elif path.startswith("/slow/"):
        time.sleep(int(path.removeprefix("/slow/")) / 1000)
    body = path.encode()
    start_response("200 OK", [("Content-Type", "text/plain"), ("Content-Length", str(len(body)))])
    return [body]
