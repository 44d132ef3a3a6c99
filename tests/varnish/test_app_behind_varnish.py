"""The shipped VCL in a real varnishd in front of the real app: edge hits, purge on publish, grace, junk."""

from __future__ import annotations

import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from storefront.cdn import create_purger
from tests.services import free_port
from tests.varnish.edge import AppOrigin, Response, Varnish

pytestmark = pytest.mark.slow

TOKEN = "edge-test-admin-token-0123456789"
SHOP = "demo-coffee.myshopify.com"
PRODUCT = "7001000000001"
WIDGETS = f"/v1/shops/{SHOP}/widgets"


class Edge:
    def __init__(self, origin: AppOrigin, varnish: Varnish) -> None:
        self.origin = origin
        self.varnish = varnish


@pytest.fixture(scope="module")
def edge(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Edge]:
    workdir: Path = tmp_path_factory.mktemp("edge")
    edge_port = free_port()
    # A short in-process TTL bounds how long another gunicorn worker may answer from before a change.
    origin = AppOrigin(workdir, edge_port, TOKEN, LOCAL_CACHE_TTL_S="2")
    varnish = Varnish(workdir, origin.port, port=edge_port)
    origin.prepare().start()
    try:
        varnish.start()
        try:
            yield Edge(origin, varnish)
        finally:
            varnish.stop()
    finally:
        origin.stop()


def get_twice(varnish: Varnish, target: str, **headers: str) -> tuple[Response, Response]:
    return varnish.get(target, headers), varnish.get(target, headers)


def test_a_second_request_is_an_edge_hit(edge: Edge) -> None:
    target = f"{WIDGETS}/subscription.js?product={PRODUCT}&locale=en"
    first, second = get_twice(edge.varnish, target)
    assert first.status == 200 and first.edge == "MISS"
    assert second.status == 200 and second.edge == "HIT"
    assert len(second.headers["x-varnish"].split()) == 2  # this request's id and the cached object's
    assert second.body == first.body and second.headers["etag"] == first.headers["etag"]
    # The origin's headers reach the browser; the VCL's own bookkeeping does not.
    assert second.headers["cache-control"].startswith("public, max-age=60, s-maxage=86400")
    assert "xkey" not in second.headers and "x-edge-expires" not in second.headers
    time.sleep(1.1)
    assert int(edge.varnish.get(target).headers["age"]) >= 1


def test_cookies_parameter_order_and_the_cache_buster_share_one_copy(edge: Edge) -> None:
    target = f"{WIDGETS}/subscription.html?product={PRODUCT}&locale=fr"
    assert edge.varnish.get(target).edge == "MISS"
    same = [
        edge.varnish.get(target, {"Cookie": "_shopify_y=abc; cart=1"}),
        edge.varnish.get(f"{WIDGETS}/subscription.html?locale=fr&product={PRODUCT}"),
        edge.varnish.get(f"{WIDGETS}/subscription.html?product={PRODUCT}&locale=fr&v=2024.1"),
        edge.varnish.get(target, {"Accept-Encoding": "gzip, deflate, br"}),
        edge.varnish.get(target, {"Host": "another-host.example"}),
    ]
    assert [response.edge for response in same] == ["HIT"] * len(same)
    assert all(response.status == 200 and "set-cookie" not in response.headers for response in same)


def test_a_publish_purges_the_edge_copy_by_surrogate_key(edge: Edge) -> None:
    json_target = f"{WIDGETS}/subscription.json?product={PRODUCT}"
    css_target = f"{WIDGETS}/subscription.css"
    before, cached = get_twice(edge.varnish, json_target)
    css_before = edge.varnish.get(css_target)
    assert cached.edge == "HIT" and edge.varnish.get(css_target).edge == "HIT"
    accent = before.json()["colors"]["accent"]
    assert accent != "#ff0000"

    draft = edge.origin.admin("PUT", f"/admin/v1/shops/{SHOP}/widgets/subscription", TOKEN,
                              {"settings": {"colors": {"accent": "#ff0000"}}})
    assert draft.status == 200, draft.body
    # A draft changes nothing shoppers see: the edge copy stays.
    assert edge.varnish.get(json_target).json()["colors"]["accent"] == accent
    published = edge.origin.admin("POST", f"/admin/v1/shops/{SHOP}/widgets/subscription/publish", TOKEN)
    assert published.status == 200, published.body

    deadline = time.monotonic() + 10
    while True:
        after = edge.varnish.get(json_target)
        if after.status == 200 and after.json()["colors"]["accent"] == "#ff0000":
            break
        assert time.monotonic() < deadline, f"the edge still served {after.edge} {after.body[:200]!r}"
        time.sleep(0.1)
    # Another gunicorn worker may still have answered that refetch from its in-process state (kept up to
    # LOCAL_CACHE_TTL_S, 2 s here): the app purges the keys a second time once that state has expired.
    key = f"widget:{SHOP}:subscription"
    deadline = time.monotonic() + 8
    while sum(key in keys.split() for keys in edge.varnish.purges_received()) < 2:
        assert time.monotonic() < deadline, f"no second purge of {key}: {edge.varnish.purges_received()}"
        time.sleep(0.2)
    # The new copy is what the edge keeps serving, and the stylesheet (no product key) went too.
    assert edge.varnish.get(json_target).json()["colors"]["accent"] == "#ff0000"
    css_after = edge.varnish.get(css_target)
    assert b"#ff0000" in css_after.body and b"#ff0000" not in css_before.body
    assert edge.varnish.get(css_target).edge == "HIT"


def settled_object_count(edge: Edge, quiet_s: float = 0.5, timeout_s: float = 15.0) -> int:
    """MAIN.n_object once it has not changed for ``quiet_s``."""
    deadline = time.monotonic() + timeout_s
    count = edge.varnish.counter("MAIN.n_object")
    while time.monotonic() < deadline:
        time.sleep(quiet_s)
        again = edge.varnish.counter("MAIN.n_object")
        if again == count:
            return count
        count = again
    return count


def test_junk_query_parameters_create_no_edge_objects(edge: Edge) -> None:
    base = f"{WIDGETS}/loyalty.json?product={PRODUCT}"
    assert edge.varnish.get(base).status == 200
    # Earlier tests' purges and background refreshes may still be landing: start from a count
    # that has stopped moving.
    objects = settled_object_count(edge)
    junk = [f"{base}&utm_source=ad{n}" for n in range(5)] + [
        f"{base}&product=1",                     # repeated
        f"{WIDGETS}/loyalty.json?locale=EN",     # malformed value
        f"{WIDGETS}/loyalty.json?pro%64uct={PRODUCT}",  # percent-encoded name
        f"{base}&",                              # empty pair
        f"{base};locale=en",                     # not a separator here
        f"{WIDGETS}/loyalty.json?v=" + "x" * 33,  # cache-buster too long
        f"{WIDGETS}/loyalty.json?v",             # no value
    ]
    for target in junk:
        response = edge.varnish.get(target)
        assert (response.status, response.edge) == (400, "PASS"), target
        assert response.headers["cache-control"] == "no-store"
    assert settled_object_count(edge) == objects
    # The counter does move for a request that is worth a copy.
    assert edge.varnish.get(f"{base}&locale=de").edge == "MISS"
    assert edge.varnish.counter("MAIN.n_object") == objects + 1


def test_admin_ops_and_other_paths_go_through_uncached(edge: Edge) -> None:
    auth = {"Authorization": f"Bearer {TOKEN}"}
    for target, headers in [("/healthz", {}), (f"/admin/v1/shops/{SHOP}", auth), ("/metrics", {})]:
        first, second = get_twice(edge.varnish, target, **headers)
        assert first.status == second.status == 200, target
        assert first.edge == second.edge == "PASS", target
    unauthorized = edge.varnish.get(f"/admin/v1/shops/{SHOP}")
    assert (unauthorized.status, unauthorized.edge) == (401, "PASS")


def test_purge_needs_the_acl_and_a_key(edge: Edge) -> None:
    target = f"{WIDGETS}/bundle.js?product=7001000000006"
    first, _ = get_twice(edge.varnish, target)
    assert first.status == 200
    outsider = edge.varnish.request_from("203.0.113.7", "PURGE", "/", {"xkey": f"shop:{SHOP}"})
    assert outsider.status == 405
    assert edge.varnish.get(target).edge == "HIT"  # nothing was purged
    assert edge.varnish.request("PURGE", "/").status == 400
    purged = edge.varnish.request("PURGE", "/", {"xkey": f"widget:{SHOP}:bundle"})
    assert purged.status == 200 and int(purged.headers["x-edge-purged"]) >= 1
    assert edge.varnish.get(target).edge == "MISS"


def test_the_edge_serves_its_stale_copy_while_the_origin_is_down(edge: Edge) -> None:
    target = f"{WIDGETS}/subscription.js?product={PRODUCT}&locale=es"
    fresh, _ = get_twice(edge.varnish, target)
    assert fresh.status == 200
    edge.origin.kill()
    try:
        # A change soft-purges the copy while the origin is away (say, mid-deploy).
        create_purger(f"varnish://127.0.0.1:{edge.varnish.port}").purge([f"shop:{SHOP}"])
        # Before the probe notices (test_vcl covers the sick probe), a failed fetch falls back to the copy.
        stale = edge.varnish.get(target)
        assert (stale.status, stale.edge, stale.body) == (200, "STALE", fresh.body)
        # What the edge never held, it cannot make up.
        never = edge.varnish.get(f"{WIDGETS}/subscription.js?product={PRODUCT}&locale=it")
        assert never.status == 503 and never.headers["cache-control"] == "no-store"
    finally:
        edge.origin.start()
    edge.varnish.wait_for_health("healthy")
    recovered = edge.varnish.get(target)
    assert (recovered.status, recovered.edge) == (200, "MISS")
