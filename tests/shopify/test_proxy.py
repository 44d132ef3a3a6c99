"""GET /proxy/widgets/<kind> (Shopify app proxy): signed requests get the cached fragment, others do not."""

from __future__ import annotations

import gzip
import time

import pytest

from tests.conftest import SHOPIFY_SECRET
from tests.shopify.conftest import shopify_app
from tests.shopify.shopify_side import encode, proxy_query

SHOP = "demo-coffee.myshopify.com"
COFFEE_ID = "7001000000001"
PUBLIC_HTML = f"/v1/shops/{SHOP}/widgets/subscription.html?product={COFFEE_ID}"


def shopify_params(*, timestamp: int | None = None, customer: str = "",
                   **extra: str) -> list[tuple[str, str]]:
    """What Shopify forwards for /apps/widgets/subscription?product=...: its own parameters added."""
    params = [(name, value) for name, value in extra.items()]
    params += [("shop", SHOP), ("logged_in_customer_id", customer), ("path_prefix", "/apps/widgets"),
               ("timestamp", str(int(time.time()) if timestamp is None else timestamp))]
    return params


def with_shop(shop: str) -> list[tuple[str, str]]:
    return [(name, shop if name == "shop" else value) for name, value in shopify_params(product=COFFEE_ID)]


def get(client, query: str, kind: str = "subscription", **kwargs):  # type: ignore[no-untyped-def]
    response = client.get(f"/proxy/widgets/{kind}?{query}", **kwargs)
    assert "Set-Cookie" not in response.headers
    return response


def refused(response, status: int, field: str | None = None) -> None:  # type: ignore[no-untyped-def]
    assert response.status_code == status, response.get_data(as_text=True)
    assert response.headers["Cache-Control"] == "no-store"
    if field is not None:
        assert field in response.get_json()["fields"], response.get_json()


def test_a_signed_request_gets_the_same_html_as_the_public_endpoint_from_the_same_cache(sqlite_app) -> None:  # type: ignore[no-untyped-def]
    client = sqlite_app.test_client()
    public = client.get(PUBLIC_HTML)
    assert public.status_code == 200
    response = get(client, proxy_query(shopify_params(product=COFFEE_ID), SHOPIFY_SECRET))
    assert response.status_code == 200, response.get_data(as_text=True)
    assert response.headers["Content-Type"] == "text/html; charset=utf-8"
    assert response.get_data() == public.get_data()
    assert 'data-product-id="7001000000001"' in response.get_data(as_text=True)
    assert response.headers["X-Cache"] == "HIT"            # rendered once, for the public request
    assert response.headers["ETag"] == public.headers["ETag"]
    assert response.headers["Cache-Control"] == "private, max-age=60"
    assert response.headers["Vary"] == "Accept-Encoding"


def test_the_fragment_is_not_personalised(sqlite_app) -> None:  # type: ignore[no-untyped-def]
    client = sqlite_app.test_client()
    guest = get(client, proxy_query(shopify_params(product=COFFEE_ID), SHOPIFY_SECRET))
    signed_in = shopify_params(product=COFFEE_ID, customer="6240000000001")
    customer = get(client, proxy_query(signed_in, SHOPIFY_SECRET))
    assert (guest.status_code, customer.status_code) == (200, 200)
    assert guest.get_data() == customer.get_data()


def test_gzip_when_accepted_and_304_on_a_matching_etag(sqlite_app) -> None:  # type: ignore[no-untyped-def]
    client = sqlite_app.test_client()
    plain = get(client, proxy_query(shopify_params(product=COFFEE_ID), SHOPIFY_SECRET))
    zipped = get(client, proxy_query(shopify_params(product=COFFEE_ID), SHOPIFY_SECRET),
                 headers={"Accept-Encoding": "gzip, br"})
    assert "Content-Encoding" not in plain.headers
    assert zipped.headers["Content-Encoding"] == "gzip"
    assert gzip.decompress(zipped.get_data()) == plain.get_data()
    again = get(client, proxy_query(shopify_params(product=COFFEE_ID), SHOPIFY_SECRET),
                headers={"If-None-Match": plain.headers["ETag"]})
    assert again.status_code == 304
    assert again.get_data() == b""


def test_locale_and_kind_pass_through(sqlite_app) -> None:  # type: ignore[no-untyped-def]
    client = sqlite_app.test_client()
    french = get(client, proxy_query(shopify_params(product=COFFEE_ID, locale="fr"), SHOPIFY_SECRET))
    assert french.status_code == 200
    assert "Achat unique" in french.get_data(as_text=True)
    loyalty = get(client, proxy_query(shopify_params(), SHOPIFY_SECRET), kind="loyalty")
    assert loyalty.status_code == 200
    assert loyalty.get_data() == client.get(f"/v1/shops/{SHOP}/widgets/loyalty.html").get_data()


def test_a_tampered_parameter_is_401(sqlite_app) -> None:  # type: ignore[no-untyped-def]
    client = sqlite_app.test_client()
    query = proxy_query(shopify_params(product=COFFEE_ID), SHOPIFY_SECRET)
    refused(get(client, query.replace(f"product={COFFEE_ID}", "product=7001000000002")), 401, "signature")
    refused(get(client, query.replace("demo-coffee", "kaffee-haus")), 401)
    refused(get(client, query + "&locale=fr"), 401)                       # added after signing
    refused(get(client, proxy_query(shopify_params(product=COFFEE_ID), "another-app-secret")), 401)
    body = get(client, query.replace(f"product={COFFEE_ID}", "product=7001000000002")).get_json()
    assert body["error"] == "unauthorized"


@pytest.mark.parametrize("age", [91, 3600, -91])
def test_a_timestamp_outside_90_seconds_is_401(sqlite_app, age: int) -> None:  # type: ignore[no-untyped-def]
    client = sqlite_app.test_client()
    query = proxy_query(shopify_params(product=COFFEE_ID, timestamp=int(time.time()) - age), SHOPIFY_SECRET)
    refused(get(client, query), 401, "signature")


def test_a_timestamp_within_the_window_is_accepted(sqlite_app) -> None:  # type: ignore[no-untyped-def]
    client = sqlite_app.test_client()
    query = proxy_query(shopify_params(product=COFFEE_ID, timestamp=int(time.time()) - 80), SHOPIFY_SECRET)
    assert get(client, query).status_code == 200


def test_a_missing_signature_is_401(sqlite_app) -> None:  # type: ignore[no-untyped-def]
    client = sqlite_app.test_client()
    refused(get(client, encode(shopify_params(product=COFFEE_ID))), 401, "signature")
    refused(get(client, ""), 401)
    refused(get(client, f"product={COFFEE_ID}"), 401)


def test_a_repeated_parameter_signed_by_shopify_is_400_and_an_added_one_401(sqlite_app) -> None:  # type: ignore[no-untyped-def]
    """Decision: the signature is judged first (401 for anything Shopify did not sign), then the
    allow-list (400): a repeat that is correctly signed is authentic but not a request we take."""
    client = sqlite_app.test_client()
    repeated = shopify_params(product=COFFEE_ID) + [("product", "7001000000002")]
    refused(get(client, proxy_query(repeated, SHOPIFY_SECRET)), 400, "product")
    shop_twice = shopify_params(product=COFFEE_ID) + [("shop", SHOP)]
    refused(get(client, proxy_query(shop_twice, SHOPIFY_SECRET)), 400, "shop")
    signed_once = proxy_query(shopify_params(product=COFFEE_ID), SHOPIFY_SECRET)
    refused(get(client, signed_once + f"&product={COFFEE_ID}"), 401)


@pytest.mark.parametrize(("params", "field"), [
    ([("extra", "1"), ("extra", "2")], "extra"),                  # the vector's shape, signed
    ([("v", "2")], "v"),                                          # allowed on /v1, not here
    ([("locale", "french")], "locale"),
    ([("product", "12x")], "product"),
])
def test_signed_but_unacceptable_parameters_are_400(sqlite_app, params, field) -> None:  # type: ignore[no-untyped-def]
    client = sqlite_app.test_client()
    refused(get(client, proxy_query(shopify_params(product=COFFEE_ID) + params, SHOPIFY_SECRET)), 400, field)


def test_signed_requests_for_a_bad_shop_or_missing_product_are_400(sqlite_app) -> None:  # type: ignore[no-untyped-def]
    client = sqlite_app.test_client()
    refused(get(client, proxy_query(shopify_params(), SHOPIFY_SECRET)), 400, "product")
    params = with_shop("Demo-Coffee.myshopify.com")
    refused(get(client, proxy_query(params, SHOPIFY_SECRET)), 400, "shop")


def test_unknown_products_shops_and_kinds_are_404_and_not_cached(sqlite_app) -> None:  # type: ignore[no-untyped-def]
    client = sqlite_app.test_client()
    refused(get(client, proxy_query(shopify_params(product="7009999999999"), SHOPIFY_SECRET)), 404)
    params = with_shop("other-shop.myshopify.com")
    refused(get(client, proxy_query(params, SHOPIFY_SECRET)), 404)
    refused(get(client, proxy_query(shopify_params(product=COFFEE_ID), SHOPIFY_SECRET), kind="reviews"), 404)


def test_nothing_verifies_when_no_secret_is_configured(sqlite_url) -> None:  # type: ignore[no-untyped-def]
    # Development runs without a secret; a request signed with the empty key must not pass.
    app = shopify_app(sqlite_url, ENV="development", SHOPIFY_API_SECRET="")
    try:
        refused(get(app.test_client(), proxy_query(shopify_params(product=COFFEE_ID), "")), 401)
    finally:
        app.extensions["storefront"].store.close()
