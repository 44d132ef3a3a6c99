"""POST /webhooks/shopify end to end on SQLite and MySQL: HMAC, topics, dedupe, invalidation of renders."""

from __future__ import annotations

import copy
import json
import uuid
from typing import Any

import pytest

from storefront.web.webhooks import dedupe_keys
from tests.conftest import ADMIN_TOKEN, SHOPIFY_SECRET, load_fixture
from tests.shopify.shopify_side import sign_webhook

SHOP = "demo-coffee.myshopify.com"
COFFEE_ID = 7001000000001
PAYLOAD = load_fixture("shopify/webhook-products-update.json")
COFFEE_JSON = f"/v1/shops/{SHOP}/widgets/subscription.json?product={COFFEE_ID}"
COFFEE_HTML = f"/v1/shops/{SHOP}/widgets/subscription.html?product={COFFEE_ID}"


def deliver(client, topic: str, payload: Any, *, shop: str = SHOP, webhook_id: str | None = None,  # type: ignore[no-untyped-def]
            secret: str = SHOPIFY_SECRET, headers: dict[str, str] | None = None):
    body = payload if isinstance(payload, bytes) else json.dumps(payload).encode()
    sent = {
        "Content-Type": "application/json",
        "X-Shopify-Topic": topic,
        "X-Shopify-Shop-Domain": shop,
        "X-Shopify-Hmac-Sha256": sign_webhook(body, secret),
        "X-Shopify-Webhook-Id": webhook_id or str(uuid.uuid4()),
        "X-Shopify-API-Version": "2025-01",
    }
    sent.update(headers or {})
    sent = {name: value for name, value in sent.items() if value is not None}
    response = client.post("/webhooks/shopify", data=body, headers=sent)
    assert response.headers["Cache-Control"] == "no-store"
    assert "Set-Cookie" not in response.headers
    return response


def outcome(response) -> str:  # type: ignore[no-untyped-def]
    assert response.status_code == 200, response.get_data(as_text=True)
    return response.get_json()["status"]


def stored_coffee(app) -> dict[str, Any]:  # type: ignore[no-untyped-def]
    with app.app_context():
        return app.extensions["storefront"].store.get_product(SHOP, COFFEE_ID).document


def put_coffee(client, document: dict[str, Any], status: int = 200) -> None:  # type: ignore[no-untyped-def]
    """Register the product through the admin API, as the merchant's app does."""
    response = client.put(f"/admin/v1/shops/{SHOP}/products/{COFFEE_ID}", json=document,
                          headers={"Authorization": f"Bearer {ADMIN_TOKEN}"})
    assert response.status_code == status, response.get_data(as_text=True)


def plan_prices(document_variant: dict[str, Any]) -> list[int]:
    return [allocation["price"] for allocation in document_variant["selling_plan_allocations"]]


# -- products/update ----------------------------------------------------------------------------
def test_products_update_reprices_the_product_and_the_public_widget_at_once(app, client) -> None:  # type: ignore[no-untyped-def]
    before = client.get(COFFEE_JSON).get_json()
    assert before["variants"][0]["price"] == 1800
    assert client.get(COFFEE_JSON).headers["X-Cache"] == "HIT"  # cached before the change

    assert outcome(deliver(client, "products/update", PAYLOAD)) == "applied"

    document = stored_coffee(app)
    assert document["title"] == "Single-Origin Coffee Beans (new harvest)"
    small, large = document["variants"]
    assert (small["title"], small["price"], small["available"]) == ("250 g", 1900, True)
    assert plan_prices(small) == [1710, 1615, 1520]                   # 10%, 15%, 20% off 19.00
    assert (large["title"], large["price"], large["available"]) == ("1 kg", 5400, False)
    assert plan_prices(large) == [4860, 4590, 4320]
    assert len(document["variants"]) == 2                              # the 5 kg was deleted in Shopify

    widget = client.get(COFFEE_JSON)
    assert widget.headers["X-Cache"] == "MISS"
    model = widget.get_json()
    assert model["product"]["title"] == "Single-Origin Coffee Beans (new harvest)"
    assert [(v["id"], v["price"], v["available"]) for v in model["variants"]] == [
        (42001000000001, 1900, True), (42001000000002, 5400, False)]
    assert [p["price"] for p in model["variants"][0]["selling_plans"]] == [1710, 1615, 1520]
    assert "$19.00" in client.get(COFFEE_HTML).get_data(as_text=True)


def test_a_replayed_webhook_id_is_acknowledged_and_not_applied_again(app, client) -> None:  # type: ignore[no-untyped-def]
    original = load_fixture("products/coffee-three-plans.json")
    webhook_id = str(uuid.uuid4())
    assert outcome(deliver(client, "products/update", PAYLOAD, webhook_id=webhook_id)) == "applied"
    # The merchant's app re-registers the product through the admin API after the delivery.
    put_coffee(client, original)
    assert stored_coffee(app)["variants"][0]["price"] == 1800

    assert outcome(deliver(client, "products/update", PAYLOAD, webhook_id=webhook_id)) == "duplicate"
    assert stored_coffee(app)["variants"][0]["price"] == 1800       # the replay did not overwrite
    assert client.get(COFFEE_JSON).get_json()["variants"][0]["price"] == 1800

    # Dedupe is by delivery, not by content: the same payload under a new id is applied.
    assert outcome(deliver(client, "products/update", PAYLOAD)) == "applied"
    assert stored_coffee(app)["variants"][0]["price"] == 1900


def test_a_delivery_interrupted_after_it_was_received_is_applied_by_the_retry(app, client) -> None:  # type: ignore[no-untyped-def]
    webhook_id = str(uuid.uuid4())
    received, _ = dedupe_keys(webhook_id)
    with app.app_context():  # a worker recorded the delivery, then died before writing the product
        assert app.extensions["storefront"].store.record_webhook(received)
    assert outcome(deliver(client, "products/update", PAYLOAD, webhook_id=webhook_id)) == "applied"
    assert stored_coffee(app)["variants"][0]["price"] == 1900
    put_coffee(client, load_fixture("products/coffee-three-plans.json"))
    assert outcome(deliver(client, "products/update", PAYLOAD, webhook_id=webhook_id)) == "duplicate"
    assert stored_coffee(app)["variants"][0]["price"] == 1800


@pytest.mark.parametrize("hmac_header", [
    None, "", "garbage", sign_webhook(b"{}", SHOPIFY_SECRET),
    sign_webhook(json.dumps(PAYLOAD).encode(), "another-app-secret"),
])
def test_a_bad_or_missing_hmac_is_401_and_changes_nothing(sqlite_app, hmac_header) -> None:  # type: ignore[no-untyped-def]
    app, client = sqlite_app, sqlite_app.test_client()
    before = stored_coffee(app)
    webhook_id = str(uuid.uuid4())
    response = deliver(client, "products/update", PAYLOAD, webhook_id=webhook_id,
                       headers={"X-Shopify-Hmac-Sha256": hmac_header})
    assert response.status_code == 401
    assert response.get_json()["error"] == "unauthorized"
    assert stored_coffee(app) == before
    # The refused delivery did not use up its id: the genuine one is still applied.
    assert outcome(deliver(client, "products/update", PAYLOAD, webhook_id=webhook_id)) == "applied"


def test_the_hmac_covers_the_exact_bytes(app, client) -> None:  # type: ignore[no-untyped-def]
    body = json.dumps(PAYLOAD).encode()
    tampered = body.replace(b'"19.00"', b'"0.01"')
    response = deliver(client, "products/update", tampered, headers={"X-Shopify-Hmac-Sha256": sign_webhook(
        body, SHOPIFY_SECRET)})
    assert response.status_code == 401
    assert stored_coffee(app)["variants"][0]["price"] == 1800
    # Formatting is part of what is signed, and any formatting Shopify signed is accepted.
    pretty = json.dumps(PAYLOAD, indent=2).encode()
    assert outcome(deliver(client, "products/update", pretty)) == "applied"


def test_a_malformed_payload_is_400_naming_the_field_and_changes_nothing(app, client) -> None:  # type: ignore[no-untyped-def]
    before = stored_coffee(app)
    payload = copy.deepcopy(PAYLOAD)
    payload["variants"][1]["price"] = "54,00"
    webhook_id = str(uuid.uuid4())
    response = deliver(client, "products/update", payload, webhook_id=webhook_id)
    assert response.status_code == 400
    assert "variants[1].price" in response.get_json()["fields"]
    assert stored_coffee(app) == before
    for body, field in ((b"not json", "body"), (b"[1, 2]", "$"), (b'{"id": "7001000000001"}', "id")):
        response = deliver(client, "products/update", body)
        assert response.status_code == 400
        assert field in response.get_json()["fields"]
    assert stored_coffee(app) == before
    # A 400 does not mark the delivery as seen.
    assert outcome(deliver(client, "products/update", PAYLOAD, webhook_id=webhook_id)) == "applied"


def test_unknown_products_and_shops_are_ignored(app, client) -> None:  # type: ignore[no-untyped-def]
    other = dict(PAYLOAD, id=7009999999999)
    response = deliver(client, "products/update", other)
    assert (outcome(response), response.get_json()["reason"]) == ("ignored", "unknown product")
    response = deliver(client, "products/update", PAYLOAD, shop="no-such-shop.myshopify.com")
    assert (outcome(response), response.get_json()["reason"]) == ("ignored", "unknown shop")
    with app.app_context():
        assert app.extensions["storefront"].store.get_shop("no-such-shop.myshopify.com") is None
    assert stored_coffee(app)["variants"][0]["price"] == 1800


def test_an_update_that_changes_nothing_we_keep_writes_nothing(app, client) -> None:  # type: ignore[no-untyped-def]
    assert outcome(deliver(client, "products/update", PAYLOAD)) == "applied"
    with app.app_context():
        version = app.extensions["storefront"].store.get_product(SHOP, COFFEE_ID).version
    tags_only = dict(PAYLOAD, tags="new, sale", updated_at="2026-11-21T08:00:00-05:00")
    assert outcome(deliver(client, "products/update", tags_only)) == "unchanged"
    with app.app_context():
        assert app.extensions["storefront"].store.get_product(SHOP, COFFEE_ID).version == version


# -- other topics ---------------------------------------------------------------------------------
def test_products_delete_removes_the_product_and_its_widget(app, client) -> None:  # type: ignore[no-untyped-def]
    assert client.get(COFFEE_JSON).status_code == 200
    webhook_id = str(uuid.uuid4())
    assert outcome(deliver(client, "products/delete", {"id": COFFEE_ID}, webhook_id=webhook_id)) == "applied"
    with app.app_context():
        assert app.extensions["storefront"].store.get_product(SHOP, COFFEE_ID) is None
    assert client.get(COFFEE_JSON).status_code == 404
    # Registered again, then the old delivery replayed: it stays.
    put_coffee(client, load_fixture("products/coffee-three-plans.json"), status=201)
    replay = deliver(client, "products/delete", {"id": COFFEE_ID}, webhook_id=webhook_id)
    assert outcome(replay) == "duplicate"
    assert client.get(COFFEE_JSON).status_code == 200
    response = deliver(client, "products/delete", {"id": 7009999999999})
    assert (outcome(response), response.get_json()["reason"]) == ("ignored", "unknown product")


def test_shop_update_changes_name_currency_and_money_format(app, client) -> None:  # type: ignore[no-untyped-def]
    assert "$18.00" in client.get(COFFEE_HTML).get_data(as_text=True)
    shop_payload = {"id": 548380009, "name": "Demo Coffee Roasters", "email": "owner@example.com",
                    "domain": "coffee.example.com", "currency": "CAD",
                    "money_format": "${{amount}} CAD", "money_with_currency_format": "${{amount}} CAD",
                    "iana_timezone": "America/Toronto", "plan_name": "basic"}
    assert outcome(deliver(client, "shop/update", shop_payload)) == "applied"
    with app.app_context():
        shop = app.extensions["storefront"].store.get_shop(SHOP)
    assert (shop.name, shop.currency, shop.money_format) == ("Demo Coffee Roasters", "CAD", "${{amount}} CAD")
    assert (shop.default_locale, shop.locales) == ("en", ("en", "fr"))   # not Shopify's to change
    assert "$18.00 CAD" in client.get(COFFEE_HTML).get_data(as_text=True)
    assert outcome(deliver(client, "shop/update", shop_payload)) == "unchanged"
    with app.app_context():
        assert app.extensions["storefront"].store.get_shop(SHOP).version == shop.version

    response = deliver(client, "shop/update", dict(shop_payload, money_format="{{ price }}"))
    assert response.status_code == 400
    assert "money_format" in response.get_json()["fields"]
    with app.app_context():
        assert app.extensions["storefront"].store.get_shop(SHOP).money_format == "${{amount}} CAD"


def test_app_uninstalled_deletes_the_shop_and_its_public_widgets_answer_404(app, client) -> None:  # type: ignore[no-untyped-def]
    assert client.get(COFFEE_JSON).status_code == 200
    webhook_id = str(uuid.uuid4())
    assert outcome(deliver(client, "app/uninstalled", {"id": 548380009, "domain": SHOP},
                           webhook_id=webhook_id)) == "applied"
    with app.app_context():
        assert app.extensions["storefront"].store.get_shop(SHOP) is None
    response = client.get(COFFEE_JSON)
    assert response.status_code == 404
    assert client.get(f"/v1/shops/{SHOP}/widgets/loyalty.js").status_code == 404
    assert outcome(deliver(client, "app/uninstalled", {}, webhook_id=webhook_id)) == "duplicate"
    response = deliver(client, "app/uninstalled", {})
    assert (outcome(response), response.get_json()["reason"]) == ("ignored", "unknown shop")
    # Other shops are untouched.
    assert client.get(f"/v1/shops/kaffee-haus.myshopify.com/widgets/subscription.json?product={COFFEE_ID}"
                      ).status_code == 200


def test_topics_we_do_not_handle_are_acknowledged_and_ignored(app, client) -> None:  # type: ignore[no-untyped-def]
    before = stored_coffee(app)
    for topic in ("orders/create", "customers/data_request", "products/create"):
        response = deliver(client, topic, {"id": COFFEE_ID, "anything": True})
        assert (outcome(response), response.get_json()["topic"]) == ("ignored", topic)
    # Only after the signature checks out.
    assert deliver(client, "orders/create", {}, secret="not-the-secret").status_code == 401
    assert stored_coffee(app) == before


@pytest.mark.parametrize(("headers", "field"), [
    ({"X-Shopify-Shop-Domain": None}, "X-Shopify-Shop-Domain"),
    ({"X-Shopify-Shop-Domain": "Demo-Coffee.myshopify.com"}, "X-Shopify-Shop-Domain"),
    ({"X-Shopify-Shop-Domain": "demo-coffee.myshopify.com."}, "X-Shopify-Shop-Domain"),
    ({"X-Shopify-Shop-Domain": "evil.example.com"}, "X-Shopify-Shop-Domain"),
    ({"X-Shopify-Topic": None}, "X-Shopify-Topic"),
    ({"X-Shopify-Webhook-Id": None}, "X-Shopify-Webhook-Id"),
    ({"X-Shopify-Webhook-Id": "a b"}, "X-Shopify-Webhook-Id"),
    ({"X-Shopify-Webhook-Id": "x" * 201}, "X-Shopify-Webhook-Id"),
])
def test_signed_deliveries_with_bad_headers_are_400(sqlite_app, headers, field) -> None:  # type: ignore[no-untyped-def]
    app, client = sqlite_app, sqlite_app.test_client()
    before = stored_coffee(app)
    response = deliver(client, "products/update", PAYLOAD, headers=headers)
    assert response.status_code == 400
    assert field in response.get_json()["fields"]
    assert stored_coffee(app) == before


def test_a_body_over_256_kib_is_413(app, client) -> None:  # type: ignore[no-untyped-def]
    body = json.dumps(dict(PAYLOAD, body_html="x" * (256 * 1024))).encode()
    response = deliver(client, "products/update", body)
    assert response.status_code == 413
    assert stored_coffee(app)["variants"][0]["price"] == 1800


def test_only_post_is_allowed(client) -> None:  # type: ignore[no-untyped-def]
    assert client.get("/webhooks/shopify").status_code == 405
