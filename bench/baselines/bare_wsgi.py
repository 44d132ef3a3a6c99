"""Baseline: a bare WSGI callable that answers with the project's own captured bytes and headers.

No framework, no routing, no cache: the cost of gunicorn plus the smallest possible Python, the
ceiling for any Python app under the same gunicorn settings. ``BENCH_CAPTURE`` names the JSON file
the runner wrote from the project's responses (see ``bench/run.py``); a request carrying the
captured ETag in ``If-None-Match`` gets the captured 304, anything else the captured 200.
"""

from __future__ import annotations

import base64
import json
import os
from pathlib import Path

_capture = json.loads(Path(os.environ["BENCH_CAPTURE"]).read_text(encoding="utf-8"))
BODY = base64.b64decode(_capture["ok"]["body"])
OK_HEADERS = [(name, value) for name, value in _capture["ok"]["headers"]]
NOT_MODIFIED_HEADERS = [(name, value) for name, value in _capture["not_modified"]["headers"]]
ETAG = _capture["etag"]


def app(environ, start_response):  # type: ignore[no-untyped-def]
    # The one comparison any server must make to answer a revalidation.
    if environ.get("HTTP_IF_NONE_MATCH") == ETAG:
        start_response("304 Not Modified", NOT_MODIFIED_HEADERS)
        return []
    start_response("200 OK", OK_HEADERS)
    return [BODY]
