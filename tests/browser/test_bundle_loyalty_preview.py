"""The bundle builder, the loyalty banner and the preview page in headless Chromium under a strict CSP."""

from __future__ import annotations

import copy
import re
from collections.abc import Iterator
from typing import Any

import pytest

from storefront.render import stylesheet_url
from storefront.render.preview import preview_context, render_preview_page
from storefront.widget_settings import default_settings
from tests.browser.site import (
    RenderedWidgets,
    WidgetSite,
    load_product,
    load_shops,
    page,
    script_tag,
    stylesheet_tag,
)

pytestmark = pytest.mark.browser

SHOPS = load_shops()
SHOP = SHOPS[0]
BOX = load_product("snack-box-bundle")
COFFEE = load_product("coffee-three-plans")
BUNDLE = '[data-storefront-widget="bundle"] > .sfw-bundle'
LOYALTY = '[data-storefront-widget="loyalty"] > .sfw-loyalty'
LOYALTY_SETTINGS = dict(
    default_settings("loyalty"), points_per_unit=2, signup_bonus=100,
    join_url="https://demo-coffee.example.com/account/register",
    tiers=[{"name": "Bean", "min_points": 0, "perks": ["Birthday treat"]},
           {"name": "Roast", "min_points": 500, "perks": ["Free shipping", "Early access"]}])


@pytest.fixture
def site() -> Iterator[WidgetSite]:
    source = RenderedWidgets(SHOPS, [BOX, COFFEE], {"loyalty": LOYALTY_SETTINGS})
    with WidgetSite(source) as started:
        yield started


def bundle_page(site: WidgetSite) -> str:
    js = site.widget_url("bundle", "js", SHOP["shop"], product=BOX["id"])
    body = (f'<h1>{BOX["title"]}</h1>\n'
            f'<div data-storefront-widget="bundle" data-product-id="{BOX["id"]}"></div>\n<p>Below.</p>')
    return site.add_page("/box", page(BOX["title"], body, head=script_tag(js)))


def press(watched: Any, item: str, step: str, times: int = 1) -> None:
    for _ in range(times):
        # force: aria-disabled buttons stay clickable for real users; the widget must refuse them itself.
        watched.page.click(f'{BUNDLE} [data-sfw-item="{item}"][data-sfw-step="{step}"]', force=True)


def status(watched: Any) -> str:
    return watched.page.inner_text(f'{BUNDLE} [data-sfw="status"]')


def test_bundle_builder_respects_limits_and_posts_the_box(site, watched):
    watched.goto(bundle_page(site))
    watched.page.wait_for_selector(BUNDLE)
    add = f'{BUNDLE} [data-sfw="add"]'
    assert status(watched) == "Add 6 more to continue"
    assert watched.page.get_attribute(add, "aria-disabled") == "true"

    press(watched, "0:0", "1", 3)   # 3 crisps
    press(watched, "0:1", "1", 1)   # 1 almonds: savory is at its max of 4
    assert watched.page.get_attribute(f'{BUNDLE} [data-sfw-item="0:0"][data-sfw-step="1"]',
                                      "aria-disabled") == "true"
    press(watched, "0:0", "1")      # refused: still 3
    assert watched.page.inner_text(f'{BUNDLE} [data-sfw-count="0:0"]') == "3"
    assert status(watched) == "Add 2 more to continue"

    press(watched, "1:0", "1", 2)   # 2 chocolates: the box is full
    assert status(watched) == "Your box is full"
    assert watched.page.get_attribute(f'{BUNDLE} [data-sfw-item="1:1"][data-sfw-step="1"]',
                                      "aria-disabled") == "true"
    press(watched, "1:1", "1")      # refused: the box holds 6
    assert watched.page.inner_text(f'{BUNDLE} [data-sfw-count="1:1"]') == "0"
    assert watched.page.get_attribute(add, "aria-disabled") == "false"

    # Keyboard: the add button is reachable and operable with Enter.
    watched.page.focus(add)
    watched.page.keyboard.press("Enter")
    posted = site.wait_for_cart_posts(1)
    assert len(posted) == 1 and posted[0]["path"] == "/cart/add.js"
    assert posted[0]["content_type"] == "application/json"
    items = posted[0]["json"]["items"]
    assert [(item["id"], item["quantity"]) for item in items] == [
        (42011000000001, 3), (42011000000002, 1), (42011000000003, 2)]
    bundle_ids = {item["properties"]["_bundle_id"] for item in items}
    assert len(bundle_ids) == 1 and re.fullmatch(r"[0-9a-f]{16}", bundle_ids.pop())
    assert {item["properties"]["_bundle"] for item in items} == {BOX["title"]}
    watched.page.wait_for_function(
        "() => document.querySelector('[data-sfw=\"status\"]').textContent === 'Added to cart'")

    # A second box gets a different bundle id.
    watched.page.click(add)
    second = site.wait_for_cart_posts(2)[1]["json"]["items"]
    assert second[0]["properties"]["_bundle_id"] != items[0]["properties"]["_bundle_id"]
    watched.assert_clean()


def test_bundle_below_a_collection_minimum_cannot_be_added(watched):
    box = copy.deepcopy(BOX)
    box["bundle"]["collections"][1]["max"] = 6  # now six sweets alone would fill the box
    with WidgetSite(RenderedWidgets(SHOPS, [box])) as site:
        watched.goto(bundle_page(site))
        watched.page.wait_for_selector(BUNDLE)
        press(watched, "0:0", "1", 2)
        press(watched, "1:0", "1", 4)
        assert status(watched) == "Your box is full"
        # Trading a savory item for a sweet one fills the box but breaks Savory's minimum of 2.
        press(watched, "0:0", "-1")
        press(watched, "1:1", "1")
        assert status(watched) == "Savory: Choose 2-4"
        assert watched.page.get_attribute(f'{BUNDLE} [data-sfw="add"]', "aria-disabled") == "true"
        watched.page.click(f'{BUNDLE} [data-sfw="add"]', force=True)
        watched.page.wait_for_timeout(100)
        assert site.cart_posts == []
        press(watched, "1:1", "-1")
        press(watched, "0:1", "1")
        assert status(watched) == "Your box is full"
        assert watched.page.get_attribute(f'{BUNDLE} [data-sfw="add"]', "aria-disabled") == "false"
    sizes = watched.page.eval_on_selector_all(
        f"{BUNDLE} button",
        "els => els.map(e => { const r = e.getBoundingClientRect(); return [r.width, r.height]; })")
    assert all(width >= 24 and height >= 24 for width, height in sizes)
    watched.assert_clean()


def test_loyalty_banner_mounts_without_layout_shift(site, watched):
    js = site.widget_url("loyalty", "js", SHOP["shop"])
    css = stylesheet_url(site.origin, SHOP["shop"], "loyalty", 1)
    body = '<h1>Welcome</h1>\n<div data-storefront-widget="loyalty"></div>\n<p>Below the banner.</p>'
    site.widget_delay = 0.3
    watched.goto(site.add_page("/", page("Home", body, head=stylesheet_tag(css) + script_tag(js))))
    watched.page.wait_for_selector(LOYALTY)
    watched.page.evaluate("new Promise(r => requestAnimationFrame(() => requestAnimationFrame(() => "
                          "setTimeout(r, 50))))")
    assert watched.layout_shift() == 0
    text = watched.page.inner_text(LOYALTY)
    assert "Earn 2 points for every $1.00 spent" in text
    assert "Join and get 100 points" in text
    assert "Roast" in text and "500+ points" in text
    assert watched.page.get_attribute(f"{LOYALTY} a", "href") == LOYALTY_SETTINGS["join_url"]
    watched.assert_clean()


def test_preview_page_wires_the_widget_to_its_form(site, watched):
    js = site.widget_url("subscription", "js", SHOP["shop"], product=COFFEE["id"], locale="en")
    context = preview_context(SHOP, [COFFEE, BOX], COFFEE, "subscription", "en", js,
                              widget_css_url=stylesheet_url(site.origin, SHOP["shop"], "subscription", 1))
    site.widget_delay = 0.2
    watched.goto(site.add_page("/preview", render_preview_page(context)))
    widget = '[data-storefront-widget="subscription"] > .sfw-subscription'
    watched.page.wait_for_selector(widget)
    watched.page.evaluate("new Promise(r => requestAnimationFrame(() => requestAnimationFrame(() => "
                          "setTimeout(r, 50))))")
    assert watched.layout_shift() == 0

    watched.page.click(f'{widget} [data-sfw="subscribe"] + label')
    watched.page.select_option('select[name="id"]', "42001000000002")
    watched.page.wait_for_function("() => document.querySelector('[data-pv-price]').textContent === '$54.00'")
    watched.page.wait_for_function(
        "() => document.querySelector('[data-sfw=\"subscribe-price\"]').textContent === '$48.60'")
    watched.page.click("[data-pv-add]")
    result = watched.page.inner_text("[data-pv-result]")
    assert "id=42001000000002" in result and "selling_plan=690001001" in result

    # The sold-out variant disables the page's add button, as a theme would.
    watched.page.select_option('select[name="id"]', "42001000000003")
    assert watched.page.is_disabled("[data-pv-add]")
    # The product/locale selector is a plain GET form.
    assert watched.page.get_attribute("form.pv-select", "method") == "get"
    watched.assert_clean()
