"""One structured JSON log line per request, the X-Request-ID header, and the request latency histogram."""

from __future__ import annotations

import json
import logging
import os
import re
import time
import uuid
from typing import Any

from flask import Flask, Response, g, has_request_context, request

from storefront import metrics

log = logging.getLogger("storefront.access")

# An incoming id is echoed only if it is short and plain: it ends up in logs and headers.
REQUEST_ID_PATTERN = re.compile(r"[A-Za-z0-9._:-]{1,64}")


def annotate(**fields: Any) -> None:
    """Add fields (shop, kind, cache status, tier, render time...) to this request's log line."""
    g.setdefault("log_fields", {}).update(fields)


def register_request_log(app: Flask) -> None:
    @app.before_request
    def _begin() -> None:
        g.started = time.perf_counter()
        incoming = request.headers.get("X-Request-ID", "")
        g.request_id = incoming if REQUEST_ID_PATTERN.fullmatch(incoming) else uuid.uuid4().hex

    @app.after_request
    def _finish(response: Response) -> Response:
        response.headers["X-Request-ID"] = g.get("request_id", "")
        started = g.get("started")
        if started is None:
            return response
        elapsed = time.perf_counter() - started
        endpoint = request.blueprint or "other"
        metrics.REQUEST_DURATION.labels(endpoint).observe(elapsed)
        if log.isEnabledFor(logging.INFO):
            line: dict[str, Any] = {
                "request_id": g.request_id,
                "pid": os.getpid(),
                "method": request.method,
                # The path only: query strings may carry signatures and preview tokens.
                "path": request.path,
                "status": response.status_code,
                "total_ms": round(elapsed * 1000, 3),
            }
            line.update(g.get("log_fields", {}))
            log.info("request", extra={"fields": line})
        return response


class JsonFormatter(logging.Formatter):
    """Every log record as one JSON object; a request's line carries its fields at the top level."""

    def format(self, record: logging.LogRecord) -> str:
        entry: dict[str, Any] = {
            "time": time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(record.created))
            + f".{int(record.msecs):03d}Z",
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
