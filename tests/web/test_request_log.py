"""Structured request logs and X-Request-ID: one JSON line per request with the cache outcome."""

from __future__ import annotations

import json
import logging
import time

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


def test_generated_request_ids_are_unique_and_differ_after_fork() -> None:
    import os

    from storefront.web.request_log import new_request_id

    ids = {new_request_id() for _ in range(1000)}
    assert len(ids) == 1000 and all(len(i) == 32 and int(i, 16) >= 0 for i in ids)
    read, write = os.pipe()
    pid = os.fork()
    if pid == 0:  # the child: a new worker must not share its parent's prefix
        os.write(write, new_request_id().encode())
        os._exit(0)
    os.waitpid(pid, 0)
    child = os.read(read, 64).decode()
    os.close(read)
    os.close(write)
    assert child[:16] != new_request_id()[:16]


def test_json_line_handler_writes_in_batches() -> None:
    import io

    from storefront.web.request_log import JsonLineHandler

    stream = io.StringIO()
    handler = JsonLineHandler(stream)
    logger = logging.getLogger("storefront.test-batches")
    logger.propagate = False
    logger.addHandler(handler)
    logger.setLevel(logging.INFO)
    try:
        logger.info("one")
        handler.write_line('{"message":"two"}')
        assert stream.getvalue() == ""  # held for the next batch
        logger.warning("three")  # a warning goes out at once, with what waited before it
        lines = [json.loads(line) for line in stream.getvalue().splitlines()]
        assert [line["message"] for line in lines] == ["one", "two", "three"]
        logger.info("four")
        deadline = time.monotonic() + 5 * JsonLineHandler.FLUSH_S
        while "four" not in stream.getvalue() and time.monotonic() < deadline:
            time.sleep(0.05)
        assert json.loads(stream.getvalue().splitlines()[-1])["message"] == "four"  # the flusher thread
        handler.write_line("x" * JsonLineHandler.MAX_PENDING)
        assert stream.getvalue().endswith("x" * 10 + "\n")  # a full buffer is written at once
    finally:
        logger.removeHandler(handler)


def test_hot_path_line_equals_the_formatter_line(seeded_app) -> None:  # type: ignore[no-untyped-def]
    import io

    from storefront.web.request_log import JsonLineHandler, direct_access_handler

    client = seeded_app.test_client()
    client.get(JS)
    stream = io.StringIO()
    handler = JsonLineHandler(stream)
    root = logging.getLogger()
    saved, level = root.handlers[:], root.level
    root.handlers[:] = [handler]
    root.setLevel(logging.INFO)
    try:
        assert direct_access_handler() is handler
        client.get(JS, headers={"X-Request-ID": "direct-1"})  # the hot path writes the line itself
        root.handlers[:] = [handler, logging.NullHandler()]
        assert direct_access_handler() is None  # anything else installed: through logging
        client.get(JS, headers={"X-Request-ID": "logged-2"})
        handler.flush()
    finally:
        root.handlers[:] = saved
        root.setLevel(level)
    direct, logged = (json.loads(line) for line in stream.getvalue().splitlines())
    assert direct["request_id"] == "direct-1" and logged["request_id"] == "logged-2"
    assert set(direct) == set(logged) and list(direct) == list(logged)
    for field in ("level", "logger", "message", "pid", "method", "path", "status", "shop", "kind", "format",
                  "cache", "tier", "render_ms"):
        assert direct[field] == logged[field], field
    assert direct["cache"] == "HIT" and direct["tier"] == "local"
    assert direct["path"].endswith("subscription.js")


def test_milliseconds_are_what_round_gives() -> None:
    import random

    from storefront.web.request_log import milliseconds

    draw = random.Random(6)
    for scale in (1e-5, 1e-4, 1e-3, 1e-2, 1.0, 40.0):
        for _ in range(2000):
            seconds = draw.random() * scale
            assert milliseconds(seconds) == round(seconds * 1000, 3), seconds
    assert repr(milliseconds(0.0001234)) == "0.123" and repr(milliseconds(1.5)) == "1500.0"
