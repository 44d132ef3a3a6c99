"""The subscription widget's HTML: structure, labels and ids, prices per plan, each template/product/shop."""

from __future__ import annotations

import itertools
import json
import re
from typing import Any

import pytest

from storefront.render import build_model
from tests.render.fixture_data import EUR, JPY, PRODUCTS, SHOPS, USD, WITH_PLANS, product, render, settings
from tests.render.html_tree import Element, parse

TEMPLATES = ["radio_group", "button_group", "checkbox"]


def tree(item: dict[str, Any], shop: dict[str, Any] = USD, locale: str | None = None,
         **changes: Any) -> Element:
    return parse(render("subscription", "html", product=item, shop=shop, locale=locale,
                        widget_settings=settings("subscription", **changes)))


def assert_accessible(document: Element) -> None:
    """fieldset + legend, unique ids, every label[for] a real id, every control labelled, nothing inline."""
    fieldsets = document.find_all("fieldset")
    assert len(fieldsets) == 1
    first = next(child for child in fieldsets[0].children if isinstance(child, Element))
    assert first.tag == "legend" and first.clean_text()
    ids = [element.attrs["id"] for element in document.iter() if "id" in element.attrs]
    assert len(ids) == len(set(ids))
    for label in document.find_all("label"):
        assert label.attrs.get("for") in ids
    labelled = {label.attrs["for"] for label in document.find_all("label")}
    for control in document.find_all("input") + document.find_all("select"):
        assert control.attrs["id"] in labelled
    for element in document.iter():
        assert element.tag not in ("script", "style")
        assert "style" not in element.attrs
        assert not [name for name in element.attrs if name.startswith("on")]


@pytest.mark.parametrize(("name", "template", "shop"),
                         list(itertools.product(WITH_PLANS, TEMPLATES, [s["shop"] for s in SHOPS])))
def test_every_product_template_and_shop_renders_accessible_markup(name, template, shop):
    shop_record = next(s for s in SHOPS if s["shop"] == shop)
    item = PRODUCTS[name]
    document = tree(item, shop_record, template=template)
    assert_accessible(document)
    model = build_model("subscription", shop=shop_record, product=item, locale=shop_record["default_locale"],
                        settings=settings("subscription", template=template))
    variant = next(v for v in model["variants"] if v["id"] == model["initial_variant_id"])
    subscribe = document.find("input", data_sfw="subscribe")
    expected_type = "checkbox" if template == "checkbox" and not item["requires_selling_plan"] else "radio"
    assert subscribe.attrs["type"] == expected_type
    # The subscribe option's accessible name (its label) carries the first plan's price.
    label = document.find("label", **{"for": subscribe.attrs["id"]})
    assert variant["selling_plans"][0]["price_formatted"] in label.clean_text()
    assert variant["selling_plans"][0]["subscribe_label"] in label.clean_text()
    # Every plan of the variant is an option showing its own price.
    options = {int(o.attrs["value"]): o.clean_text() for o in document.find("select").find_all("option")}
    for offer in variant["selling_plans"]:
        assert offer["price_formatted"] in options[offer["selling_plan_id"]]
    onetime = document.find_all("input", value="onetime")
    if template == "checkbox" or item["requires_selling_plan"]:
        assert onetime == []
    else:
        assert onetime[0].attrs["type"] == "radio"
        assert onetime[0].attrs["name"] == subscribe.attrs["name"]
        one_label = document.find("label", **{"for": onetime[0].attrs["id"]})
        assert variant["price_formatted"] in one_label.clean_text()


def test_coffee_plans_each_show_their_own_price_in_the_select():
    options = tree(PRODUCTS["coffee-three-plans"]).find("select").find_all("option")
    assert [(o.attrs["value"], o.clean_text(), "selected" in o.attrs) for o in options] == [
        ("690001001", "2 weeks \u2013 $16.20", True),
        ("690001002", "1 month \u2013 $15.30", False),
        ("690001003", "2 months \u2013 $14.40", False),
    ]


def test_default_markup_selects_one_time_and_hides_the_frequency():
    document = tree(PRODUCTS["coffee-three-plans"])
    assert "checked" in document.find("input", value="onetime").attrs
    assert "checked" not in document.find("input", data_sfw="subscribe").attrs
    assert "hidden" in document.find("div", data_sfw="frequency").attrs
    assert document.find("div", data_sfw_kind="subscription").attrs.get("hidden") is None


def test_default_selection_subscription_shows_the_frequency_for_several_plans():
    document = tree(PRODUCTS["coffee-three-plans"], default_selection="subscription")
    assert "checked" in document.find("input", data_sfw="subscribe").attrs
    assert "checked" not in document.find("input", value="onetime").attrs
    assert "hidden" not in document.find("div", data_sfw="frequency").attrs


def test_a_single_plan_never_shows_the_frequency():
    document = tree(PRODUCTS["tea-fixed-price-plan"], default_selection="subscription")
    assert "hidden" in document.find("div", data_sfw="frequency").attrs


@pytest.mark.parametrize(("first_option", "order"), [("onetime", ["onetime", "subscription"]),
                                                      ("subscription", ["subscription", "onetime"])])
def test_first_option_orders_the_choices(first_option, order):
    document = tree(PRODUCTS["coffee-three-plans"], first_option=first_option)
    assert [i.attrs["value"] for i in document.find("div", class_="sfw-opts").find_all("input")] == order


def test_requires_selling_plan_has_no_one_time_option_and_preselects_the_first_plan():
    document = tree(PRODUCTS["razor-subscription-only"], template="checkbox")
    assert document.find_all("input", value="onetime") == []
    subscribe = document.find("input", data_sfw="subscribe")
    assert subscribe.attrs["type"] == "radio" and "checked" in subscribe.attrs
    assert "selected" in document.find("option", value="690002001").attrs


def test_sold_out_initial_variant_disables_every_input():
    item = product("coffee-three-plans")
    for variant in item["variants"]:
        variant["available"] = False
    document = tree(item)
    controls = document.find_all("input") + document.find_all("select")
    assert controls and all("disabled" in control.attrs for control in controls)
    # Still priced, from the first variant (what a theme shows when nothing is available).
    assert document.find("span", data_sfw="onetime-price").clean_text() == "$18.00"


def test_initial_variant_is_the_first_available_one():
    item = product("coffee-three-plans")
    item["variants"][0]["available"] = False
    document = tree(item)
    assert document.find("span", data_sfw="onetime-price").clean_text() == "$54.00"
    assert "disabled" not in document.find("input", value="onetime").attrs


def test_initial_variant_without_plans_renders_hidden():
    item = product("coffee-three-plans")
    item["variants"][0]["selling_plan_allocations"] = []
    document = tree(item)
    assert "hidden" in document.find("div", data_sfw_kind="subscription").attrs
    # The variant that has no allocation for a plan shows it as not offered.
    item = product("coffee-three-plans")
    del item["variants"][0]["selling_plan_allocations"][2]
    option = tree(item).find("option", value="690001003")
    assert "hidden" in option.attrs and "disabled" in option.attrs


def test_first_order_offer_markup_shows_both_prices():
    document = tree(PRODUCTS["vitamins-first-order-offer"])
    label = document.find("label", **{"for": document.find("input", data_sfw="subscribe").attrs["id"]})
    assert label.clean_text() == "Subscribe & save 50% on your first order, then 10% $15.00 then $27.00"


def test_details_disclosure_and_learn_more_link():
    document = tree(PRODUCTS["coffee-three-plans"], learn_more_url="https://example.com/subs?a=1&b=2",
                    labels={"details_body": "First paragraph.\n\nSecond\nparagraph."})
    details = document.find("details")
    assert details.find("summary").clean_text() == "How subscriptions work"
    assert [p.clean_text() for p in details.find_all("p")][:2] == ["First paragraph.", "Second paragraph."]
    link = details.find("a")
    assert link.attrs["href"] == "https://example.com/subs?a=1&b=2"
    assert link.attrs["rel"] == "noopener" and link.clean_text() == "Learn more"


@pytest.mark.parametrize("url", ["http://example.com/subs", "javascript:alert(1)", "//example.com/x", "https://",
                                 "https://exa mple.com", 'https://example.com/"onclick=x', None, 42])
def test_learn_more_link_is_https_only(url):
    assert tree(PRODUCTS["coffee-three-plans"], learn_more_url=url).find_all("a") == []


def test_show_details_off_removes_the_disclosure():
    assert tree(PRODUCTS["coffee-three-plans"], show_details=False).find_all("details") == []


def test_ids_are_prefixed_per_kind_and_product():
    coffee = tree(PRODUCTS["coffee-three-plans"])
    razor = tree(PRODUCTS["razor-subscription-only"])
    coffee_ids = {e.attrs["id"] for e in coffee.iter() if "id" in e.attrs}
    razor_ids = {e.attrs["id"] for e in razor.iter() if "id" in e.attrs}
    assert coffee_ids and razor_ids and not coffee_ids & razor_ids
    assert all(i.startswith("sfw-s7001000000001-") for i in coffee_ids)


def test_the_html_fragment_links_the_stylesheet_and_the_js_embeds_the_same_markup():
    html = render("subscription", "html", product=PRODUCTS["coffee-three-plans"])
    link = parse(html).find("link")
    assert link.attrs == {"rel": "stylesheet",
                          "href": "https://widgets.example.com/v1/shops/demo-coffee.myshopify.com/widgets/"
                                  "subscription.css?v=1"}
    script = render("subscription", "js", product=PRODUCTS["coffee-three-plans"])
    embedded = json.loads(re.search(r',H=("(?:[^"\\]|\\.)*")', script).group(1))
    assert html.split("\n", 1)[1].rstrip("\n") == embedded


@pytest.mark.parametrize(("shop", "locale", "onetime", "price"), [
    (USD, "en", "One-time purchase", "$18.00"),
    (USD, "fr", "Achat unique", "$18.00"),
    (EUR, "de", "Einmalkauf", "18,00 €"),
    (EUR, "en", "Einmalkauf", "18,00 €"),  # no English translation: the default locale's comes next
    (JPY, "ja", "通常購入", "¥18"),
])
def test_each_demo_shop_and_locale(shop, locale, onetime, price):
    translations = {"fr": {"onetime": "Achat unique"}, "de": {"onetime": "Einmalkauf"},
                    "ja": {"onetime": "通常購入"}}
    document = tree(PRODUCTS["coffee-three-plans"], shop, locale, translations=translations)
    assert document.find("div", data_sfw_kind="subscription").attrs["lang"] == locale
    label = document.find("label", **{"for": document.find("input", value="onetime").attrs["id"]})
    assert label.clean_text() == f"{onetime} {price}"
