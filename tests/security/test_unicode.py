"""Unicode edge cases in every kind of text field, in webhooks, in JSON keys and in signed queries.

Each string is either refused (a 422 naming the field) or stored exactly and rendered inert:
line and paragraph separators, bidi overrides and isolates, zero-width characters, the BOM,
C0/C1 controls, NUL, lone and reversed surrogates (sent as JSON escapes, the only way they
travel), noncharacters, private use, emoji sequences, combining marks, right-to-left scripts.
NUL, other controls and surrogates never get in anywhere; nothing answers 500 or emits invalid UTF-8.
(test_xss.py runs the separators, bidi marks, NUL and a surrogate through every field too.)
"""

from __future__ import annotations

import json
import time
import uuid

import pytest
from flask import Flask
from flask.testing import FlaskClient
from werkzeug.test import TestResponse

from tests.conftest import ADMIN_TOKEN, SHOPIFY_SECRET, load_fixture
from tests.security.hostile_shop import BY_KEY, plant
from tests.security.inert import assert_renders_inert, assert_stored_exactly
from tests.shopify.shopify_side import encode, proxy_signature, sign_webhook

SHOP = "demo-coffee.myshopify.com"
COFFEE = 7001000000001
AUTH = {"Authorization": f"Bearer {ADMIN_TOKEN}"}

UNICODE = {
    "U+2028 line separator": "a\u2028b",
    "U+2029 paragraph separator": "a\u2029b",
    "U+202E right-to-left override": "\u202eevil",
    "U+200D zero-width joiner": "a\u200db",
    "other bidi controls and invisibles":
        "\u202aa\u202bb\u202c\u202dd\u2066x\u2067y\u2069\u200b\ufeff\u200e\u200f",
    "special code points": "a\uffffb\ufffe\ue000\U0010fffd",
    "letters past the BMP, combining marks, right-to-left scripts":
        "\U0001f469\u200d\U0001f469\u200d\U0001f467 e\u0301 \U0001d4b3 "
        "\u05e2\u05d1\u05e8\u05d9\u05ea \u0627\u0644\u0639\u0631\u0628\u064a\u0629",
    "CR LF": "a\r\nb",
    "tab": "a\tb",
    "U+0085 next line (C1)": "a\x85b",
    "U+001B escape": "a\x1b[31mb",
    "U+007F delete": "a\x7fb",
    "U+0000 NUL": "a\x00b",
    "lone high surrogate": "a\ud800b",
    "lone low surrogate": "a\udfffb",
    "reversed surrogate pair": "a\udc00\ud800b",
}
# Not text (surrogates), or control characters no field takes (a description only takes CR, LF, tab).
NEVER_STORED = ("U+0000 NUL", "lone high surrogate", "lone low surrogate", "reversed surrogate pair",
                "U+0085 next line (C1)", "U+001B escape", "U+007F delete")

# One field per kind of validation and per context it renders into.
FIELDS = [BY_KEY[key] for key in (
    "shop.name",                                   # plain text, the preview page
    "shop.money_format",                           # prices everywhere
    "product.title",                               # a Shopify name: JSON, preview
    "product.handle",                              # a pattern (no spaces, /, ?, #)
    "product.plan.description",                    # multi-line text
    "product.plan.option.value",                   # an <option>'s text
    "product.group.name",                          # an <optgroup label="...">
    "bundle_product.item.title",                   # text and aria-label
    "bundle_product.item.image_url",               # an <img src>
    "subscription.labels.onetime",                 # a label
    "subscription.translations.fr.details_body",   # a long label, in another locale
    "subscription.learn_more_url",                 # an <a href>
    "loyalty.tier.perk",                           # a list item
)]


@pytest.mark.parametrize("name", list(UNICODE))
def test_unicode_is_refused_by_name_or_stored_exactly_and_rendered_inert(fresh_app: Flask,
                                                                         name: str) -> None:
    client = fresh_app.test_client()
    planted = plant(client, UNICODE[name], fields=FIELDS)
    if name in NEVER_STORED:
        assert planted.accepted == {}, sorted(field.key for field in planted.accepted)
        return
    # Multi-line plan descriptions take everything that is valid text.
    assert BY_KEY["product.plan.description"] in planted.accepted
    assert_stored_exactly(client, planted)
    assert_renders_inert(client, planted)


def _webhook(client: FlaskClient, payload: bytes, topic: str = "products/update") -> TestResponse:
    return client.post("/webhooks/shopify", data=payload, content_type="application/json", headers={
        "X-Shopify-Hmac-Sha256": sign_webhook(payload, SHOPIFY_SECRET), "X-Shopify-Topic": topic,
        "X-Shopify-Shop-Domain": SHOP, "X-Shopify-Webhook-Id": str(uuid.uuid4())})


@pytest.mark.parametrize(("text", "status"), [
    ("a\ud800b", 400), ("a\x00b", 400), ("a\u2028b", 400), ("\u202eevil", 200),
    ("\U0001d4b3 \u05e2\u05d1", 200),
])
def test_webhook_titles_meet_the_same_rules(demo_app: Flask, text: str, status: int) -> None:
    client = demo_app.test_client()
    payload = load_fixture("shopify/webhook-products-update.json")
    payload["title"] = text
    response = _webhook(client, json.dumps(payload).encode())
    assert response.status_code == status, response.get_data(as_text=True)
    stored = client.get(f"/admin/v1/shops/{SHOP}/products/{COFFEE}", headers=AUTH).get_json()["product"]
    if status == 200:
        assert stored["title"] == text
    else:
        assert "title" in response.get_json()["fields"]
        assert stored["title"] != text
    shop = _webhook(client, json.dumps({"name": text}).encode(), topic="shop/update")
    assert shop.status_code == status


@pytest.mark.parametrize("key", ["\ud800", "\x00", "\u202e", "a.b", 'a"]', "\U0001f469\u200d\U0001f469"])
def test_odd_keys_are_named_safely_or_ignored(demo_app: Flask, key: str) -> None:
    """Unknown keys are reported under a quoted, escaped path; the error is valid UTF-8 JSON."""
    client = demo_app.test_client()
    bodies = {
        f"/admin/v1/shops/{SHOP}/widgets/subscription": [
            {"settings": {key: 1}}, {"settings": {"labels": {key: "x"}}},
            {"settings": {"translations": {key: {}}}}, {"settings": {"colors": {key: "#fff"}}}],
        f"/admin/v1/shops/{SHOP}/widgets/loyalty": [{"settings": {"tiers": [{"name": "a", "min_points": 0,
                                                                              key: 1}]}}],
    }
    for path, documents in bodies.items():
        for document in documents:
            response = client.put(path, data=json.dumps(document), content_type="application/json",
                                  headers=AUTH)
            assert response.status_code == 422, (path, document)
            raw = response.get_data()
            fields = json.loads(raw.decode("utf-8"))["fields"]  # strict UTF-8: no surrogate leaked out
            assert len(fields) == 1
            (path_named,) = fields
            assert path_named.endswith(("]", key)) and "\ud800" not in path_named and "\x00" not in path_named
    # Unknown members of a product are dropped, whatever their name.
    product = client.get(f"/admin/v1/shops/{SHOP}/products/{COFFEE}", headers=AUTH).get_json()["product"]
    response = client.put(f"/admin/v1/shops/{SHOP}/products/{COFFEE}", data=json.dumps({**product, key: "x"}),
                          content_type="application/json", headers=AUTH)
    assert response.status_code == 200 and key not in response.get_json()["product"]


@pytest.mark.parametrize("value", ["%ED%A0%80", "%C0%AF", "%FF", "caf\u00e9", "%00", "%E2%80%AE"])
def test_app_proxy_queries_with_odd_encodings_are_refused_not_crashed(demo_app: Flask, value: str) -> None:
    """Undecodable or raw non-ASCII queries cannot have come from Shopify: 401. Signed control
    characters are authentic but not acceptable values: 400."""
    client = demo_app.test_client()
    params = [("product", str(COFFEE)), ("shop", SHOP), ("logged_in_customer_id", ""),
              ("path_prefix", "/apps/widgets"), ("timestamp", str(int(time.time())))]
    query = encode(params) + f"&locale={value}&signature=" + proxy_signature(params, SHOPIFY_SECRET)
    response = client.get(f"/proxy/widgets/subscription?{query}")
    assert response.status_code == 401, value
    decoded = {"%00": "\x00", "%E2%80%AE": "\u202e"}.get(value)
    if decoded is not None:
        signed = params + [("locale", decoded)]
        query = encode(signed) + "&signature=" + proxy_signature(signed, SHOPIFY_SECRET)
        response = client.get(f"/proxy/widgets/subscription?{query}")
        assert response.status_code == 400 and "locale" in response.get_json()["fields"]
