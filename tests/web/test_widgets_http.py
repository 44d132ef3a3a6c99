"""Public widget endpoints over HTTP: headers, validators, encodings, errors, poisoning, on both stacks."""

from __future__ import annotations

import gzip

import brotli
import pytest
import redis

from tests.conftest import ADMIN_TOKEN, make_app, seed
from tests.services import REDIS_URL, reachable, unavailable, unique_name

SHOP = "demo-coffee.myshopify.com"
COFFEE = 7001000000001
JS = f"/v1/shops/{SHOP}/widgets/subscription.js?product={COFFEE}"
AUTH = {"Authorization": f"Bearer {ADMIN_TOKEN}"}


@pytest.fixture(params=["sqlite+local", "mysql+redis"])
def stack(request, tmp_path):  # type: ignore[no-untyped-def]
    """A seeded app: SQLite with the in-process tier only, or MySQL with Redis as the shared tier."""
    if request.param == "sqlite+local":
        app = make_app(f"sqlite:///{tmp_path / 'db.sqlite'}")
        prefix = None
    else:
        if not reachable(REDIS_URL):
            unavailable(f"Redis is not reachable at {REDIS_URL}")
        prefix = unique_name("sftest") + ":"
        app = make_app(request.getfixturevalue("mysql_url"), REDIS_URL=REDIS_URL, REDIS_KEY_PREFIX=prefix)
    seed(app)
    yield app, prefix
    if prefix:
        client = redis.Redis.from_url(REDIS_URL)
        keys = list(client.scan_iter(match=f"{prefix}*", count=1000))
        if keys:
            client.delete(*keys)
        client.close()


def redis_keys(prefix: str | None) -> set[bytes]:
    if prefix is None:
        return set()
    client = redis.Redis.from_url(REDIS_URL)
    try:
        return set(client.scan_iter(match=f"{prefix}*", count=1000))
    finally:
        client.close()


@pytest.mark.parametrize(("fmt", "content_type"), [
    ("js", "application/javascript; charset=utf-8"),
    ("html", "text/html; charset=utf-8"),
    ("json", "application/json"),
    ("css", "text/css; charset=utf-8"),
])
def test_200_headers(stack, fmt, content_type) -> None:  # type: ignore[no-untyped-def]
    app, _ = stack
    client = app.test_client()
    response = client.get(f"/v1/shops/{SHOP}/widgets/subscription.{fmt}?product={COFFEE}")
    assert response.status_code == 200
    assert response.headers["Content-Type"] == content_type
    assert response.headers["Cache-Control"] == (
        "public, max-age=60, s-maxage=86400, stale-while-revalidate=60, stale-if-error=86400")
    tags = [f"shop:{SHOP}", f"widget:{SHOP}:subscription"]
    if fmt != "css":
        tags.append(f"product:{SHOP}:{COFFEE}")
    assert response.headers["Surrogate-Key"].split(" ") == tags
    assert response.headers["Cache-Tag"].split(",") == tags
    etag = response.headers["ETag"]
    assert etag.startswith('"') and etag.endswith('"') and not etag.startswith("W/")
    assert response.headers["Vary"] == "Accept-Encoding"
    assert response.headers["X-Cache"] == "MISS"
    assert response.headers["Server-Timing"].startswith("render;dur=")
    assert "Set-Cookie" not in response.headers
    again = client.get(f"/v1/shops/{SHOP}/widgets/subscription.{fmt}?product={COFFEE}")
    assert again.headers["X-Cache"] == "HIT"
    assert "Server-Timing" not in again.headers
    assert again.data == response.data and again.headers["ETag"] == etag


def test_etag_and_304(stack) -> None:  # type: ignore[no-untyped-def]
    client = stack[0].test_client()
    first = client.get(JS)
    etag = first.headers["ETag"]
    for header in (etag, f"W/{etag}", f'"other", {etag}', "*"):
        revalidated = client.get(JS, headers={"If-None-Match": header})
        assert revalidated.status_code == 304, header
        assert revalidated.data == b""
        assert revalidated.headers["ETag"] == etag
        assert revalidated.headers["Cache-Control"].startswith("public")
        assert revalidated.headers["Vary"] == "Accept-Encoding"
    assert client.get(JS, headers={"If-None-Match": '"nope"'}).status_code == 200


def test_etag_is_derived_from_identity_bytes(stack) -> None:  # type: ignore[no-untyped-def]
    client = stack[0].test_client()
    identity = client.get(JS, headers={"Accept-Encoding": "identity"})
    compressed = client.get(JS, headers={"Accept-Encoding": "br"})
    assert identity.headers["ETag"] == compressed.headers["ETag"]
    html = client.get(JS.replace(".js", ".html"))
    assert html.headers["ETag"] != identity.headers["ETag"]


def test_head_matches_get(stack) -> None:  # type: ignore[no-untyped-def]
    client = stack[0].test_client()
    get = client.get(JS, headers={"Accept-Encoding": "gzip"})
    head = client.head(JS, headers={"Accept-Encoding": "gzip"})
    assert head.status_code == 200 and head.data == b""
    for name in ("ETag", "Content-Type", "Content-Encoding", "Cache-Control", "Surrogate-Key"):
        assert head.headers[name] == get.headers[name]
    assert head.headers["Content-Length"] == str(len(get.data))


@pytest.mark.parametrize(("accept", "expected"), [
    ("br", "br"),
    ("gzip", "gzip"),
    ("gzip, deflate, br", "br"),
    ("gzip;q=1.0, br;q=0.5", "gzip"),
    ("br;q=0, gzip", "gzip"),
    ("identity", None),
    ("", None),
    ("*", "br"),
    ("deflate", None),
    ("br;q=0, gzip;q=0", None),
])
def test_content_encoding_negotiation(stack, accept, expected) -> None:  # type: ignore[no-untyped-def]
    client = stack[0].test_client()
    identity = client.get(JS, headers={"Accept-Encoding": "identity"}).data
    response = client.get(JS, headers={"Accept-Encoding": accept})
    assert response.headers.get("Content-Encoding") == expected
    decode = {"br": brotli.decompress, "gzip": gzip.decompress, None: lambda b: b}[expected]
    assert decode(response.data) == identity


@pytest.mark.parametrize("query", [
    "product=7001000000001&utm_source=x",
    "product=7001000000001&product=7001000000001",
    "product=abc",
    "product=",
    "product",
    "product=7001000000001&locale=EN",
    "product=7001000000001&locale=en_US",
    "product=7001000000001&v=" + "a" * 33,
    "product=7001000000001&v=a/b",
    "product=7001000000001;utm=x",
    "pro%64uct=7001000000001",
    "product=7001000000001&&locale=en",
    "product=+7001000000001",
    "product=7001000000001%26x%3D1",
    "",
])
def test_bad_query_is_400(stack, query) -> None:  # type: ignore[no-untyped-def]
    app, prefix = stack
    before = redis_keys(prefix)
    response = app.test_client().get(f"/v1/shops/{SHOP}/widgets/subscription.js?{query}")
    assert response.status_code == 400, query
    assert response.headers["Cache-Control"] == "no-store"
    body = response.get_json()
    assert body["error"] == "bad_request" and body["fields"]
    assert redis_keys(prefix) == before


@pytest.mark.parametrize("path", [
    "/v1/shops/Demo-Coffee.myshopify.com/widgets/subscription.js",
    "/v1/shops/demo-coffee.myshopify.com./widgets/subscription.js",
    "/v1/shops/demo-coffee.example.com/widgets/subscription.js",
    "/v1/shops/demo%2Dcoffee.myshopify.com/widgets/subscription.js",
])
def test_bad_shop_is_400(stack, path) -> None:  # type: ignore[no-untyped-def]
    response = stack[0].test_client().get(f"{path}?product={COFFEE}")
    assert response.status_code == 400
    assert response.get_json()["fields"] == {"shop": "must be a lower-case *.myshopify.com domain"}


def test_body_on_get_is_400(stack) -> None:  # type: ignore[no-untyped-def]
    response = stack[0].test_client().get(JS, data=b"x=1", content_type="application/x-www-form-urlencoded")
    assert response.status_code == 400
    assert "body" in response.get_json()["fields"]


@pytest.mark.parametrize("path", [
    f"/v1/shops/{SHOP}/widgets/upsell.js?product={COFFEE}",
    f"/v1/shops/{SHOP}/widgets/subscription.txt?product={COFFEE}",
    f"/v1/shops/{SHOP}/widgets/subscription?product={COFFEE}",
])
def test_unknown_kind_or_format_is_404(stack, path) -> None:  # type: ignore[no-untyped-def]
    assert stack[0].test_client().get(path).status_code == 404


def test_unknown_shop_and_product_are_short_lived_404s(stack) -> None:  # type: ignore[no-untyped-def]
    client = stack[0].test_client()
    for path in (f"/v1/shops/nobody.myshopify.com/widgets/subscription.js?product={COFFEE}",
                 f"/v1/shops/{SHOP}/widgets/subscription.js?product=123",
                 f"/v1/shops/{SHOP}/widgets/subscription.js?product={'9' * 20}"):
        response = client.get(path)
        assert response.status_code == 404, path
        assert response.headers["Cache-Control"] == "public, max-age=60"
        assert response.get_json()["error"] == "not_found"


def test_deleted_shop_answers_404_at_once(stack) -> None:  # type: ignore[no-untyped-def]
    client = stack[0].test_client()
    assert client.get(JS).status_code == 200
    assert client.delete(f"/admin/v1/shops/{SHOP}", headers=AUTH).status_code == 204
    assert client.get(JS).status_code == 404


def test_empty_renders(stack) -> None:  # type: ignore[no-untyped-def]
    client = stack[0].test_client()
    mug = 7001000000003  # no selling plans
    js = client.get(f"/v1/shops/{SHOP}/widgets/subscription.js?product={mug}")
    assert js.status_code == 200 and js.data.startswith(b"/*") and js.data.strip().endswith(b"*/")
    assert client.get(f"/v1/shops/{SHOP}/widgets/subscription.html?product={mug}").data.strip() == b""
    assert client.get(f"/v1/shops/{SHOP}/widgets/subscription.json?product={mug}").get_json() == {
        "enabled": False}
    # Disabled by the merchant.
    client.put(f"/admin/v1/shops/{SHOP}/widgets/subscription", json={"settings": {"enabled": False}},
               headers=AUTH)
    client.post(f"/admin/v1/shops/{SHOP}/widgets/subscription/publish", headers=AUTH)
    assert client.get(JS.replace(".js", ".json")).get_json() == {"enabled": False}


def test_loyalty_ignores_product_and_locale_falls_back(stack) -> None:  # type: ignore[no-untyped-def]
    app, prefix = stack
    client = app.test_client()
    plain = client.get(f"/v1/shops/{SHOP}/widgets/loyalty.js")
    with_product = client.get(f"/v1/shops/{SHOP}/widgets/loyalty.js?product={COFFEE}")
    assert plain.status_code == with_product.status_code == 200
    assert plain.data == with_product.data
    assert "product:" not in with_product.headers["Surrogate-Key"]
    english = client.get(f"{JS}&locale=en")
    keys = redis_keys(prefix)
    spanish = client.get(f"{JS}&locale=es")  # well-formed, not offered by the shop
    assert spanish.status_code == 200 and spanish.data == english.data
    assert redis_keys(prefix) == keys  # keyed as the default locale: no new shared entries
    french = client.get(f"{JS}&locale=fr")
    assert french.data != english.data


def test_cache_buster_never_changes_output(stack) -> None:  # type: ignore[no-untyped-def]
    client = stack[0].test_client()
    assert client.get(f"{JS}&v=abc.1").data == client.get(f"{JS}&v=xyz-2").data == client.get(JS).data


UNKEYED_HEADERS = [
    {"Host": "evil.example"},
    {"X-Forwarded-Host": "evil.example"},
    {"X-Forwarded-Proto": "http"},
    {"X-Forwarded-For": "1.2.3.4"},
    {"X-Forwarded-Prefix": "/evil"},
    {"X-Original-URL": "/admin/v1/shops"},
    {"X-Rewrite-URL": "/admin/v1/shops"},
    {"Forwarded": "host=evil.example;proto=http"},
    {"Cookie": "session=1; cart=abc"},
    {"User-Agent": "Googlebot/2.1"},
    {"Accept-Language": "fr-FR"},
    {"X-Host": "evil.example"},
]


@pytest.mark.parametrize("headers", UNKEYED_HEADERS)
def test_output_ignores_unkeyed_headers(stack, headers) -> None:  # type: ignore[no-untyped-def]
    app, prefix = stack
    client = app.test_client()
    clean = client.get(JS, headers={"Accept-Encoding": "identity"})
    keys = redis_keys(prefix)
    poisoned = client.get(JS, headers={"Accept-Encoding": "identity", **headers})
    assert poisoned.status_code == 200
    assert poisoned.data == clean.data
    assert poisoned.headers["ETag"] == clean.headers["ETag"]
    assert b"evil.example" not in poisoned.data
    assert "Set-Cookie" not in poisoned.headers
    assert redis_keys(prefix) == keys
    # ...and a later clean request still gets the clean bytes.
    assert client.get(JS, headers={"Accept-Encoding": "identity"}).data == clean.data


def test_absolute_urls_come_from_configuration(stack) -> None:  # type: ignore[no-untyped-def]
    body = stack[0].test_client().get(JS, headers={"Host": "evil.example"}).data
    assert b"https://widgets.example.test/v1/shops/" in body
    assert b"localhost" not in body and b"evil" not in body


def test_post_is_405_json(stack) -> None:  # type: ignore[no-untyped-def]
    response = stack[0].test_client().post(JS)
    assert response.status_code == 405
    assert response.headers["Cache-Control"] == "no-store"


def test_recreated_shop_and_product_never_get_old_bytes(stack) -> None:  # type: ignore[no-untyped-def]
    """Versions restart when a shop is re-created; its old renders must not answer for the new one."""
    from tests.web.test_admin import SHOP_BODY

    client = stack[0].test_client()
    product = client.get(f"/admin/v1/shops/{SHOP}/products/{COFFEE}", headers=AUTH).get_json()["product"]
    old = client.get(JS.replace(".js", ".json")).get_json()
    assert client.delete(f"/admin/v1/shops/{SHOP}", headers=AUTH).status_code == 204
    client.put(f"/admin/v1/shops/{SHOP}", json={**SHOP_BODY, "money_format": "{{amount}} USD"}, headers=AUTH)
    renamed = {**product, "title": "A different coffee"}
    client.put(f"/admin/v1/shops/{SHOP}/products/{COFFEE}", json=renamed, headers=AUTH)
    client.put(f"/admin/v1/shops/{SHOP}/widgets/subscription", json={"settings": {}}, headers=AUTH)
    client.post(f"/admin/v1/shops/{SHOP}/widgets/subscription/publish", headers=AUTH)
    new = client.get(JS.replace(".js", ".json")).get_json()
    assert new != old
    assert "A different coffee" in str(new) and "USD" in str(new)
    # Same for a product deleted and re-created at version 1 again.
    client.delete(f"/admin/v1/shops/{SHOP}/products/{COFFEE}", headers=AUTH)
    client.put(f"/admin/v1/shops/{SHOP}/products/{COFFEE}", json={**product, "title": "Third"}, headers=AUTH)
    assert "Third" in str(client.get(JS.replace(".js", ".json")).get_json())
