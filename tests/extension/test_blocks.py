"""What the app embed and the product-page app block put on a Shopify product page."""

from __future__ import annotations

from typing import Any
from urllib.parse import parse_qs, quote, urlencode, urlsplit

import pytest

from tests.extension.shopify_liquid import ASSET_BASE, elements, render_block

KINDS = ("subscription", "bundle", "loyalty")
HOST = "https://widgets.example.com"
SHOP = "demo-store.myshopify.com"
PRODUCT_ID = 7982301
HOSTILE = '"><script>alert(1)</script>'
# What Shopify prints for block.shopify_attributes in the theme editor (empty on the live storefront).
EDITOR_ATTRIBUTES = (
    'data-shopify-editor-block="{&quot;id&quot;:&quot;AbXk9&quot;,&quot;type&quot;:&quot;app&quot;}"'
)


def page(settings: dict[str, Any], *, locale: str = "en", page_type: str = "product") -> dict[str, Any]:
    """The Liquid globals of a storefront page, with the block's settings."""
    context: dict[str, Any] = {
        "shop": {"permanent_domain": SHOP, "domain": "www.demo-store.com", "name": "Demo store"},
        "request": {"page_type": page_type, "locale": {"iso_code": locale, "primary": locale == "en"},
                    "design_mode": False},
        "block": {"id": "AbXk9", "settings": settings, "shopify_attributes": EDITOR_ATTRIBUTES},
    }
    if page_type == "product":
        context["product"] = {"id": PRODUCT_ID, "title": "Morning blend", "handle": "morning-blend"}
    return context


def embed_settings(**overrides: Any) -> dict[str, Any]:
    # The schema's defaults, as a freshly enabled embed has them.
    return {"widget_host": HOST, "subscription": True, "bundle": False, "loyalty": False, **overrides}


def block_settings(**overrides: Any) -> dict[str, Any]:
    return {"kind": "subscription", "min_height": 160, "widget_host": HOST, **overrides}


def scripts(html: str) -> list[dict[str, str | None]]:
    return [attrs for tag, attrs in elements(html) if tag == "script"]


def placeholders(html: str) -> list[dict[str, str | None]]:
    return [attrs for tag, attrs in elements(html) if tag == "div"]


def assert_deferred(script: dict[str, str | None]) -> None:
    assert "defer" in script, script
    assert "async" not in script, script


def widget_url(kind: str, *, host: str = HOST, shop: str = SHOP, product: object = PRODUCT_ID,
               locale: str = "en") -> str:
    """The script URL the contract describes, built independently of the Liquid."""
    query = urlencode({"product": product, "locale": locale})
    return f"{host}/v1/shops/{quote(shop, safe='')}/widgets/{kind}.js?{query}"


# --- app embed --------------------------------------------------------------------------------------

def test_embed_with_its_defaults_loads_the_subscription_widget_deferred():
    html = render_block("widgets-embed", **page(embed_settings(), locale="fr-CA"))

    [script] = scripts(html)
    assert script["src"] == (
        "https://widgets.example.com/v1/shops/demo-store.myshopify.com/widgets/subscription.js"
        "?product=7982301&locale=fr-CA"
    )
    assert_deferred(script)
    # The & between parameters is escaped in the attribute, as HTML wants it.
    assert "?product=7982301&amp;locale=fr-CA" in html


@pytest.mark.parametrize("kind", KINDS)
def test_embed_loads_only_the_kinds_turned_on(kind):
    settings = embed_settings(**{k: k == kind for k in KINDS})

    [script] = scripts(render_block("widgets-embed", **page(settings)))

    assert script["src"] == widget_url(kind)
    assert_deferred(script)


def test_embed_with_every_kind_on_loads_each_once():
    html = render_block("widgets-embed", **page(embed_settings(subscription=True, bundle=True, loyalty=True)))

    assert [s["src"] for s in scripts(html)] == [widget_url(kind) for kind in KINDS]
    assert not placeholders(html), "the embed leaves placement to the app block"


def test_embed_with_every_kind_off_renders_nothing():
    html = render_block("widgets-embed", **page(embed_settings(subscription=False)))

    assert html.strip() == ""


@pytest.mark.parametrize("page_type", ["collection", "index", "cart"])
def test_embed_renders_nothing_off_product_pages(page_type):
    settings = embed_settings(subscription=True, bundle=True, loyalty=True)

    assert render_block("widgets-embed", **page(settings, page_type=page_type)).strip() == ""


@pytest.mark.parametrize(
    ("typed", "base"),
    [
        ("https://widgets.example.com/", "https://widgets.example.com"),
        ("  https://widgets.example.com  ", "https://widgets.example.com"),
        ("https://cdn.example.net/storefront/", "https://cdn.example.net/storefront"),
        ("HTTPS://widgets.example.com", "HTTPS://widgets.example.com"),
        ("http://127.0.0.1:8000", "http://127.0.0.1:8000"),
    ],
)
def test_embed_tidies_the_widget_host_a_merchant_typed(typed, base):
    [script] = scripts(render_block("widgets-embed", **page(embed_settings(widget_host=typed))))

    assert script["src"] == widget_url("subscription", host=base)


@pytest.mark.parametrize(
    "typed", ["", "   ", "widgets.example.com", "//widgets.example.com", "javascript:alert(1)//", "data:,x"]
)
def test_embed_loads_nothing_from_a_widget_host_that_is_not_an_http_url(typed):
    html = render_block("widgets-embed", **page(embed_settings(widget_host=typed)))

    assert html.strip() == ""


def test_embed_escapes_hostile_values_in_the_script_url():
    host = "https://widgets.example.com/x" + HOSTILE
    shop = "evil" + HOSTILE + ".myshopify.com"
    locale = 'fr"&product=1&x=<script>'
    context = page(embed_settings(widget_host=host, bundle=True), locale=locale)
    context["shop"]["permanent_domain"] = shop
    context["product"]["id"] = "42" + HOSTILE
    context["product"]["title"] = HOSTILE

    html = render_block("widgets-embed", **context)

    assert "<script>alert" not in html
    found = scripts(html)
    assert [s["src"] for s in found] == [
        widget_url(kind, host=host, shop=shop, product="42" + HOSTILE, locale=locale)
        for kind in ("subscription", "bundle")
    ]
    for script in found:
        assert_deferred(script)
        # Encoded parameters stay parameters: nothing a value carries adds or repeats one.
        assert parse_qs(urlsplit(script["src"]).query) == {"product": ["42" + HOSTILE], "locale": [locale]}


# --- product-page app block -------------------------------------------------------------------------

@pytest.mark.parametrize("kind", KINDS)
def test_block_renders_the_placeholder_then_the_script_for_its_kind(kind):
    html = render_block("product-widget", **page(block_settings(kind=kind), locale="de"))

    tags = elements(html)
    assert [tag for tag, _ in tags] == ["link", "div", "script"]
    [(_, stylesheet), (_, placeholder), (_, script)] = tags
    assert stylesheet == {"href": ASSET_BASE + "storefront-widgets.css", "rel": "stylesheet",
                          "type": "text/css", "media": "all"}
    assert placeholder["data-storefront-widget"] == kind
    assert placeholder["data-product-id"] == str(PRODUCT_ID)
    assert placeholder["class"].split() == ["storefront-widget", "storefront-widget--h160"]
    assert placeholder["data-shopify-editor-block"] == '{"id":"AbXk9","type":"app"}'
    assert script["src"] == widget_url(kind, locale="de")
    assert_deferred(script)


@pytest.mark.parametrize(
    ("setting", "height_class"),
    [
        (0, "storefront-widget--h0"),
        (40, "storefront-widget--h40"),
        (480, "storefront-widget--h480"),
        (170, "storefront-widget--h160"),  # off the range's steps: snapped down to one
        (1000, "storefront-widget--h480"),
        (-40, "storefront-widget--h0"),
        (HOSTILE, "storefront-widget--h0"),
    ],
)
def test_block_reserves_height_with_a_fixed_class_never_an_inline_style(setting, height_class):
    html = render_block("product-widget", **page(block_settings(min_height=setting)))

    [placeholder] = placeholders(html)
    assert placeholder["class"].split() == ["storefront-widget", height_class]
    assert all("style" not in attrs for _, attrs in elements(html))
    assert "<script>alert" not in html


def test_block_escapes_hostile_values():
    locale = 'en"><script>alert(1)</script>'
    context = page(block_settings(widget_host=HOST + "/" + HOSTILE), locale=locale)
    context["product"]["id"] = "7" + HOSTILE
    context["product"]["title"] = HOSTILE

    html = render_block("product-widget", **context)

    assert "<script>alert" not in html
    [placeholder] = placeholders(html)
    assert placeholder["data-product-id"] == "7" + HOSTILE
    [script] = scripts(html)
    assert script["src"] == widget_url("subscription", host=HOST + "/" + HOSTILE, product="7" + HOSTILE,
                                       locale=locale)
    assert_deferred(script)


@pytest.mark.parametrize("kind", ["", "reviews", HOSTILE])
def test_block_renders_nothing_for_an_unknown_kind(kind):
    assert render_block("product-widget", **page(block_settings(kind=kind))).strip() == ""


def test_block_without_a_product_renders_nothing():
    context = page(block_settings())
    del context["product"]

    assert render_block("product-widget", **context).strip() == ""


def test_block_keeps_its_placeholder_when_the_widget_host_is_unusable():
    # The layout stays as the merchant designed it; only the script is withheld.
    html = render_block("product-widget", **page(block_settings(widget_host="javascript:alert(1)")))

    assert [tag for tag, _ in elements(html)] == ["link", "div"]

