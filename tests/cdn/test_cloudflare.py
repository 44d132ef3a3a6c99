"""CloudflarePurger against a local server speaking Cloudflare's API: calls, batching, success:false."""

from __future__ import annotations

import pytest

from storefront.cdn import CloudflarePurger, PurgeError, create_purger
from tests.cdn.conftest import CLOUDFLARE_ZONE, TOKEN, cloudflare_reply
from tests.cdn.recording_server import RecordingServer, Reply


def test_a_purge_by_cache_tag(server: RecordingServer) -> None:
    server.default = cloudflare_reply
    purger = create_purger(f"cloudflare+http://:{TOKEN}@{server.address}/{CLOUDFLARE_ZONE}")
    purger.purge(["shop:a.myshopify.com", "product:a.myshopify.com:7"])
    [call] = server.calls
    assert call.method == "POST"
    assert call.path == f"/client/v4/zones/{CLOUDFLARE_ZONE}/purge_cache"
    assert call.headers["authorization"] == f"Bearer {TOKEN}"
    assert call.headers["content-type"] == "application/json"
    assert call.json() == {"tags": ["shop:a.myshopify.com", "product:a.myshopify.com:7"]}


def test_250_tags_take_three_calls_of_at_most_100(server: RecordingServer) -> None:
    server.default = cloudflare_reply
    tags = [f"product:a.myshopify.com:{n}" for n in range(250)]
    CloudflarePurger(TOKEN, CLOUDFLARE_ZONE, host="127.0.0.1", port=server.port, tls=False).purge(tags)
    sent = [call.json()["tags"] for call in server.calls]
    assert [len(batch) for batch in sent] == [100, 100, 50]
    assert sum(sent, []) == tags


def test_max_tags_lowers_the_batch_for_older_plans(server: RecordingServer) -> None:
    server.default = cloudflare_reply
    purger = create_purger(f"cloudflare+http://:{TOKEN}@{server.address}/{CLOUDFLARE_ZONE}?max_tags=30")
    purger.purge([f"t{n}" for n in range(65)])
    assert [len(call.json()["tags"]) for call in server.calls] == [30, 30, 5]


def test_success_false_is_a_failure_even_with_http_200(server: RecordingServer) -> None:
    refusal = {"success": False, "errors": [{"code": 1134, "message": "purge by tag not allowed"}],
               "messages": [], "result": None}
    server.script(Reply.json(200, refusal))
    purger = CloudflarePurger(TOKEN, CLOUDFLARE_ZONE, host="127.0.0.1", port=server.port, tls=False)
    with pytest.raises(PurgeError) as caught:
        purger.purge(["shop:a.myshopify.com"])
    assert not caught.value.retryable
    assert "1134: purge by tag not allowed" in str(caught.value)


def test_a_later_batch_failing_raises_after_the_earlier_ones_went_out(server: RecordingServer) -> None:
    server.default = cloudflare_reply
    server.script(Reply.json(200, {"success": True, "errors": [], "messages": [], "result": {"id": "1"}}),
                  Reply.json(500, {"success": False, "errors": [{"code": 10000, "message": "internal"}]}))
    purger = CloudflarePurger(TOKEN, CLOUDFLARE_ZONE, host="127.0.0.1", port=server.port, tls=False)
    with pytest.raises(PurgeError) as caught:
        purger.purge([f"t{n}" for n in range(150)])
    assert caught.value.retryable and caught.value.status == 500
    assert len(server.calls) == 2


def test_an_answer_that_is_not_json_is_not_a_success(server: RecordingServer) -> None:
    server.script(Reply(200, b"ok"))
    purger = CloudflarePurger(TOKEN, CLOUDFLARE_ZONE, host="127.0.0.1", port=server.port, tls=False)
    with pytest.raises(PurgeError, match="not Cloudflare JSON"):
        purger.purge(["shop:a.myshopify.com"])
