"""The Purger contract, run against a real local HTTP server speaking each CDN's API."""

from __future__ import annotations

import time

import pytest

from storefront.cdn import CloudflarePurger, FastlyPurger, NoPurger, PurgeError, Purger, VarnishPurger
from tests.cdn.conftest import (
    CLOUDFLARE_ZONE,
    FASTLY_SERVICE,
    TOKEN,
    cloudflare_reply,
    fastly_reply,
    varnish_reply,
)
from tests.cdn.recording_server import Call, RecordingServer, Reply
from tests.services import free_port

TAGS = ["shop:a.myshopify.com", "widget:a.myshopify.com:subscription", "product:a.myshopify.com:7001"]


def fixed_length_tags(count: int) -> list[str]:
    # 41 characters each, so the header a batch needs is easy to reckon with.
    tags = [f"product:s{index:03d}.myshopify.com:{index:014d}" for index in range(count)]
    assert {len(tag) for tag in tags} == {41}
    return tags


class PurgerContract:
    """What every purger promises: each tag reaches the CDN once, in order, within the CDN's per-request
    limit, with its credentials; a failure raises PurgeError saying whether a retry may pass."""

    # Tags of 41 characters one request carries at most.
    per_request: int

    def make(self, server: RecordingServer, timeout_s: float = 2.0) -> Purger:
        raise NotImplementedError

    def respond(self, call: Call) -> Reply:
        raise NotImplementedError

    def tags_of(self, call: Call) -> list[str]:
        raise NotImplementedError

    def authenticated(self, call: Call) -> bool:
        raise NotImplementedError

    @pytest.fixture
    def api(self, server: RecordingServer) -> RecordingServer:
        server.default = self.respond
        return server

    def test_every_tag_is_purged_once_in_order_with_credentials(self, api: RecordingServer) -> None:
        self.make(api).purge(TAGS)
        calls = api.calls
        assert len(calls) == 1
        assert self.tags_of(calls[0]) == TAGS
        assert self.authenticated(calls[0])

    def test_repeated_tags_are_sent_once(self, api: RecordingServer) -> None:
        self.make(api).purge([TAGS[0], TAGS[1], TAGS[0], TAGS[1]])
        assert [self.tags_of(call) for call in api.calls] == [TAGS[:2]]

    def test_nothing_to_purge_sends_nothing(self, api: RecordingServer) -> None:
        self.make(api).purge([])
        assert api.calls == []

    def test_many_tags_are_split_into_requests_within_the_limit(self, api: RecordingServer) -> None:
        tags = fixed_length_tags(2 * self.per_request + 7)
        self.make(api).purge(tags)
        sent = [self.tags_of(call) for call in api.calls]
        assert [len(batch) for batch in sent] == [self.per_request, self.per_request, 7]
        assert [tag for batch in sent for tag in batch] == tags
        assert all(self.authenticated(call) for call in api.calls)

    @pytest.mark.parametrize("bad", ["", "two words", "a,b", "line\nbreak", "x" * 1025, "caf\u00e9", 7])
    def test_malformed_tags_are_refused_before_sending(self, api: RecordingServer, bad: object) -> None:
        with pytest.raises(ValueError):
            self.make(api).purge([TAGS[0], bad])  # type: ignore[list-item]
        assert api.calls == []

    def test_a_server_error_may_be_retried(self, api: RecordingServer) -> None:
        api.script(Reply(503, b"upstream overloaded"))
        with pytest.raises(PurgeError) as caught:
            self.make(api).purge(TAGS)
        assert caught.value.retryable and caught.value.status == 503
        assert "503" in str(caught.value)

    def test_a_refusal_is_final_and_the_token_never_shows(self, api: RecordingServer) -> None:
        # A server that echoes the request back must not get the token into logs through the message.
        api.script(Reply(403, f"forbidden for credentials {TOKEN}".encode()))
        purger = self.make(api)
        with pytest.raises(PurgeError) as caught:
            purger.purge(TAGS)
        assert not caught.value.retryable and caught.value.status == 403
        assert TOKEN not in str(caught.value) and "forbidden" in str(caught.value)
        assert TOKEN not in repr(purger)

    def test_rate_limiting_may_be_retried_after_the_hint(self, api: RecordingServer) -> None:
        api.script(Reply(429, b"slow down", (("Retry-After", "7"),)))
        with pytest.raises(PurgeError) as caught:
            self.make(api).purge(TAGS)
        assert caught.value.retryable and caught.value.retry_after == 7

    def test_no_answer_may_be_retried(self, api: RecordingServer) -> None:
        api.stop()
        with pytest.raises(PurgeError) as caught:
            self.make(api).purge(TAGS)
        assert caught.value.retryable and caught.value.status is None

    def test_a_hanging_server_costs_one_timeout(self, api: RecordingServer) -> None:
        api.hang()
        started = time.monotonic()
        with pytest.raises(PurgeError) as caught:
            self.make(api, timeout_s=0.3).purge(TAGS)
        assert caught.value.retryable
        assert time.monotonic() - started < 2.0
        api.release()


class TestFastlyPurger(PurgerContract):
    per_request = 256  # Fastly's batch limit; 256 keys of 41 characters stay under the 16 KiB header cap

    def make(self, server: RecordingServer, timeout_s: float = 2.0) -> Purger:
        return FastlyPurger(TOKEN, FASTLY_SERVICE, host="127.0.0.1", port=server.port, tls=False,
                            timeout_s=timeout_s)

    def respond(self, call: Call) -> Reply:
        return fastly_reply(call)

    def tags_of(self, call: Call) -> list[str]:
        assert (call.method, call.path) == ("POST", f"/service/{FASTLY_SERVICE}/purge")
        return call.headers["surrogate-key"].split(" ")

    def authenticated(self, call: Call) -> bool:
        return call.headers.get("fastly-key") == TOKEN


class TestCloudflarePurger(PurgerContract):
    per_request = 100  # Cloudflare's limit of tags a purge request

    def make(self, server: RecordingServer, timeout_s: float = 2.0) -> Purger:
        return CloudflarePurger(TOKEN, CLOUDFLARE_ZONE, host="127.0.0.1", port=server.port, tls=False,
                                timeout_s=timeout_s)

    def respond(self, call: Call) -> Reply:
        return cloudflare_reply(call)

    def tags_of(self, call: Call) -> list[str]:
        assert (call.method, call.path) == ("POST", f"/client/v4/zones/{CLOUDFLARE_ZONE}/purge_cache")
        return call.json()["tags"]

    def authenticated(self, call: Call) -> bool:
        return call.headers.get("authorization") == f"Bearer {TOKEN}"


class TestVarnishPurger(PurgerContract):
    per_request = 95  # a 4000-byte xkey header holds 95 keys of 41 characters and their spaces

    def make(self, server: RecordingServer, timeout_s: float = 2.0) -> Purger:
        return VarnishPurger([("127.0.0.1", server.port)], timeout_s=timeout_s)

    def respond(self, call: Call) -> Reply:
        return varnish_reply(call)

    def tags_of(self, call: Call) -> list[str]:
        assert (call.method, call.path) == ("PURGE", "/")
        return call.headers["xkey-softpurge"].split(" ")

    def authenticated(self, call: Call) -> bool:
        return True  # Varnish trusts its ACL, not a credential

    def test_a_refusal_is_final_and_the_token_never_shows(self, api: RecordingServer) -> None:
        api.script(Reply(405, b"Method Not Allowed"))
        with pytest.raises(PurgeError) as caught:
            self.make(api).purge(TAGS)
        assert not caught.value.retryable and "purgers ACL" in str(caught.value)


def test_no_purger_sends_nothing_yet_checks_its_tags() -> None:
    purger = NoPurger()
    purger.purge(TAGS)
    with pytest.raises(ValueError):
        purger.purge(["two words"])
    assert purger.name == "none"


def test_nothing_listens_on_a_fresh_port_used_for_no_answer() -> None:
    # The "no answer" cases above stop their server; this checks the same holds for a never-used port.
    with pytest.raises(PurgeError) as caught:
        FastlyPurger(TOKEN, FASTLY_SERVICE, host="127.0.0.1", port=free_port(), tls=False).purge(TAGS)
    assert caught.value.retryable
