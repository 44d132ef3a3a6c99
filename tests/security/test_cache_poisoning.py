"""Cache poisoning and cache deception, at the origin, through the Flask app (raw HTTP: test_raw_http.py).

The public widget endpoints sit behind shared caches that key on the path and query. So:
- nothing outside the key changes a response: no header (forwarding headers, Host, method
  overrides, cookies, conditional and range headers...), not even on a cold cache where the
  hostile request is the one that fills it;
- every query the origin would read differently from a cache (cloaking with ``;``, ``%26``,
  ``%00``, encoded names, repeats, ``+``) is a 400 that is not stored anywhere;
- a body on GET is a 400; non-canonical paths never get the widget bytes;
- nothing private or per-user (admin, preview, webhooks, app proxy, ops) is ever publicly
  cacheable, whatever static-looking suffix the URL is given.
tests/web/test_widgets_http.py covers the basics on both stacks; this file adds the hostile cases.
"""

from __future__ import annotations

import time
from typing import Any
from urllib.parse import urlsplit

import pytest
from flask import Flask
from flask.testing import FlaskClient
from werkzeug.test import TestResponse

from tests.conftest import ADMIN_TOKEN, BASE_URL, SHOPIFY_SECRET
from tests.shopify.shopify_side import proxy_query

SHOP = "demo-coffee.myshopify.com"
COFFEE = 7001000000001
AUTH = {"Authorization": f"Bearer {ADMIN_TOKEN}"}
WIDGETS = f"/v1/shops/{SHOP}/widgets"
JS = f"{WIDGETS}/subscription.js?product={COFFEE}"

# Every response a shared cache could store, public or not: the four formats, loyalty (no product),
# a short-lived 404 and a 400.
TARGETS = [
    JS,
    f"{WIDGETS}/subscription.html?product={COFFEE}&locale=fr",
    f"{WIDGETS}/subscription.json?product={COFFEE}",
    f"{WIDGETS}/subscription.css?v=1",
    f"{WIDGETS}/loyalty.js",
    f"{WIDGETS}/subscription.js?product=7001999999999",
    f"{WIDGETS}/subscription.js?product={COFFEE}&utm_source=x",
]

# What a cache keeps of a response besides its body. X-Cache, Server-Timing, Date and X-Request-ID
# describe one exchange, not the resource.
STORED_HEADERS = ("Content-Type", "Content-Length", "Content-Encoding", "Cache-Control", "ETag", "Vary",
                  "Surrogate-Key", "Cache-Tag", "Location", "Set-Cookie", "Content-Language", "Link",
                  "Refresh", "Content-Disposition", "Access-Control-Allow-Origin", "Content-Location",
                  "Expires")

UNKEYED = [
    {"Host": "evil.example"},
    {"Host": "evil.example:8443"},
    {"Host": "widgets.example.test@evil.example"},
    {"X-Forwarded-Host": "evil.example"},
    {"X-Forwarded-Server": "evil.example"},
    {"X-Forwarded-Proto": "http"},
    {"X-Forwarded-Scheme": "http"},
    {"X-Forwarded-Port": "8080"},
    {"X-Forwarded-Prefix": "/evil"},
    {"X-Forwarded-For": "1.2.3.4, 10.0.0.1"},
    {"X-Forwarded-Ssl": "off"},
    {"Front-End-Https": "off"},
    {"X-Url-Scheme": "http"},
    {"Forwarded": 'for=1.2.3.4;host=evil.example;proto=http, for="[::1]"'},
    {"X-Original-URL": f"/admin/v1/shops/{SHOP}"},
    {"X-Rewrite-URL": f"{WIDGETS}/loyalty.js"},
    {"X-Original-Host": "evil.example"},
    {"X-Host": "evil.example"},
    {"X-HTTP-Host-Override": "evil.example"},
    {"X-HTTP-Method-Override": "DELETE"},
    {"X-HTTP-Method": "PURGE"},
    {"X-Method-Override": "POST"},
    {"X-Real-IP": "1.2.3.4"},
    {"True-Client-IP": "1.2.3.4"},
    {"CF-Connecting-IP": "1.2.3.4"},
    {"Fastly-Client-IP": "1.2.3.4"},
    {"Via": "1.1 evil.example"},
    {"Max-Forwards": "0"},
    {"Cookie": "session=1; locale=fr; product=7001000000002"},
    {"Authorization": f"Bearer {ADMIN_TOKEN}"},
    {"User-Agent": "Googlebot/2.1"},
    {"Accept-Language": "fr-FR,fr;q=0.9"},
    {"Accept": "text/html"},
    {"Accept-Charset": "utf-16"},
    {"Origin": "https://evil.example"},
    {"Referer": "https://evil.example/?locale=fr"},
    {"Range": "bytes=0-10"},
    {"If-Range": '"nope"', "Range": "bytes=0-10"},
    {"If-Modified-Since": "Thu, 01 Jan 2099 00:00:00 GMT"},
    {"If-Unmodified-Since": "Thu, 01 Jan 1970 00:00:00 GMT"},
    {"If-Match": '"nope"'},
    {"Cache-Control": "no-cache, no-store"},
    {"Pragma": "no-cache"},
    {"Content-Type": "application/json"},
    {"X-Shopify-Shop-Domain": "kaffee-haus.myshopify.com"},
    {"X-Shopify-Topic": "app/uninstalled"},
    {"X-Debug": "1", "Fastly-Debug": "1", "X-Cache-Debug": "1"},
    {"X-Storefront-Draft": "true", "X-Preview": "1"},
    {"Surrogate-Control": "no-store", "X-Cache": "MISS"},
    {"X-Request-ID": "attacker-chosen-id"},
    {"X-Big": "a" * 65536},
    {f"X-Many-{n}": str(n) for n in range(300)},
    {"X-Latin1": "caf\xe9 \xff"},
]


# (status, body, the stored headers): what a shared cache would keep and hand out.
Fingerprint = tuple[int, bytes, tuple[tuple[str, Any], ...]]


def fingerprint(response: TestResponse) -> Fingerprint:
    return (response.status_code, response.get_data(),
            tuple((name, response.headers.get(name)) for name in STORED_HEADERS))


def purge(client: FlaskClient) -> None:
    assert client.post(f"/admin/v1/shops/{SHOP}/purge", headers=AUTH).status_code == 202


def _header_id(headers: dict[str, str]) -> str:
    name, value = next(iter(headers.items()))
    return f"{name}({len(headers)})" if len(headers) > 2 else f"{name}={value[:24]}"


# -- unkeyed input ----------------------------------------------------------------------------------
@pytest.fixture(scope="module")
def clean_fingerprints(shared_demo_app: Flask) -> dict[str, Fingerprint]:
    """What each target is when only clean requests have ever been made."""
    client = shared_demo_app.test_client()
    purge(client)
    return {url: fingerprint(client.get(url, headers={"Accept-Encoding": "identity"})) for url in TARGETS}


@pytest.mark.parametrize("headers", UNKEYED, ids=_header_id)
def test_unkeyed_headers_cannot_poison_even_a_cold_cache(shared_demo_app: Flask,
                                                         clean_fingerprints: dict[str, Fingerprint],
                                                         headers: dict[str, str]) -> None:
    """The hostile request comes first, on an empty cache, so its response is the one stored; the
    clean requests after it must get exactly what a clean render gives."""
    client = shared_demo_app.test_client()
    base = {"Accept-Encoding": "identity"}
    purge(client)
    hostile = {url: fingerprint(client.get(url, headers={**base, **headers})) for url in TARGETS}
    served = {url: fingerprint(client.get(url, headers=base)) for url in TARGETS}
    fresh = clean_fingerprints
    for url in TARGETS:
        assert hostile[url] == fresh[url], url
        assert served[url] == fresh[url], url
        assert b"evil" not in hostile[url][1]
    assert fresh[JS][0] == 200


def test_absolute_urls_in_every_format_come_from_configuration(shared_demo_app: Flask) -> None:
    client = shared_demo_app.test_client()
    evil = {"Host": "evil.example", "X-Forwarded-Host": "evil.example", "X-Forwarded-Proto": "http"}
    for url in TARGETS[:4]:
        body = client.get(url, headers=evil).get_data(as_text=True)
        found = [word for word in body.replace('"', " ").split() if "://" in word]
        assert all(BASE_URL in word or "example.com" in word for word in found), (url, found)
        assert "localhost" not in body and "evil" not in body


@pytest.mark.parametrize("request_id", ["a" * 65, "<script>alert(1)</script>", "id;Set-Cookie=x",
                                        "caf\xe9", "../../etc/passwd", ""])
def test_a_hostile_request_id_is_replaced_not_echoed(shared_demo_app: Flask, request_id: str) -> None:
    response = shared_demo_app.test_client().get(JS, headers={"X-Request-ID": request_id})
    assert response.status_code == 200
    echoed = response.headers["X-Request-ID"]
    assert echoed != request_id and len(echoed) == 32 and echoed.isalnum()
    assert "Set-Cookie" not in response.headers


def test_only_accept_encoding_is_in_vary_and_it_is_honoured(shared_demo_app: Flask) -> None:
    """The one header the output depends on is declared; the compressed bodies hold the same bytes."""
    client = shared_demo_app.test_client()
    plain = client.get(JS, headers={"Accept-Encoding": "identity"})
    for encoding in ("gzip", "br"):
        response = client.get(JS, headers={"Accept-Encoding": encoding, "X-Forwarded-Host": "evil.example"})
        assert response.headers["Vary"] == "Accept-Encoding"
        assert response.headers["Content-Encoding"] == encoding
        assert response.headers["ETag"] == plain.headers["ETag"]


# -- query strings ----------------------------------------------------------------------------------
CLOAKED = [
    f"product={COFFEE}%3Butm=x",
    f"product={COFFEE}%00",
    f"product%00={COFFEE}",
    f"product={COFFEE}&product%00=7001000000002",
    f"%70roduct={COFFEE}",
    f"product={COFFEE}&Product=7001000000002",
    f"PRODUCT={COFFEE}",
    f"product[]={COFFEE}",
    f"product ={COFFEE}",
    f"product={COFFEE}&=x",
    f"product={COFFEE}&",
    f"&product={COFFEE}",
    f"product={COFFEE}&x",
    f"product={COFFEE}&locale=en&locale=fr",
    f"product={COFFEE}&locale=fr%26product%3D7001000000002",
    f"product={COFFEE}&locale=en+US",
    f"product={COFFEE}&locale=en%20US",
    f"product={COFFEE}&locale=en%2DUS",
    f"product={COFFEE}&locale=fr%00",
    f"product={COFFEE}&v=1&v=2",
    f"product={COFFEE}&v=a+b",
    f"product={COFFEE}&v=a%2Fb",
    f"product={COFFEE}&v=%41",
    "product=0x1AB",
    "product=1e3",
    "product=7001000000001.0",
    "product=-7001000000001",
    "product=123456789012345678901",
    "product=\u0667\u0660\u0660\u0661",
    "product=\uff17\uff10\uff10\uff11",
    f"product={COFFEE}&locale=fr\u200b",
    f"product={COFFEE}&callback=alert",
    f"product={COFFEE}&_method=DELETE",
]


@pytest.mark.parametrize("query", CLOAKED)
def test_cloaked_queries_are_400_and_never_stored(shared_demo_app: Flask, query: str) -> None:
    client = shared_demo_app.test_client()
    before = client.get(JS)
    response = client.get(f"{WIDGETS}/subscription.js?{query}")
    assert response.status_code == 400, query
    assert response.headers["Cache-Control"] == "no-store"
    assert response.get_json()["error"] == "bad_request"
    after = client.get(JS)
    assert after.headers["X-Cache"] == "HIT" and after.get_data() == before.get_data()


def test_equivalent_product_ids_render_the_same_bytes(shared_demo_app: Flask) -> None:
    """A leading zero is another cache key for the same product: it must carry the same bytes, or a
    cache holding one could be made to serve something else for the other."""
    client = shared_demo_app.test_client()
    canonical = client.get(JS)
    padded = client.get(f"{WIDGETS}/subscription.js?product=0{COFFEE}")
    assert padded.status_code == 200
    assert padded.get_data() == canonical.get_data() and padded.headers["ETag"] == canonical.headers["ETag"]


# -- bodies on GET ----------------------------------------------------------------------------------
@pytest.mark.parametrize("method", ["GET", "HEAD"])
@pytest.mark.parametrize("url", TARGETS[:5])
def test_a_body_on_get_or_head_is_400_and_never_stored(shared_demo_app: Flask, method: str, url: str) -> None:
    client = shared_demo_app.test_client()
    before = client.get(url)
    response = client.open(url, method=method, data=b'{"product": 7001000000002, "locale": "fr"}',
                           content_type="application/json")
    assert response.status_code == 400
    assert response.headers["Cache-Control"] == "no-store"
    after = client.get(url)
    assert after.headers["X-Cache"] == "HIT" and after.get_data() == before.get_data()
    # An empty body is no body.
    assert client.get(url, data=b"", headers={"Content-Length": "0"}).status_code == 200


@pytest.mark.parametrize("method", ["POST", "PUT", "PATCH", "DELETE", "TRACE", "PURGE", "BAN", "PROPFIND"])
def test_other_methods_are_405_and_not_cacheable(shared_demo_app: Flask, method: str) -> None:
    client = shared_demo_app.test_client()
    response = client.open(JS, method=method, headers={"X-HTTP-Method-Override": "GET"})
    assert response.status_code == 405
    assert response.headers["Cache-Control"] == "no-store"
    assert b"<" not in response.get_data()  # no echo of the request (TRACE)


def test_method_override_headers_do_not_turn_a_get_into_a_write(demo_app: Flask) -> None:
    client = demo_app.test_client()
    for header in ("X-HTTP-Method-Override", "X-HTTP-Method", "X-Method-Override"):
        response = client.get(f"/admin/v1/shops/{SHOP}", headers={**AUTH, header: "DELETE"})
        assert response.status_code == 200
    assert client.get(JS).status_code == 200  # the shop is still there


# -- paths ------------------------------------------------------------------------------------------
PATH_TRICKS = [
    f"{WIDGETS}/subscription.js/",
    f"{WIDGETS}/subscription.js/..%2f",
    f"{WIDGETS}/subscription.js/x.css",
    f"{WIDGETS}/subscription.js%2f",
    f"{WIDGETS}/subscription%2Ejs",
    f"{WIDGETS}/./subscription.js",
    f"/v1/shops/{SHOP}/x/../widgets/subscription.js",
    f"/v1/shops/{SHOP}%2fwidgets/subscription.js",
    "/v1/shops/demo%2Dcoffee.myshopify.com/widgets/subscription.js",
    f"/V1/shops/{SHOP}/widgets/subscription.js",
    f"/v1/Shops/{SHOP}/widgets/subscription.js",
]
# Non-canonical names the widget route itself answers: today a 404 marked public for 60 s.
NON_CANONICAL = [
    f"{WIDGETS}/subscription.js;jsessionid=1",
    f"{WIDGETS}/subscription.js%00.css",
    f"{WIDGETS}/subscription.js%3Fx.css",
    f"{WIDGETS}/subscription.js%20",
    f"{WIDGETS}/subscription.js.",
    f"{WIDGETS}/subscription.js%5C",
    f"{WIDGETS}/subscription.json.js",
    f"{WIDGETS}/SUBSCRIPTION.js",
    f"{WIDGETS}/Subscription.js",
    f"{WIDGETS}/subscription.JS",
    f"{WIDGETS}/\uff53ubscription.js",      # fullwidth s
    f"{WIDGETS}/subscr\u0456ption.js",      # Cyrillic i
]
DOUBLE_SLASHES = [
    f"/v1//shops/{SHOP}/widgets/subscription.js",
    f"/v1/shops/{SHOP}//widgets/subscription.js",
    f"{WIDGETS}//subscription.js",
    f"/admin//v1/shops/{SHOP}",
]


@pytest.mark.parametrize("path", PATH_TRICKS + NON_CANONICAL + DOUBLE_SLASHES)
def test_path_tricks_never_get_the_widget(shared_demo_app: Flask, path: str) -> None:
    response = shared_demo_app.test_client().get(f"{path}?product={COFFEE}", headers={"Host": "evil.example"})
    assert response.status_code in (308, 400, 404), path  # 308: FINDING-1, below
    assert b"storefront subscription widget" not in response.get_data()
    assert "Set-Cookie" not in response.headers
    assert response.headers.get("Content-Type", "").startswith(("application/json", "text/html"))


@pytest.mark.parametrize("path", PATH_TRICKS)
def test_path_tricks_outside_the_widget_route_are_not_cacheable(shared_demo_app: Flask, path: str) -> None:
    response = shared_demo_app.test_client().get(f"{path}?product={COFFEE}")
    assert response.headers["Cache-Control"] == "no-store", path


# FINDING-2 in SECURITY.md: a cache that normalises paths before keying (case, ;params, %00) would
# store this public 404 under the real widget's key, and serve it to every shopper for 60 s.
@pytest.mark.parametrize("path", NON_CANONICAL)
def test_non_canonical_widget_names_are_never_publicly_cacheable(shared_demo_app: Flask, path: str) -> None:
    response = shared_demo_app.test_client().get(f"{path}?product={COFFEE}")
    assert response.status_code in (400, 404)
    assert "public" not in response.headers["Cache-Control"], path


# FINDING-1 in SECURITY.md: werkzeug's merge_slashes redirects '//' paths, building the Location
# from the request's Host, with no Cache-Control on a 308 (which caches may keep by default).
@pytest.mark.parametrize("path", DOUBLE_SLASHES)
def test_no_redirect_takes_its_location_from_the_host_header(shared_demo_app: Flask, path: str) -> None:
    response = shared_demo_app.test_client().get(f"{path}?product={COFFEE}", headers={"Host": "evil.example"})
    assert "evil.example" not in response.headers.get("Location", "")
    assert "no-store" in response.headers.get("Cache-Control", "")


# -- cache deception: nothing private is ever publicly cacheable -----------------------------------
def _preview_links(client: FlaskClient) -> dict[str, str]:
    client.put(f"/admin/v1/shops/{SHOP}/widgets/subscription", json={"settings": {}}, headers=AUTH)
    links = {}
    for draft in (False, True):
        response = client.post(f"/admin/v1/shops/{SHOP}/widgets/subscription/preview-links", headers=AUTH,
                               json={"product_id": COFFEE, "draft": draft})
        url = urlsplit(response.get_json()["url"])
        links["draft" if draft else "published"] = url.query
    return links


def deception_paths(client: FlaskClient) -> list[tuple[str, dict[str, str]]]:
    links = _preview_links(client)
    preview = f"/preview/{SHOP}/subscription"
    proxy = proxy_query([("product", str(COFFEE)), ("shop", SHOP), ("logged_in_customer_id", "42"),
                         ("path_prefix", "/apps/widgets"), ("timestamp", str(int(time.time())))],
                        SHOPIFY_SECRET)
    paths = [
        f"/admin/v1/shops/{SHOP}",
        f"/admin/v1/shops/{SHOP}/x.js",
        f"/admin/v1/shops/{SHOP}.css",
        f"/admin/v1/shops/{SHOP}/widgets/subscription.js",
        f"/admin/v1/shops/{SHOP}/widgets/subscription/x.css",
        f"/admin/v1/shops/{SHOP}/widgets/subscription;.js",
        f"/admin/v1/shops/{SHOP}/products/{COFFEE}",
        f"/admin/v1/shops/{SHOP}/products/{COFFEE}.js",
        f"/admin/v1/shops/{SHOP}/products/{COFFEE}/a.css",
        f"/admin/v1/shops/{SHOP}/widgets/subscription/versions",
        f"/admin/v1/shops/{SHOP}/widgets/subscription/versions.json",
        f"{preview}?{links['published']}",
        f"{preview}?{links['draft']}",
        f"{preview}/draft.js?{links['draft']}",
        f"{preview}/draft.css?{links['draft']}",
        f"{preview}/a.css?{links['draft']}",
        f"{preview}.css?{links['draft']}",
        f"{preview}/draft.css;x.css?{links['draft']}",
        f"{preview}/..%2fdraft.css?{links['draft']}",
        f"{preview}?{links['draft']}&x=.css",
        f"{preview}/draft.css",
        "/webhooks/shopify.js",
        "/webhooks/shopify/x.css",
        f"/proxy/widgets/subscription?{proxy}",
        f"/proxy/widgets/subscription.js?{proxy}",
        f"/proxy/widgets/subscription/x.css?{proxy}",
        "/metrics", "/metrics.css", "/metrics/x.js", "/readyz", "/readyz.js", "/healthz/a.css",
    ]
    return [(path, headers) for path in paths for headers in ({}, AUTH)]


def test_private_responses_are_never_publicly_cacheable(demo_app: Flask) -> None:
    """Admin, preview (published and draft, pages and assets), webhooks, app proxy and ops, with and
    without credentials, under static-looking suffixes: every answer says no-store or private."""
    client = demo_app.test_client()
    seen = set()
    for path, headers in deception_paths(client):
        response = client.get(path, headers=headers)
        seen.add(response.status_code)
        cache_control = response.headers.get("Cache-Control", "")
        assert "no-store" in cache_control or "private" in cache_control, (path, response.status_code,
                                                                          cache_control)
        assert "public" not in cache_control and "s-maxage" not in cache_control, path
        assert "Set-Cookie" not in response.headers
    assert {200, 401, 404} <= seen  # real pages were among them, not only errors


def test_draft_preview_assets_never_reach_the_public_cache(demo_app: Flask) -> None:
    client = demo_app.test_client()
    draft = {"settings": {"labels": {"onetime": "Draft-only label"}}}
    response = client.put(f"/admin/v1/shops/{SHOP}/widgets/subscription", json=draft, headers=AUTH)
    assert response.status_code == 200
    links = _preview_links(client)
    asset = client.get(f"/preview/{SHOP}/subscription/draft.js?{links['draft']}")
    assert asset.status_code == 200 and b"Draft-only label" in asset.get_data()
    for url in TARGETS[:5]:
        assert b"Draft-only label" not in client.get(url).get_data(), url

