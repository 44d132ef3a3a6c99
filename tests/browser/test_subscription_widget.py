"""The subscription widget in headless Chromium, on a theme-like page under a strict CSP."""

from __future__ import annotations

import copy
from collections.abc import Callable, Iterator
from typing import Any

import pytest

from storefront.render import stylesheet_url
from storefront.widget_settings import default_settings
from tests.browser.conftest import WatchedPage
from tests.browser.site import (
    RenderedWidgets,
    WidgetSite,
    load_product,
    load_shops,
    page,
    product_form,
    script_tag,
    stylesheet_tag,
)

pytestmark = pytest.mark.browser

SHOP = load_shops()[0]
COFFEE = load_product("coffee-three-plans")
RAZOR = load_product("razor-subscription-only")
VITAMINS = load_product("vitamins-first-order-offer")
WIDGET = '[data-storefront-widget="subscription"] > .sfw-subscription'


def settings(**changes: Any) -> dict[str, Any]:
    result = default_settings("subscription")
    result.update(changes)
    return result


@pytest.fixture
def make_site() -> Iterator[Callable[..., WidgetSite]]:
    sites: list[WidgetSite] = []

    def make(products: list[dict[str, Any]] | None = None, **kinds: Any) -> WidgetSite:
        source = RenderedWidgets(load_shops(), products or [COFFEE, RAZOR, VITAMINS], kinds or None)
        site = WidgetSite(source).__enter__()
        sites.append(site)
        return site

    yield make
    for site in sites:
        site.__exit__(None, None, None)


def product_page(site: WidgetSite, product: dict[str, Any], *, css_in_head: bool = True,
                 extra_body: str = "", path: str = "/product") -> str:
    js = site.widget_url("subscription", "js", SHOP["shop"], product=product["id"])
    head = script_tag(js)
    if css_in_head:
        head = stylesheet_tag(stylesheet_url(site.origin, SHOP["shop"], "subscription", 1)) + "\n" + head
    body = product_form(product, attributes=f'data-product-id="{product["id"]}"') + extra_body
    return site.add_page(path, page(product["title"], body + "\n<p>Content below the form.</p>", head=head))


def selling_plan(watched: WatchedPage, form: str = "form") -> str | None:
    return watched.page.eval_on_selector(
        form, "f => { const i = f.querySelector('input[name=selling_plan]'); return i ? i.value : null; }")


def text(watched: WatchedPage, name: str, scope: str = WIDGET) -> str:
    return watched.page.inner_text(f'{scope} [data-sfw="{name}"]')


def settle(watched: WatchedPage) -> None:
    # Two frames and a little: layout-shift entries and setTimeout(0) handlers have been delivered.
    watched.page.evaluate("new Promise(r => requestAnimationFrame(() => requestAnimationFrame(() => "
                          "setTimeout(r, 50))))")


def test_mounts_into_the_placeholder_without_layout_shift(make_site, watched):
    site = make_site()
    site.widget_delay = 0.3  # the page paints before the widget arrives, as on a real network
    watched.goto(product_page(site, COFFEE))
    watched.page.wait_for_selector(WIDGET)
    settle(watched)

    assert watched.layout_shift() == 0
    spot = watched.page.locator('[data-storefront-widget="subscription"]').bounding_box()
    root = watched.page.locator(WIDGET).bounding_box()
    assert root["height"] <= spot["height"]
    css = stylesheet_url(site.origin, SHOP["shop"], "subscription", 1)
    assert watched.page.evaluate(
        "href => [...document.querySelectorAll('link[rel=stylesheet]')].filter(l => l.href === href).length",
        css) == 1
    assert text(watched, "onetime-price") == "$18.00"
    assert text(watched, "subscribe-label") == "Subscribe & save 10%"
    assert selling_plan(watched) == ""
    assert watched.page.is_hidden(f'{WIDGET} [data-sfw="frequency"]')
    watched.assert_clean()


def test_the_shift_measurement_sees_an_unreserved_mount(make_site, watched):
    # Control for the test above: without the stylesheet in <head> nothing reserves the space.
    site = make_site()
    site.widget_delay = 0.3
    watched.goto(product_page(site, COFFEE, css_in_head=False))
    watched.page.wait_for_selector(WIDGET)
    settle(watched)
    assert watched.layout_shift() > 0
    assert watched.page.locator('link[rel="stylesheet"][href*="/widgets/"]').count() == 1
    watched.assert_clean()


def test_choosing_a_plan_writes_selling_plan_into_the_form(make_site, watched):
    site = make_site()
    watched.goto(product_page(site, COFFEE))
    watched.page.wait_for_selector(WIDGET)

    watched.page.click(f'{WIDGET} [data-sfw="subscribe"] + label')
    assert selling_plan(watched) == "690001001"
    assert watched.page.is_visible(f'{WIDGET} [data-sfw="frequency"]')

    for plan, label, price in [("690001002", "Subscribe & save 15%", "$15.30"),
                               ("690001003", "Subscribe & save 20%", "$14.40"),
                               ("690001001", "Subscribe & save 10%", "$16.20")]:
        watched.page.select_option(f'{WIDGET} [data-sfw="plan"]', plan)
        assert selling_plan(watched) == plan
        assert text(watched, "subscribe-label") == label
        assert text(watched, "subscribe-price") == price

    watched.page.click(f'{WIDGET} input[value="onetime"] + label')
    assert selling_plan(watched) == ""
    assert watched.page.is_hidden(f'{WIDGET} [data-sfw="frequency"]')

    watched.page.click(f'{WIDGET} [data-sfw="subscribe"] + label')
    watched.page.select_option(f'{WIDGET} [data-sfw="plan"]', "690001002")
    watched.page.click('form button[type="submit"]')
    posted = site.wait_for_cart_posts(1)
    assert posted[0]["form"]["id"] == ["42001000000001"]
    assert posted[0]["form"]["selling_plan"] == ["690001002"]
    # Besides the theme's fields only the widget's radio group rides along (Shopify ignores it).
    extra = set(posted[0]["form"]) - {"id", "quantity", "selling_plan"}
    assert len(extra) == 1 and extra.pop().endswith("-purchase")
    watched.assert_clean()


def test_changing_the_variant_updates_prices_and_availability(make_site, watched):
    site = make_site()
    watched.goto(product_page(site, COFFEE))
    watched.page.wait_for_selector(WIDGET)
    watched.page.click(f'{WIDGET} [data-sfw="subscribe"] + label')
    watched.page.select_option(f'{WIDGET} [data-sfw="plan"]', "690001002")

    watched.page.select_option('form select[name="id"]', "42001000000002")
    watched.page.wait_for_function(
        "() => document.querySelector('[data-sfw=\"onetime-price\"]').textContent === '$54.00'")
    assert text(watched, "subscribe-price") == "$45.90"
    assert text(watched, "subscribe-label") == "Subscribe & save 15%"
    options = watched.page.eval_on_selector(f'{WIDGET} [data-sfw="plan"]',
                                            "s => [...s.options].map(o => o.text)")
    assert options == ["2 weeks \u2013 $48.60", "1 month \u2013 $45.90", "2 months \u2013 $43.20"]
    assert selling_plan(watched) == "690001002"
    assert watched.page.eval_on_selector_all(f"{WIDGET} input, {WIDGET} select",
                                             "els => els.every(e => !e.disabled)")

    # The 5 kg variant is sold out: still priced, nothing to choose.
    watched.page.select_option('form select[name="id"]', "42001000000003")
    watched.page.wait_for_function(
        "() => document.querySelector('[data-sfw=\"onetime-price\"]').textContent === '$219.99'")
    assert text(watched, "subscribe-price") == "$186.99"
    assert watched.page.eval_on_selector_all(f"{WIDGET} input, {WIDGET} select",
                                             "els => els.length > 0 && els.every(e => e.disabled)")
    watched.assert_clean()


def test_a_variant_without_plans_hides_the_widget_and_clears_the_plan(make_site, watched):
    product = copy.deepcopy(COFFEE)
    product["variants"][1]["selling_plan_allocations"] = []
    site = make_site([product])
    watched.goto(product_page(site, product))
    watched.page.wait_for_selector(WIDGET)
    watched.page.click(f'{WIDGET} [data-sfw="subscribe"] + label')
    assert selling_plan(watched) == "690001001"

    watched.page.select_option('form select[name="id"]', "42001000000002")
    watched.page.wait_for_selector(WIDGET, state="hidden")
    assert selling_plan(watched) == ""

    watched.page.select_option('form select[name="id"]', "42001000000001")
    watched.page.wait_for_selector(WIDGET, state="visible")
    assert selling_plan(watched) == "690001001"
    watched.assert_clean()


def test_first_order_offer_shows_both_prices(make_site, watched):
    site = make_site()
    watched.goto(product_page(site, VITAMINS))
    watched.page.wait_for_selector(WIDGET)
    assert text(watched, "subscribe-label") == "Subscribe & save 50% on your first order, then 10%"
    assert text(watched, "subscribe-price") == "$15.00"
    assert text(watched, "then") == "then $27.00"
    # One plan: no frequency choice even while subscribed.
    watched.page.click(f'{WIDGET} [data-sfw="subscribe"] + label')
    assert selling_plan(watched) == "690004001"
    assert watched.page.is_hidden(f'{WIDGET} [data-sfw="frequency"]')
    watched.assert_clean()


def test_keyboard_alone_chooses_a_plan_and_opens_the_details(make_site, watched):
    site = make_site()
    watched.goto(product_page(site, COFFEE))
    watched.page.wait_for_selector(WIDGET)
    keyboard = watched.page.keyboard
    active = "() => document.activeElement.id || document.activeElement.tagName"

    for _ in range(3):  # variant select -> quantity -> the checked radio of the widget
        keyboard.press("Tab")
    assert watched.page.evaluate(active).endswith("-onetime")
    keyboard.press("ArrowDown")
    assert watched.page.evaluate(active).endswith("-subscribe")
    assert selling_plan(watched) == "690001001"

    keyboard.press("Tab")
    assert watched.page.evaluate(active).endswith("-plan")
    keyboard.press("ArrowDown")
    assert selling_plan(watched) == "690001002"
    assert text(watched, "subscribe-label") == "Subscribe & save 15%"

    keyboard.press("Tab")
    assert watched.page.evaluate(active) == "SUMMARY"
    details = f"{WIDGET} details"
    assert watched.page.eval_on_selector(details, "d => d.open") is False
    keyboard.press("Enter")
    assert watched.page.eval_on_selector(details, "d => d.open") is True
    keyboard.press("Space")
    assert watched.page.eval_on_selector(details, "d => d.open") is False

    keyboard.press("Shift+Tab")
    keyboard.press("Shift+Tab")
    keyboard.press("ArrowUp")
    assert watched.page.evaluate(active).endswith("-onetime")
    assert selling_plan(watched) == ""
    watched.assert_clean()


def test_keyboard_space_toggles_the_checkbox_template(make_site, watched):
    site = make_site(subscription=settings(template="checkbox"))
    watched.goto(product_page(site, COFFEE))
    watched.page.wait_for_selector(WIDGET)
    for _ in range(3):
        watched.page.keyboard.press("Tab")
    assert watched.page.evaluate("document.activeElement.type") == "checkbox"
    watched.page.keyboard.press("Space")
    assert selling_plan(watched) == "690001001"
    watched.page.keyboard.press("Space")
    assert selling_plan(watched) == ""
    watched.assert_clean()


@pytest.mark.parametrize("template", ["radio_group", "button_group", "checkbox"])
def test_every_target_is_at_least_24px_and_the_reservation_holds(make_site, watched, template):
    site = make_site(subscription=settings(template=template, default_selection="subscription",
                                           learn_more_url="https://example.com/subscriptions"))
    site.widget_delay = 0.2
    watched.goto(product_page(site, COFFEE))
    watched.page.wait_for_selector(WIDGET)
    settle(watched)
    assert watched.layout_shift() == 0
    watched.page.click(f"{WIDGET} summary")
    sizes = watched.page.eval_on_selector_all(
        f"{WIDGET} input, {WIDGET} label, {WIDGET} select, {WIDGET} summary, {WIDGET} a",
        "els => els.map(e => { const r = e.getBoundingClientRect(); "
        "return [e.tagName + '.' + (e.type || ''), Math.round(r.width), Math.round(r.height)]; })")
    assert len(sizes) >= 5
    for name, width, height in sizes:
        assert width >= 24 and height >= 24, (name, width, height)
    watched.assert_clean()


def test_requires_selling_plan_has_no_one_time_option(make_site, watched):
    site = make_site()
    watched.goto(product_page(site, RAZOR))
    watched.page.wait_for_selector(WIDGET)
    assert watched.page.locator(f'{WIDGET} input[value="onetime"]').count() == 0
    assert watched.page.is_checked(f'{WIDGET} [data-sfw="subscribe"]')
    assert selling_plan(watched) == "690002001"
    assert text(watched, "subscribe-label") == "Subscribe & save $2.00"
    watched.assert_clean()


def test_two_products_and_two_forms_on_one_page_stay_apart(make_site, watched):
    site = make_site()
    coffee_js = site.widget_url("subscription", "js", SHOP["shop"], product=COFFEE["id"])
    razor_js = site.widget_url("subscription", "js", SHOP["shop"], product=RAZOR["id"])
    body = "\n".join([
        product_form(COFFEE, attributes='id="coffee-main"'),
        product_form(RAZOR, attributes='id="razor"'),
        # A sticky add-to-cart bar: a second form for the coffee, no placeholder of its own.
        product_form(COFFEE, placeholder=None, attributes='id="coffee-sticky"'),
    ])
    watched.goto(site.add_page("/two", page("Two products", body,
                                            head=script_tag(coffee_js) + script_tag(razor_js))))
    coffee = '#coffee-main .sfw-subscription'
    razor = '#razor .sfw-subscription'
    watched.page.wait_for_selector(coffee)
    watched.page.wait_for_selector(razor)

    ids = watched.page.eval_on_selector_all("[id]", "els => els.map(e => e.getAttribute('id'))")
    assert len(ids) == len(set(ids))
    # Every label of a widget points at a control inside that same widget.
    assert watched.page.eval_on_selector_all(
        ".sfw label[for]", "ls => ls.every(l => { const t = document.getElementById(l.htmlFor); "
        "return t && t.closest('.sfw') === l.closest('.sfw'); })")
    names = watched.page.eval_on_selector_all(".sfw input[type=radio]", "els => els.map(e => e.name)")
    assert len(set(names)) == 2

    assert selling_plan(watched, "#razor") == "690002001"
    assert selling_plan(watched, "#coffee-main") == ""
    assert selling_plan(watched, "#coffee-sticky") == ""

    watched.page.click(f'{coffee} [data-sfw="subscribe"] + label')
    watched.page.select_option(f'{coffee} [data-sfw="plan"]', "690001003")
    assert selling_plan(watched, "#coffee-main") == "690001003"
    assert selling_plan(watched, "#coffee-sticky") == "690001003"
    assert selling_plan(watched, "#razor") == "690002001"

    # The sticky form's variant picker drives the coffee widget too; the razor widget never moves.
    watched.page.select_option('#coffee-sticky select[name="id"]', "42001000000002")
    watched.page.wait_for_function(
        "() => document.querySelector('#coffee-main [data-sfw=\"subscribe-price\"]').textContent"
        " === '$43.20'")
    assert watched.page.inner_text(f'{razor} [data-sfw="subscribe-price"]') == "$10.99"
    watched.assert_clean()


def test_a_script_included_twice_mounts_once(make_site, watched):
    site = make_site()
    js = site.widget_url("subscription", "js", SHOP["shop"], product=COFFEE["id"])
    body = product_form(COFFEE) + "\n" + script_tag(js)
    watched.goto(site.add_page("/twice", page("Twice", body, head=script_tag(js))))
    watched.page.wait_for_selector(WIDGET)
    settle(watched)
    assert watched.page.locator(".sfw-subscription").count() == 1
    assert watched.page.locator('link[rel="stylesheet"][href*="/widgets/"]').count() == 1
    watched.assert_clean()


def test_without_a_placeholder_it_mounts_right_after_its_script(make_site, watched):
    site = make_site()
    js = site.widget_url("subscription", "js", SHOP["shop"], product=COFFEE["id"])
    body = product_form(COFFEE, placeholder=None) + '\n<div id="slot">' + script_tag(js) + "</div>"
    watched.goto(site.add_page("/inline", page("Inline", body)))
    watched.page.wait_for_selector("#slot > script + .sfw-subscription")
    watched.page.click('.sfw-subscription [data-sfw="subscribe"] + label')
    assert selling_plan(watched) == "690001001"
    watched.assert_clean()


EVIL = "</script><img src=x onerror=alert(1)> \"quoted\" 'single' \u2028\u2029 & done"


def test_merchant_text_stays_text_in_the_browser(make_site, watched):
    product = copy.deepcopy(COFFEE)
    product["title"] = EVIL
    product["selling_plan_groups"][0]["selling_plans"][0]["options"][0]["value"] = EVIL
    labels = dict(default_settings("subscription")["labels"], onetime=EVIL, subscribe=EVIL + " {discount}",
                  details_title=EVIL)
    site = make_site([product], subscription=settings(labels=labels))
    watched.goto(product_page(site, product))
    watched.page.wait_for_selector(WIDGET)
    settle(watched)
    assert watched.page.locator('img[src="x"]').count() == 0
    assert watched.page.locator("script:not([src])").count() == 0
    assert EVIL.replace("\u2028", " ").replace("\u2029", " ").split()[0] in watched.page.inner_text(WIDGET)
    label = watched.page.eval_on_selector(f'{WIDGET} [data-sfw="subscribe-label"]', "e => e.textContent")
    assert label == EVIL + " 10%"
    watched.assert_clean()


def test_a_theme_section_re_render_mounts_a_fresh_widget(make_site, watched):
    site = make_site()
    watched.goto(product_page(site, COFFEE))
    watched.page.wait_for_selector(WIDGET)
    watched.page.click(f'{WIDGET} [data-sfw="subscribe"] + label')
    # The theme editor swaps the section for fresh markup (an empty placeholder) without re-running scripts.
    watched.page.evaluate("""() => {
        const old = document.querySelector('form');
        const fresh = old.cloneNode(true);
        const spot = fresh.querySelector('[data-storefront-widget]');
        spot.replaceChildren();
        spot.removeAttribute('data-sfw-mounted');
        fresh.querySelector('input[name=selling_plan]').remove();
        old.replaceWith(fresh);
        fresh.dispatchEvent(new CustomEvent('shopify:section:load', {bubbles: true}));
    }""")
    watched.page.wait_for_selector(WIDGET)
    assert watched.page.locator(".sfw-subscription").count() == 1
    assert selling_plan(watched) == ""
    watched.page.click(f'{WIDGET} [data-sfw="subscribe"] + label')
    watched.page.select_option(f'{WIDGET} [data-sfw="plan"]', "690001002")
    assert selling_plan(watched) == "690001002"
    # The removed widget stays silent when the variant changes.
    watched.page.select_option('form select[name="id"]', "42001000000002")
    watched.page.wait_for_function(
        "() => document.querySelector('[data-sfw=\"subscribe-price\"]').textContent === '$45.90'")
    assert selling_plan(watched) == "690001002"
    watched.assert_clean()
