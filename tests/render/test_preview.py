"""The preview page: preview_context from plain data, and the template's structure (nothing inline)."""

from __future__ import annotations

from storefront.render.preview import preview_context, render_preview_page
from tests.render.fixture_data import EUR, PRODUCTS, USD, product
from tests.render.html_tree import parse

JS = "https://widgets.example.com/v1/shops/demo-coffee.myshopify.com/widgets/subscription.js?product=7001000000001"
CSS = "https://widgets.example.com/v1/shops/demo-coffee.myshopify.com/widgets/subscription.css?v=3"
CATALOG = [PRODUCTS["coffee-three-plans"], PRODUCTS["mug-no-plans"]]


def test_context_for_a_product_page():
    context = preview_context(USD, CATALOG, PRODUCTS["coffee-three-plans"], "subscription", "fr", JS)
    assert context["product"]["title"] == "Single-Origin Coffee Beans"
    assert [(v["title"], v["price_formatted"], v["selected"], v["available"])
            for v in context["product"]["variants"]] == [
        ("250 g", "$18.00", True, True), ("1 kg", "$54.00", False, True), ("5 kg", "$219.99", False, False)]
    assert context["product"]["price_formatted"] == "$18.00"
    assert context["locales"] == [{"value": "en", "selected": False}, {"value": "fr", "selected": True}]
    assert [p["selected"] for p in context["products"]] == [True, False]
    assert context["placeholder"] == {"kind": "subscription", "product_id": 7001000000001}
    assert context["widget_js_url"] == JS and context["widget_css_url"] is None
    assert context["stylesheet_url"] == "/static/preview.css"
    assert context["script_url"] == "/static/preview.js"


def test_context_uses_the_shop_money_format_and_first_available_variant():
    item = product("coffee-three-plans")
    item["variants"][0]["available"] = False
    context = preview_context(EUR, [item], item, "subscription", "de", JS)
    assert context["product"]["price_formatted"] == "54,00 €"
    assert [v["selected"] for v in context["product"]["variants"]] == [False, True, False]


def page(context):
    html = render_preview_page(context)
    assert html.startswith("<!doctype html>")
    return parse(html)


def test_product_page_structure():
    context = preview_context(USD, CATALOG, PRODUCTS["coffee-three-plans"], "subscription", "en", JS,
                              widget_css_url=CSS, hidden_fields={"token": "abc\"<x>"})
    document = page(context)
    assert document.find("html").attrs["lang"] == "en"
    assert document.find("h1").clean_text() == "Single-Origin Coffee Beans"
    form = document.find("form", action="/cart/add")
    assert form.attrs["method"] == "post" and form.attrs["data-product-id"] == "7001000000001"
    picker = form.find("select", name="id")
    assert [o.attrs["value"] for o in picker.find_all("option")] == [
        "42001000000001", "42001000000002", "42001000000003"]
    assert [o.attrs.get("data-price") for o in picker.find_all("option")] == ["$18.00", "$54.00", "$219.99"]
    assert form.find("div", data_storefront_widget="subscription").attrs["data-product-id"] == "7001000000001"
    assert form.find("button", type="submit").clean_text() == "Add to cart"
    assert document.find("p", data_pv_price=True).clean_text() == "$18.00"

    scripts = document.find_all("script")
    assert [(s.attrs["src"], "defer" in s.attrs, s.text()) for s in scripts] == [
        ("/static/preview.js", True, ""), (JS, True, "")]
    links = [link.attrs["href"] for link in document.find_all("link", rel="stylesheet")]
    assert links == ["/static/preview.css", CSS]

    selector = document.find("form", class_="pv-select")
    assert selector.attrs["method"] == "get"
    hidden = selector.find("input", type="hidden")
    assert hidden.attrs == {"type": "hidden", "name": "token", "value": 'abc"<x>'}
    products = selector.find("select", name="product").find_all("option")
    assert [o.attrs["value"] for o in products] == ["7001000000001", "7001000000003"]
    locales = selector.find("select", name="locale").find_all("option")
    assert [o.attrs["value"] for o in locales] == ["en", "fr"]

    ids = [e.attrs["id"] for e in document.iter() if "id" in e.attrs]
    assert len(ids) == len(set(ids))
    for label in document.find_all("label"):
        assert label.attrs["for"] in ids
    for element in document.iter():
        assert element.tag != "style" and "style" not in element.attrs
        assert not [name for name in element.attrs if name.startswith("on")]


def test_single_default_variant_uses_a_hidden_id_and_bundle_placeholder_sits_outside_the_form():
    item = PRODUCTS["mug-no-plans"]
    document = page(preview_context(USD, CATALOG, item, "bundle", "en", JS))
    form = document.find("form", action="/cart/add")
    assert form.find("input", name="id").attrs == {"type": "hidden", "name": "id", "value": "42003000000001"}
    spot = document.find("div", data_storefront_widget="bundle")
    assert form not in list(spot.ancestors())


def test_loyalty_page_without_a_product():
    js = JS.replace("subscription.js?product=7001000000001", "loyalty.js")
    document = page(preview_context(USD, CATALOG, None, "loyalty", "en", js))
    assert document.find_all("form", action="/cart/add") == []
    spot = document.find("div", data_storefront_widget="loyalty")
    assert spot.attrs == {"data-storefront-widget": "loyalty"}
    assert document.find("form", class_="pv-select").find_all("select", name="product") == []


def test_shop_without_products():
    document = page(preview_context(USD, [], None, "subscription", "en", JS))
    assert document.find("p", class_="pv-empty").clean_text() == "This shop has no products yet."
    assert document.find_all("div", data_storefront_widget=True) == []


def test_sold_out_product_disables_the_add_button():
    item = product("coffee-three-plans")
    for variant in item["variants"]:
        variant["available"] = False
    document = page(preview_context(USD, [item], item, "subscription", "en", JS))
    button = document.find("button", data_pv_add=True)
    assert "disabled" in button.attrs and button.clean_text() == "Sold out"
