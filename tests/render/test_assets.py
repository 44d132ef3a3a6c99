"""Scripts and stylesheets: the minifier, CSS scoping and reservation, the byte budget and the size report."""

from __future__ import annotations

import re

import brotli
import pytest

from storefront.render.assets import minify_css, minify_js, size_report
from tests.render.fixture_data import PRODUCTS, USD, render, settings

KINDS = ("subscription", "bundle", "loyalty")
BUDGET = 6 * 1024


def test_minify_js_drops_comments_and_indentation_only():
    source = """
    // a line comment
    function a() {
      /* a block
         comment */
      var url = 'https://example.com/x'; // a trailing comment stays: never guess inside a line
      return url;
    }
    /* one-line block */
    """
    assert minify_js(source) == ("function a() {\nvar url = 'https://example.com/x'; "
                                 "// a trailing comment stays: never guess inside a line\nreturn url;\n}")


def test_minify_js_refuses_code_after_a_block_comment():
    with pytest.raises(ValueError):
        minify_js("/* note */ var a = 1;")


def test_minify_css():
    assert minify_css("/* c */\n.a{color:red}\n  .b,\n  .c {margin:0}\n") == ".a{color:red}.b,.c {margin:0}"
    assert minify_css(".a\n.b{x:y}") == ".a .b{x:y}"


def rules(css: str) -> list[tuple[str, str]]:
    """(selector, declarations) of every rule; our stylesheets hold no at-rules or nesting."""
    body = re.sub(r"/\*.*?\*/", "", css, flags=re.S)
    assert "@" not in body
    return [(selector.strip(), block) for selector, block in re.findall(r"([^{}]+)\{([^{}]*)\}", body)]


@pytest.mark.parametrize("kind", KINDS)
def test_every_selector_is_scoped_to_the_widget(kind):
    css = render(kind, "css")
    found = rules(css)
    assert len(found) > 10
    for selector_list, _ in found:
        for selector in selector_list.split(","):
            selector = selector.strip()
            assert selector.startswith(".sfw") or selector == f'[data-storefront-widget="{kind}"]', selector


@pytest.mark.parametrize("kind", KINDS)
def test_merchant_colours_are_custom_properties_on_the_kind_root(kind):
    colors = {"accent": "#ff0066", "background": "#000"}
    found = rules(render(kind, "css", widget_settings=settings(kind, colors=colors)))
    assert found[0] == (f".sfw-{kind}",
                        "--sfw-accent:#ff0066;--sfw-bg:#000;--sfw-text:#1a1a1a;--sfw-border:#d4d4d4")
    # Colours reach the other rules only through the variables.
    for selector, block in found[1:]:
        assert not re.search(r"#[0-9a-fA-F]{3}", block), selector


def reserve(css: str, kind: str) -> float | None:
    block = dict(rules(css)).get(f'[data-storefront-widget="{kind}"]')
    if block is None:
        return None
    return float(re.search(r"min-height:calc\(([\d.]+)em \+ 2px\)", block).group(1))


def test_subscription_reserves_space_by_template_and_settings():
    base = reserve(render("subscription", "css"), "subscription")
    subscribed = reserve(render("subscription", "css", widget_settings=settings(
        "subscription", default_selection="subscription")), "subscription")
    no_details = reserve(render("subscription", "css", widget_settings=settings(
        "subscription", show_details=False)), "subscription")
    buttons = reserve(render("subscription", "css", widget_settings=settings(
        "subscription", template="button_group")), "subscription")
    assert base and subscribed > base > no_details and buttons < base


def test_loyalty_reserves_more_for_tiers_and_bundles_reserve_nothing():
    plain = reserve(render("loyalty", "css"), "loyalty")
    tiers = [{"name": "A", "min_points": 0, "perks": ["x", "y"]}]
    fuller = reserve(render("loyalty", "css", widget_settings=settings(
        "loyalty", tiers=tiers, signup_bonus=10, join_url="https://example.com")), "loyalty")
    assert plain and fuller > plain
    assert reserve(render("bundle", "css"), "bundle") is None


def test_coffee_subscription_script_and_stylesheet_fit_the_budget():
    script = render("subscription", "js", product=PRODUCTS["coffee-three-plans"]).encode()
    css = render("subscription", "css").encode()
    compressed = len(brotli.compress(script, quality=11)) + len(brotli.compress(css, quality=11))
    assert compressed <= BUDGET, compressed


def test_size_report_measures_every_kind_on_the_fixtures():
    report = size_report()
    assert set(report) == set(KINDS)
    assert "single-origin-coffee-beans" in report["subscription"]
    assert "ceramic-mug" not in report["subscription"]  # renders empty: nothing to weigh
    assert set(report["bundle"]) == {"build-your-snack-box"}
    assert set(report["loyalty"]) == {"demo-coffee.myshopify.com", "kaffee-haus.myshopify.com",
                                      "sakagura.myshopify.com"}
    coffee = report["subscription"]["single-origin-coffee-beans"]
    for fmt in ("js", "css", "js+css"):
        sizes = coffee[fmt]
        assert sizes["raw"] > sizes["gzip"] > 0 and sizes["raw"] > sizes["brotli"] > 0
    assert coffee["js+css"]["brotli"] == coffee["js"]["brotli"] + coffee["css"]["brotli"] <= BUDGET
    css = render("subscription", "css", shop=USD).encode()
    assert coffee["css"]["raw"] == len(css)


def test_size_report_uses_the_render_caches_compression() -> None:
    from storefront.cache import entry
    from storefront.render import assets

    body = render("subscription", "js", shop=USD).encode()
    built = entry.CachedRender.build(body, "text/javascript", 1.0, 60)
    assert built.br == assets.brotli_compress(body)
    # A window just large enough for the body: the same bytes as the default 4 MiB window, or fewer.
    assert len(built.br) <= len(brotli.compress(body, mode=brotli.MODE_TEXT, quality=assets.BROTLI_QUALITY))
    assert brotli.decompress(built.br) == body
