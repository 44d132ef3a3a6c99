"""Hostile request bodies on every admin endpoint that reads one and on the (signed) webhook.

Oversized (413), nested 100 000 deep, not UTF-8, UTF-16/32 or UTF-8 with a BOM, NaN and
Infinity, integers past Python's 4300-digit limit, gzip bombs: each a 4xx with the contract's
JSON error, never a 500, and the stored data unchanged. Then the semantic edge cases a parser
lets through (duplicate keys, 1e999, huge or fractional numbers) must meet validation.
"""

from __future__ import annotations

import codecs
import gzip
import json
import uuid
from typing import Any

import pytest
from flask import Flask
from flask.testing import FlaskClient
from werkzeug.test import TestResponse

from tests.conftest import ADMIN_TOKEN, SHOPIFY_SECRET
from tests.shopify.shopify_side import sign_webhook

SHOP = "demo-coffee.myshopify.com"
COFFEE = 7001000000001
AUTH = {"Authorization": f"Bearer {ADMIN_TOKEN}"}
LIMIT = 256 * 1024
VALID_SHOP = {"name": "Demo Coffee Co.", "currency": "USD", "money_format": "${{amount}}",
              "default_locale": "en", "locales": ["en", "fr"]}

# (method, path) of every endpoint that reads a JSON body.
BODY_ENDPOINTS = [
    ("PUT", f"/admin/v1/shops/{SHOP}"),
    ("PUT", f"/admin/v1/shops/{SHOP}/products/{COFFEE}"),
    ("PUT", f"/admin/v1/shops/{SHOP}/widgets/subscription"),
    ("POST", f"/admin/v1/shops/{SHOP}/widgets/subscription/rollback"),
    ("POST", f"/admin/v1/shops/{SHOP}/purge"),
    ("POST", f"/admin/v1/shops/{SHOP}/widgets/subscription/preview-links"),
    ("POST", "/webhooks/shopify"),
]


def _nested(depth: int, opening: str, closing: str, inner: str = "1") -> bytes:
    return (opening * depth + inner + closing * depth).encode()


# name -> (body, status): what each hostile body must get, on every endpoint.
HOSTILE: dict[str, tuple[bytes, int]] = {
    "300 KiB": (json.dumps({**VALID_SHOP, "name": "x" * (300 * 1024)}).encode(), 413),
    "one byte over 256 KiB": (b"{" + b" " * (LIMIT - 1) + b"}", 413),
    "100 000 nested arrays": (_nested(100_000, "[", "]"), 400),
    "40 000 nested objects": (_nested(40_000, '{"a":', "}"), 400),
    "5 000 nested arrays": (_nested(5_000, "[", "]"), 400),
    "Latin-1 bytes": ('{"name": "Caf\u00e9"}'.encode("latin-1"), 400),
    "a lone 0xFF": (b'{"name": "\xff"}', 400),
    "an encoded surrogate (CESU-8)": (b'{"name": "\xed\xa0\x80"}', 400),
    "overlong UTF-8 for /": (b'{"name": "\xc0\xaf"}', 400),
    "UTF-16 with BOM": (json.dumps(VALID_SHOP).encode("utf-16"), 400),
    "UTF-16-LE without BOM": (json.dumps(VALID_SHOP).encode("utf-16-le"), 400),
    "UTF-32 with BOM": (json.dumps(VALID_SHOP).encode("utf-32"), 400),
    "UTF-8 with BOM": (codecs.BOM_UTF8 + json.dumps(VALID_SHOP).encode(), 400),
    "NaN": (b'{"version": NaN, "name": NaN}', 400),
    "Infinity": (b'{"version": Infinity}', 400),
    "-Infinity": (b'{"version": -Infinity}', 400),
    "an integer of 5000 digits": (b'{"version": 1' + b"0" * 4999 + b"}", 400),
    "a float of 5000 digits": (b'{"version": 0.' + b"1" * 5000 + b"e5}", None),  # parses: validation decides
    "trailing garbage": (json.dumps(VALID_SHOP).encode() + b" x", 400),
    "two documents": (json.dumps(VALID_SHOP).encode() * 2, 400),
    "single quotes": (b"{'name': 'x'}", 400),
    "a comment": (b'{"name": "x" /* hi */}', 400),
    "a trailing comma": (b'{"name": "x",}', 400),
    "a raw control character in a string": (b'{"name": "a\x01b"}', 400),
    "a gzip bomb, not declared": (gzip.compress(b"[" * 200_000), 400),
    "duplicate keys": (b'{"version": 1, "version": "x", "name": "a", "name": null, "settings": {}, '
                       b'"settings": null}', None),
    "empty": (b"", None),
    "only whitespace": (b" \r\n\t ", 400),
    "null": (b"null", None),
}


def snapshot(client: FlaskClient) -> dict[str, Any]:
    base = f"/admin/v1/shops/{SHOP}"
    paths = (base, f"{base}/products/{COFFEE}", f"{base}/widgets/subscription",
             f"{base}/widgets/subscription/versions")
    return {path: client.get(path, headers=AUTH).get_json() for path in paths}


def send(client: FlaskClient, method: str, path: str, body: bytes, content_type: str = "application/json",
         extra: dict[str, str] | None = None) -> TestResponse:
    headers = dict(extra or {})
    if path.startswith("/webhooks/"):
        # Signed for exactly these bytes, so the body reaches the parser.
        headers.update({"X-Shopify-Hmac-Sha256": sign_webhook(body, SHOPIFY_SECRET),
                        "X-Shopify-Topic": "products/update", "X-Shopify-Shop-Domain": SHOP,
                        "X-Shopify-Webhook-Id": str(uuid.uuid4())})
    else:
        headers.update(AUTH)
    return client.open(path, method=method, data=body, content_type=content_type, headers=headers)


@pytest.mark.parametrize("name", list(HOSTILE))
def test_hostile_bodies_get_their_4xx_on_every_endpoint_and_change_nothing(demo_app: Flask,
                                                                           name: str) -> None:
    client = demo_app.test_client()
    body, wanted = HOSTILE[name]
    before = snapshot(client)
    for method, path in BODY_ENDPOINTS:
        response = send(client, method, path, body)
        status = response.status_code
        if wanted is None:
            # Well-formed enough to parse (or no body at all): validation answers, or an endpoint
            # whose body is optional does its job with nothing asked of it.
            assert status in (200, 201, 202, 400, 401, 415, 422), (path, status)
        else:
            assert status == wanted, (path, status, response.get_data(as_text=True)[:200])
        assert response.headers["Cache-Control"] == "no-store"
        if status >= 400:
            error = response.get_json()
            assert set(error) >= {"error", "message", "fields"}, (path, error)
    assert snapshot(client) == before


def test_a_body_of_exactly_256_kib_is_read(demo_app: Flask) -> None:
    client = demo_app.test_client()
    document = json.dumps(VALID_SHOP).encode()
    body = document[:-1] + b" " * (LIMIT - len(document)) + b"}"
    assert len(body) == LIMIT
    assert send(client, "PUT", f"/admin/v1/shops/{SHOP}", body).status_code == 200


def test_a_declared_content_encoding_is_not_inflated(demo_app: Flask) -> None:
    """A small gzip body declaring Content-Encoding: gzip stays compressed bytes (a 400): nothing
    inflates a bomb past the size limit behind the app's back."""
    client = demo_app.test_client()
    bomb = gzip.compress(json.dumps({**VALID_SHOP, "name": "x" * (10 * 1024 * 1024)}).encode())
    assert len(bomb) < LIMIT
    for method, path in BODY_ENDPOINTS:
        response = send(client, method, path, bomb, extra={"Content-Encoding": "gzip"})
        assert response.status_code in (400, 415), (path, response.status_code)


@pytest.mark.parametrize("content_type", ["text/plain", "application/x-www-form-urlencoded",
                                          "multipart/form-data", "application/jsonx",
                                          "application/json-patch+json", "text/json", ""])
def test_admin_bodies_must_say_application_json(demo_app: Flask, content_type: str) -> None:
    client = demo_app.test_client()
    for method, path in BODY_ENDPOINTS[:4]:
        response = send(client, method, path, json.dumps(VALID_SHOP).encode(), content_type=content_type)
        assert response.status_code == 415, (path, content_type)


def test_a_charset_parameter_does_not_change_how_the_body_is_read(demo_app: Flask) -> None:
    client = demo_app.test_client()
    path = f"/admin/v1/shops/{SHOP}"
    body = json.dumps({**VALID_SHOP, "name": "Caf\u00e9"}, ensure_ascii=False)
    for charset in ("latin-1", "utf-16"):
        response = send(client, "PUT", path, body.encode(charset), f"application/json; charset={charset}")
        assert response.status_code == 400, charset
    response = send(client, "PUT", path, body.encode(), "application/json; charset=utf-8")
    assert response.status_code == 200 and response.get_json()["name"] == "Caf\u00e9"


# -- what parses, and must then meet validation ----------------------------------------------------
ROLLBACK = f"/admin/v1/shops/{SHOP}/widgets/subscription/rollback"
PURGE = f"/admin/v1/shops/{SHOP}/purge"
PREVIEW_LINKS = f"/admin/v1/shops/{SHOP}/widgets/subscription/preview-links"
LOYALTY = f"/admin/v1/shops/{SHOP}/widgets/loyalty"
DIGITS_4000 = b"1" + b"0" * 3999


@pytest.mark.parametrize(("path", "body", "field"), [
    (ROLLBACK, b'{"version": 1e999}', "version"),
    (ROLLBACK, b'{"version": ' + DIGITS_4000 + b"}", "version"),
    (ROLLBACK, b'{"version": 1.0}', "version"),
    (ROLLBACK, b'{"version": true}', "version"),
    (ROLLBACK, b'{"version": -0}', "version"),
    (PURGE, b'{"product_id": 1e999}', "product_id"),
    (PURGE, b'{"product_id": 9223372036854775808}', "product_id"),
    (PURGE, b'{"kind": ["subscription"]}', "kind"),
    (PREVIEW_LINKS, b'{"product_id": ' + DIGITS_4000 + b"}", "product_id"),
    (PREVIEW_LINKS, b'{"draft": "true"}', "draft"),
    (LOYALTY, b'{"settings": {"points_per_unit": 1e999}}', "settings.points_per_unit"),
    (LOYALTY, b'{"settings": {"signup_bonus": 1.5}}', "settings.signup_bonus"),
    (LOYALTY, b'{"settings": {"tiers": [{"name": "a", "min_points": ' + b"9" * 30 + b"}]}}",
     "settings.tiers[0].min_points"),
])
def test_numbers_a_parser_accepts_still_meet_validation(demo_app: Flask, path: str, body: bytes,
                                                        field: str) -> None:
    client = demo_app.test_client()
    before = snapshot(client)
    response = client.open(path, method="PUT" if path == LOYALTY else "POST", data=body,
                           content_type="application/json", headers=AUTH)
    assert response.status_code == 422, response.get_data(as_text=True)
    assert field in response.get_json()["fields"]
    assert snapshot(client) == before


def test_product_amounts_past_what_javascript_holds_exactly_are_422(demo_app: Flask) -> None:
    client = demo_app.test_client()
    product = client.get(f"/admin/v1/shops/{SHOP}/products/{COFFEE}", headers=AUTH).get_json()["product"]
    product["variants"][0]["price"] = "PRICE"
    template = json.dumps(product)
    for price in ("9007199254740992", "1e999", "-1", "10.5", '"1800"', "18e2"):
        response = client.put(f"/admin/v1/shops/{SHOP}/products/{COFFEE}", headers=AUTH,
                              data=template.replace('"PRICE"', price), content_type="application/json")
        assert response.status_code == 422, price
        assert "variants[0].price" in response.get_json()["fields"]


def test_duplicate_keys_take_the_last_value_consistently(demo_app: Flask) -> None:
    """What Python's parser does, pinned: the last occurrence wins, for the top level and nested keys
    alike, so what is validated is what is stored."""
    client = demo_app.test_client()
    body = json.dumps(VALID_SHOP)[:-1] + ', "name": "Last", "name": "Really last"}'
    response = send(client, "PUT", f"/admin/v1/shops/{SHOP}", body.encode())
    assert response.status_code == 200 and response.get_json()["name"] == "Really last"
    settings = (b'{"settings": {"labels": {"onetime": "<b>x</b>"}}, '
                b'"settings": {"labels": {"onetime": "Once"}}}')
    response = send(client, "PUT", f"/admin/v1/shops/{SHOP}/widgets/subscription", settings)
    assert response.status_code == 200 and response.get_json()["settings"]["labels"]["onetime"] == "Once"
    refused = (b'{"settings": {"labels": {"onetime": "Once"}}, '
               b'"settings": {"labels": {"onetime": "{bad}"}}}')
    assert send(client, "PUT", f"/admin/v1/shops/{SHOP}/widgets/subscription", refused).status_code == 422


@pytest.mark.parametrize("payload", [
    b'{"id": NaN}', b'{"id": Infinity}', b'{"id": 1e999}', b'{"id": 7001000000001.0}',
    b'{"id": "7001000000001"}',
    b'{"id": 1' + b"0" * 5000 + b"}", b'{"id": 7001000000001, "variants": [{"id": NaN, "price": "1.00"}]}',
])
def test_webhook_payloads_with_unusable_numbers_are_400_and_change_nothing(demo_app: Flask,
                                                                           payload: bytes) -> None:
    client = demo_app.test_client()
    before = snapshot(client)
    response = send(client, "POST", "/webhooks/shopify", payload)
    assert response.status_code == 400, response.get_data(as_text=True)
    assert snapshot(client) == before
