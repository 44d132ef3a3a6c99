"""VarnishPurger against local servers: xkey headers, every Varnish purged, one failing Varnish raises."""

from __future__ import annotations

import pytest

from storefront.cdn import PurgeError, create_purger
from tests.cdn.conftest import varnish_reply
from tests.cdn.recording_server import RecordingServer, Reply


def test_soft_purge_by_default_and_hard_on_request(server: RecordingServer) -> None:
    server.default = varnish_reply
    tags = ["shop:a.myshopify.com", "widget:a.myshopify.com:bundle"]
    create_purger(f"varnish://{server.address}").purge(tags)
    create_purger(f"varnish://{server.address}?soft=0").purge(["shop:a.myshopify.com"])
    soft, hard = server.calls
    assert (soft.method, soft.path) == ("PURGE", "/")
    assert soft.headers["xkey-softpurge"] == "shop:a.myshopify.com widget:a.myshopify.com:bundle"
    assert "xkey" not in soft.headers
    assert hard.headers["xkey"] == "shop:a.myshopify.com" and "xkey-softpurge" not in hard.headers


def test_every_varnish_is_purged_and_one_failure_raises() -> None:
    with RecordingServer(varnish_reply) as first, RecordingServer(Reply(503)) as second:
        purger = create_purger(f"varnish://{first.address},{second.address}")
        with pytest.raises(PurgeError) as caught:
            purger.purge(["shop:a.myshopify.com"])
        assert caught.value.retryable
        assert second.address in str(caught.value) and first.address not in str(caught.value)
        assert len(first.calls) == 1 and len(second.calls) == 1
