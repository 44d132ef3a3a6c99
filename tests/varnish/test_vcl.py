"""The shipped VCL in a real varnishd in front of a scriptable origin: the cases the app never produces."""

from __future__ import annotations

import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.cdn.recording_server import Call, RecordingServer, Reply
from tests.varnish.edge import Varnish

pytestmark = pytest.mark.slow

ORIGIN_CACHE_CONTROL = "public, max-age=60, s-maxage=86400, stale-while-revalidate=60, stale-if-error=86400"


def widget(body: str, *, cache_control: str = ORIGIN_CACHE_CONTROL, keys: str | None = "shop:x",
           status: int = 200, extra: tuple[tuple[str, str], ...] = ()) -> Reply:
    headers = (("Content-Type", "application/javascript; charset=utf-8"), ("Cache-Control", cache_control))
    if keys is not None:
        headers += (("Surrogate-Key", keys),)
    return Reply(status, body.encode(), headers + extra)


class ToyOrigin:
    """Answers each path as the test sets it; /healthz as ``healthy`` says."""

    def __init__(self) -> None:
        self.routes: dict[str, Reply] = {}
        self.healthy = True
        self.server = RecordingServer(self.respond)

    def respond(self, call: Call) -> Reply:
        if call.path == "/healthz":
            return Reply(200 if self.healthy else 503)
        return self.routes.get(call.path, Reply(404, b"no route"))

    def hits(self, path: str) -> int:
        return sum(1 for call in self.server.calls if call.path == path)


class Stack:
    def __init__(self, origin: ToyOrigin, varnish: Varnish) -> None:
        self.origin = origin
        self.varnish = varnish

    def soft_purge(self, keys: str) -> None:
        assert self.varnish.request("PURGE", "/", {"xkey-softpurge": keys}).status == 200

    def hard_purge(self, keys: str) -> None:
        assert self.varnish.request("PURGE", "/", {"xkey": keys}).status == 200


@pytest.fixture(scope="module")
def stack(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Stack]:
    workdir: Path = tmp_path_factory.mktemp("vcl")
    origin = ToyOrigin()
    origin.server.start()
    varnish = Varnish(workdir, origin.server.port)
    try:
        varnish.start()
        yield Stack(origin, varnish)
    finally:
        varnish.stop()
        origin.server.stop()


def path(shop: str, rest: str = "loyalty.js") -> str:
    return f"/v1/shops/{shop}.myshopify.com/widgets/{rest}"


def test_responses_with_set_cookie_are_never_stored(stack: Stack) -> None:
    target = path("cookie")
    stack.origin.routes[target] = widget("v1", extra=(("Set-Cookie", "session=abc; Path=/"),))
    first, second = stack.varnish.get(target), stack.varnish.get(target)
    assert stack.origin.hits(target) == 2
    assert first.edge != "HIT" and second.edge != "HIT"
    assert second.headers["set-cookie"] == "session=abc; Path=/"


def test_after_a_soft_purge_a_healthy_origin_is_asked_at_once(stack: Stack) -> None:
    target = path("changed")
    stack.origin.routes[target] = widget("v1", keys="shop:changed widget:changed:loyalty")
    assert [stack.varnish.get(target).edge for _ in range(2)] == ["MISS", "HIT"]
    stack.origin.routes[target] = widget("v2", keys="shop:changed widget:changed:loyalty")
    stack.soft_purge("widget:changed:loyalty")
    # Well within stale-while-revalidate, yet the old copy is not served: it was purged, not expired.
    after = stack.varnish.get(target)
    assert (after.edge, after.body) == ("MISS", b"v2")


def test_cookies_and_credentials_never_reach_the_origin(stack: Stack) -> None:
    target = path("private")
    stack.origin.routes[target] = widget("v1")
    response = stack.varnish.get(target, {"Cookie": "cart=1", "Authorization": "Basic eDp5"})
    assert response.status == 200
    [call] = [call for call in stack.origin.server.calls if call.path == target]
    assert "cookie" not in call.headers and "authorization" not in call.headers


def test_an_origin_error_never_replaces_a_soft_purged_copy(stack: Stack) -> None:
    target = path("errs")
    stack.origin.routes[target] = widget("v1", keys="shop:errs")
    assert stack.varnish.get(target).body == b"v1"
    stack.soft_purge("shop:errs")
    stack.origin.routes[target] = widget("boom", status=500, cache_control="no-store")
    during = stack.varnish.get(target)
    assert (during.status, during.edge, during.body) == (200, "STALE", b"v1")
    stack.origin.routes[target] = widget("v2", keys="shop:errs")
    # Fetched now, or by the background refresh the stale answer started (if it ran after the switch).
    after = stack.varnish.get(target)
    assert (after.status, after.body) == (200, b"v2") and after.edge in ("MISS", "HIT")


def test_a_hard_purge_leaves_nothing_to_fall_back_on(stack: Stack) -> None:
    target = path("hard")
    stack.origin.routes[target] = widget("v1", keys="shop:hard")
    assert stack.varnish.get(target).body == b"v1"
    stack.hard_purge("shop:hard")
    stack.origin.routes[target] = widget("boom", status=500, cache_control="no-store")
    assert stack.varnish.get(target).status == 500


def test_an_error_with_no_copy_passes_through_and_is_not_stored(stack: Stack) -> None:
    target = path("fresh-error")
    stack.origin.routes[target] = widget('{"error": "unavailable"}', status=503, cache_control="no-store",
                                         extra=(("Retry-After", "5"),))
    first, second = stack.varnish.get(target), stack.varnish.get(target)
    assert first.status == second.status == 503
    assert second.body == b'{"error": "unavailable"}' and second.headers["retry-after"] == "5"
    assert stack.origin.hits(target) == 2


def test_a_404_without_keys_is_keyed_by_its_shop_and_product(stack: Stack) -> None:
    shop_only = path("newshop")
    with_product = path("newshop", "subscription.js") + "?product=55"
    for target in (shop_only, with_product):
        stack.origin.routes[target.partition("?")[0]] = Reply(404, b'{"error": "not_found"}',
                                                              (("Cache-Control", "public, max-age=60"),))
        assert [stack.varnish.get(target).edge for _ in range(2)] == ["MISS", "HIT"]
    stack.hard_purge("product:newshop.myshopify.com:55")
    assert stack.varnish.get(with_product).edge == "MISS"
    assert stack.varnish.get(shop_only).edge == "HIT"
    stack.hard_purge("shop:newshop.myshopify.com")
    assert stack.varnish.get(shop_only).edge == "MISS"


def test_an_expired_copy_is_served_during_stale_while_revalidate_and_refreshed(stack: Stack) -> None:
    target = path("swr")
    stack.origin.routes[target] = widget("v1", cache_control="public, s-maxage=1, stale-while-revalidate=30")
    assert stack.varnish.get(target).body == b"v1"
    time.sleep(1.2)
    stack.origin.routes[target] = widget("v2", cache_control="public, s-maxage=60, stale-while-revalidate=30")
    stale = stack.varnish.get(target)
    assert (stale.edge, stale.body) == ("STALE", b"v1")
    deadline = time.monotonic() + 5
    while (latest := stack.varnish.get(target)).body != b"v2":
        assert time.monotonic() < deadline, "the background refresh did not land"
        time.sleep(0.05)
    assert latest.edge == "HIT"


def test_past_stale_while_revalidate_a_healthy_origin_is_asked_first(stack: Stack) -> None:
    target = path("sie")
    expiring = "public, s-maxage=1, stale-while-revalidate=0, stale-if-error=600"
    stack.origin.routes[target] = widget("v1", cache_control=expiring)
    assert stack.varnish.get(target).body == b"v1"
    time.sleep(1.2)
    stack.origin.routes[target] = widget("v2", cache_control=expiring)
    fresh = stack.varnish.get(target)
    assert (fresh.edge, fresh.body) == ("MISS", b"v2")
    # ... and when it fails, stale-if-error lets the edge answer with the copy it has.
    time.sleep(1.2)
    stack.origin.routes[target] = widget("boom", status=502, cache_control="no-store")
    fallback = stack.varnish.get(target)
    assert (fallback.status, fallback.edge, fallback.body) == (200, "STALE", b"v2")


def test_a_sick_origin_gets_no_requests_while_stale_copies_last(stack: Stack) -> None:
    target = path("sick")
    stack.origin.routes[target] = widget("v1", keys="shop:sick")
    assert stack.varnish.get(target).body == b"v1"
    stack.soft_purge("shop:sick")
    stack.origin.healthy = False
    try:
        stack.varnish.wait_for_health("sick")
        hits = stack.origin.hits(target)
        served = stack.varnish.get(target)
        assert (served.status, served.edge, served.body) == (200, "STALE", b"v1")
        time.sleep(0.2)
        # Varnish tries no fetch against a backend its probe calls sick.
        assert stack.origin.hits(target) == hits
    finally:
        stack.origin.healthy = True
    stack.varnish.wait_for_health("healthy")


def test_bodies_and_other_methods_go_to_the_origin(stack: Stack) -> None:
    target = path("methods")
    stack.origin.routes[target] = widget("v1")
    assert stack.varnish.get(target).edge == "MISS"
    assert stack.varnish.get(target).edge == "HIT"
    assert stack.varnish.request("POST", target, {"Content-Type": "text/plain"}, b"x").edge == "PASS"
    assert stack.varnish.request("GET", target, {"Content-Type": "text/plain"}, b"x").edge == "PASS"
    assert stack.varnish.request("HEAD", target).edge == "HIT"
