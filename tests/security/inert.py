"""Checks that planted merchant text comes back stored as typed and out of every render as inert text."""

from __future__ import annotations

import json
from urllib.parse import urlsplit

from flask.testing import FlaskClient

from tests.conftest import BASE_URL
from tests.security.hostile_shop import (
    AUTH,
    BUNDLE_ID,
    FIELDS,
    KINDS,
    SHOP,
    SUBSCRIPTION_ID,
    Field,
    Planted,
    stored,
    values_at,
)
from tests.security.markup_scan import json_strings, scan_html, script_parts

PRODUCT_OF = {"subscription": SUBSCRIPTION_ID, "bundle": BUNDLE_ID, "loyalty": None}


def widget_path(kind: str, fmt: str, locale: str = "en") -> str:
    product = PRODUCT_OF[kind]
    query = f"locale={locale}" + (f"&product={product}" if product else "")
    return f"/v1/shops/{SHOP}/widgets/{kind}.{fmt}?{query}"


def assert_shown(fields: list[Field], strings: list[str], planted: Planted, where: str) -> None:
    """Each field's planted value is one intact piece of text (or attribute value) in ``strings``.

    Intact is the point: a payload that had opened an element or ended an attribute would be
    split across several strings and not found.
    """
    missing = []
    for field in fields:
        value = planted.accepted[field]
        wanted = value if field.exact else field.marker
        if not any(wanted in text for text in strings):
            missing.append(field.key)
    assert not missing, f"not shown intact in {where}: {missing}"


def preview_path(client: FlaskClient) -> str:
    response = client.post(f"/admin/v1/shops/{SHOP}/widgets/subscription/preview-links", headers=AUTH,
                           json={"product_id": SUBSCRIPTION_ID, "locale": "en"})
    assert response.status_code == 201, response.get_data(as_text=True)
    url = urlsplit(response.get_json()["url"])
    return f"{url.path}?{url.query}"


def assert_stored_exactly(client: FlaskClient, planted: Planted) -> None:
    """The admin API reads back every accepted value exactly as it was sent."""
    documents = {}
    for field, value in planted.accepted.items():
        if field.target not in documents:
            documents[field.target] = stored(client, field.target)
        assert set(values_at(documents[field.target], field.path)) == {value}, field.key


def assert_renders_inert(client: FlaskClient, planted: Planted) -> None:
    """Every format of every kind, in both locales, and the preview page."""
    for kind in KINDS:
        for locale in ("en", "fr"):
            # .json: the model, every string intact; the body has <, >, &, U+2028/9 escaped.
            response = client.get(widget_path(kind, "json", locale))
            assert response.status_code == 200
            raw = response.get_data(as_text=True)
            assert not set(raw) & set("<>&\u2028\u2029"), f"{kind}.json carries raw <, >, & or U+2028/9"
            strings = json_strings(json.loads(raw))
            assert_shown(planted.shown("json", kind, locale), strings, planted, f"{kind}.json ({locale})")

            # .html: no element, handler or URL scheme came from a merchant; the texts are intact.
            response = client.get(widget_path(kind, "html", locale))
            assert response.status_code == 200
            scan = scan_html(response.get_data(as_text=True))
            assert scan.problems == [], f"{kind}.html: {scan.problems}"
            assert_shown(planted.shown("widget", kind, locale), scan.strings, planted, f"{kind}.html")

            # .js: merchant text only inside the JSON data literals; their HTML is as clean as .html.
            response = client.get(widget_path(kind, "js", locale))
            assert response.status_code == 200
            script = response.get_data(as_text=True)
            assert "</script" not in script.lower() and "<!--" not in script
            assert "\u2028" not in script and "\u2029" not in script
            literals, code = script_parts(script)
            assert not [field.key for field in FIELDS if field.marker in code], "merchant text in the code"
            scan = scan_html(literals["H"])
            assert scan.problems == [], f"{kind}.js markup: {scan.problems}"
            assert_shown(planted.shown("widget", kind, locale), scan.strings, planted, f"{kind}.js")

        # .css: nothing a merchant typed reaches a stylesheet except validated colours.
        css = client.get(f"/v1/shops/{SHOP}/widgets/{kind}.css").get_data(as_text=True)
        assert not [field.key for field in FIELDS if field.marker in css]
        assert "</style" not in css.lower() and "expression(" not in css

    # The preview page: shop name, product and variant titles, prices.
    preview = client.get(preview_path(client))
    assert preview.status_code == 200
    scripts = ("/static/preview.js", f"{BASE_URL}/v1/shops/{SHOP}/widgets/subscription.js?"
               f"product={SUBSCRIPTION_ID}&locale=en")
    scan = scan_html(preview.get_data(as_text=True), scripts, page=True)
    assert scan.problems == [], scan.problems
    assert_shown(planted.shown("preview"), scan.strings, planted, "the preview page")
