"""A WSGI app for testing gunicorn.conf.py's worker loop: /healthz, /echo/<anything> and /slow/<ms>."""

from __future__ import annotations

import time
from collections.abc import Callable, Iterable
from typing import Any


def app(environ: dict[str, Any], start_response: Callable[..., Any]) -> Iterable[bytes]:
    path = environ["PATH_INFO"]
    if path.startswith("/slow/"):
        time.sleep(int(path.removeprefix("/slow/")) / 1000)
    body = path.encode()
    start_response("200 OK", [("Content-Type", "text/plain"), ("Content-Length", str(len(body)))])
    return [body]
