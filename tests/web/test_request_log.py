"""Structured request logs and X-Request-ID: one JSON line per request with the cache outcome."""

from __future__ import annotations

import json
import logging

from storefront.web.request_log import JsonFormatter
from tests.conftest import ADMIN_TOKEN

JS = "/v1/shops/demo-coffee.myshopify.com/widgets/subscription.js?product=7001000000001"


def access_lines(caplog) -> list[dict]:  # type: ignore[no-untyped-def]
    formatter = JsonFormatter()
    return [json.loads(formatter.format(r)) for r in caplog.records if r.name == "storefront.access"]


def test_request_id_generated_or_accepted(seeded_app) -> None:  # type: ignore[no-untyped-def]
    client = seeded_app.test_client()
    generated = client.get(JS).headers["X-Request-ID"]
    assert len(generated) == 32
    assert client.get(JS, headers={"X-Request-ID": "abc-123"}).headers["X-Request-ID"] == "abc-123"
    # Anything odd is replaced, never echoed into headers and logs.
    odd = client.get(JS, headers={"X-Request-ID": "a b\tc<script>"}).headers["X-Request-ID"]
    assert odd != "a b\tc<script>" and len(odd) == 32


def test_one_json_line_per_request_with_cache_fields(seeded_app, caplog) -> None:  # type: ignore[no-untyped-def]
    caplog.set_level(logging.INFO, logger="storefront.access")
    client = seeded_app.test_client()
    client.get(JS, headers={"X-Request-ID": "req-1"})
    client.get(JS, headers={"X-Request-ID": "req-2"})
    client.get("/v1/shops/demo-coffee.myshopify.com/widgets/subscription.js?bad=1")
    lines = access_lines(caplog)
    assert len(lines) == 3
    first, second, bad = lines
    assert first["request_id"] == "req-1" and first["status"] == 200
    assert first["shop"] == "demo-coffee.myshopify.com" and first["kind"] == "subscription"
    assert first["cache"] == "MISS" and first["render_ms"] > 0 and first["total_ms"] > 0
    assert second["cache"] == "HIT" and second["tier"] == "local"
    assert bad["status"] == 400
    assert "?" not in first["path"]  # query strings (tokens, signatures) are never logged
    assert first["time"].endswith("Z") and first["level"] == "info"


def test_admin_token_not_in_logs(seeded_app, caplog) -> None:  # type: ignore[no-untyped-def]
    caplog.set_level(logging.DEBUG)
    client = seeded_app.test_client()
    auth = {"Authorization": f"Bearer {ADMIN_TOKEN}"}
    client.get("/admin/v1/shops/demo-coffee.myshopify.com", headers=auth)
    formatter = JsonFormatter()
    text = "\n".join(formatter.format(record) for record in caplog.records)
    assert ADMIN_TOKEN not in text
