"""FastlyPurger against a local server speaking Fastly's API: the exact batch purge calls it makes."""

from __future__ import annotations

import pytest

from storefront.cdn import FastlyPurger, PurgeError, create_purger
from storefront.cdn.fastly import MAX_HEADER_BYTES
from tests.cdn.conftest import FASTLY_SERVICE, TOKEN, fastly_reply
from tests.cdn.recording_server import RecordingServer, Reply


def test_a_soft_batch_purge_by_surrogate_key(server: RecordingServer) -> None:
    server.default = fastly_reply
    purger = create_purger(f"fastly+http://:{TOKEN}@{server.address}/{FASTLY_SERVICE}")
    purger.purge(["shop:a.myshopify.com", "widget:a.myshopify.com:loyalty"])
    [call] = server.calls
    assert call.method == "POST"
    assert call.path == f"/service/{FASTLY_SERVICE}/purge"
    assert call.headers["fastly-key"] == TOKEN
    assert call.headers["surrogate-key"] == "shop:a.myshopify.com widget:a.myshopify.com:loyalty"
    assert call.headers["fastly-soft-purge"] == "1"
    assert call.headers["accept"] == "application/json"
    assert "authorization" not in call.headers
    assert call.body == b""


def test_soft_0_purges_hard(server: RecordingServer) -> None:
    server.default = fastly_reply
    create_purger(f"fastly+http://:{TOKEN}@{server.address}/{FASTLY_SERVICE}?soft=0").purge(["shop:a.myshopify.com"])
    [call] = server.calls
    assert "fastly-soft-purge" not in call.headers
    assert call.headers["surrogate-key"] == "shop:a.myshopify.com"


def test_600_keys_take_three_calls_of_at_most_256(server: RecordingServer) -> None:
    server.default = fastly_reply
    tags = [f"product:a.myshopify.com:{n}" for n in range(600)]
    FastlyPurger(TOKEN, FASTLY_SERVICE, host="127.0.0.1", port=server.port, tls=False).purge(tags)
    sent = [call.headers["surrogate-key"].split(" ") for call in server.calls]
    assert [len(keys) for keys in sent] == [256, 256, 88]
    assert sum(sent, []) == tags


def test_long_keys_are_split_by_header_size_too(server: RecordingServer) -> None:
    server.default = fastly_reply
    tags = [f"product:{'x' * 980}:{n:03d}" for n in range(40)]  # 40 keys of 992 bytes: 39.7 KB in all
    FastlyPurger(TOKEN, FASTLY_SERVICE, host="127.0.0.1", port=server.port, tls=False).purge(tags)
    headers = [call.headers["surrogate-key"] for call in server.calls]
    assert all(len(header) <= MAX_HEADER_BYTES for header in headers)
    assert [len(header.split(" ")) for header in headers] == [16, 16, 8]
    assert " ".join(headers).split(" ") == tags


def test_an_answer_that_is_not_fastly_json_is_not_taken_for_a_purge(server: RecordingServer) -> None:
    server.default = lambda call: Reply(200, b"<html>captive portal</html>")
    purger = FastlyPurger(TOKEN, FASTLY_SERVICE, host="127.0.0.1", port=server.port, tls=False)
    with pytest.raises(PurgeError, match="without a JSON answer") as caught:
        purger.purge(["shop:a.myshopify.com"])
    assert caught.value.retryable
