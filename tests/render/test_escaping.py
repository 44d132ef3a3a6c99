"""Merchant-typed text that looks like markup or script stays inert text in every output format."""

from __future__ import annotations

import json
import re
from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st

from storefront.render import build_model
from storefront.render.encoding import inert_json
from storefront.widget_settings import copy_json
from tests.render.fixture_data import USD, product, render, settings
from tests.render.html_tree import parse

EVIL = ("</script><img src=x onerror=alert(1)> \"double\" 'single' `tick` \u2028line\u2029para "
        "& &amp; <!-- -->")


def evil_subscription() -> tuple[dict[str, Any], dict[str, Any]]:
    item = product("coffee-three-plans")
    item["title"] = EVIL
    group = item["selling_plan_groups"][0]
    group["name"] = EVIL
    group["selling_plans"][0]["options"][0]["value"] = EVIL
    group["selling_plans"][1]["name"] = EVIL
    item["variants"][0]["title"] = EVIL
    keys = ("onetime", "deliver_every", "details_title", "details_body", "learn_more")
    labels = {key: EVIL for key in keys}
    labels["subscribe"] = EVIL + " {discount}"
    widget = settings("subscription", labels=labels, learn_more_url="https://example.com/?q=</script>",
                      translations={"fr": {"onetime": EVIL}})
    return item, widget


def evil_bundle() -> tuple[dict[str, Any], dict[str, Any]]:
    item = product("snack-box-bundle")
    item["title"] = EVIL
    collection = item["bundle"]["collections"][0]
    collection["title"] = EVIL
    collection["products"][0]["title"] = EVIL
    collection["products"][1]["image_url"] = "https://cdn.example.com/x.png\" onerror=\"alert(1)"
    labels = {key: EVIL + " {min} {remainder}" for key in ("title", "choose_range", "add_more", "full",
                                                            "add_to_cart")}
    return item, settings("bundle", labels=labels)


def evil_loyalty() -> tuple[None, dict[str, Any]]:
    labels = {"title": EVIL, "earn": EVIL + " {points} {amount}", "signup": EVIL + " {bonus}", "join": EVIL}
    tiers = [{"name": EVIL, "min_points": 10, "perks": [EVIL, "ok"]}]
    return None, settings("loyalty", labels=labels, tiers=tiers, signup_bonus=5,
                          join_url="https://example.com/join?<script>")


CASES = {"subscription": evil_subscription, "bundle": evil_bundle, "loyalty": evil_loyalty}
SHOP = dict(USD, name=EVIL, money_format="<b>${{amount}}</b><script>x</script>")


@pytest.mark.parametrize("kind", sorted(CASES))
@pytest.mark.parametrize("locale", ["en", "fr"])
def test_html_autoescapes_everything(kind, locale):
    item, widget = CASES[kind]()
    html = render(kind, "html", product=item, shop=SHOP, widget_settings=widget, locale=locale)
    assert "<img src=x" not in html and "<script" not in html and "<!--" not in html and "<b>" not in html
    assert "&lt;/script&gt;&lt;img src=x onerror=alert(1)&gt;" in html
    document = parse(html)
    for element in document.iter():
        assert element.tag not in ("script", "style", "img") or element.attrs.get("src", "").startswith(
            "https://cdn.example.com/s/")
        assert not [name for name in element.attrs if name.startswith("on")]
        assert "style" not in element.attrs
    # The evil text survives as text, whole.
    assert EVIL in document.text()


@pytest.mark.parametrize("kind", sorted(CASES))
def test_js_embeds_text_only_through_inert_json(kind):
    item, widget = CASES[kind]()
    script = render(kind, "js", product=item, shop=SHOP, widget_settings=widget)
    assert "</script" not in script.lower()
    assert "<!--" not in script and "<img" not in script
    assert "\u2028" not in script and "\u2029" not in script
    # Every server value sits in one var statement of JSON literals, and they parse back exactly.
    declaration = next(line for line in script.split("\n")
                       if line.startswith("var S=document.currentScript,"))
    literal = r'([A-Z])=((?:"(?:[^"\\]|\\.)*")|(?:\{.*?\})|null|-?\d+)(?=,[A-Z]=|;$)'
    values = dict(re.findall(literal, declaration))
    assert set(values) == {"K", "P", "X", "C", "H", "M"}
    html = json.loads(values["H"])
    assert EVIL in parse(html).text()
    data = json.loads(values["M"])
    assert json.dumps(data)  # a plain JSON value
    assert json.loads(values["C"]).startswith("https://widgets.example.com/v1/shops/")


@pytest.mark.parametrize("kind", sorted(CASES))
def test_json_is_the_model_with_inert_escapes(kind):
    item, widget = CASES[kind]()
    body = render(kind, "json", product=item, shop=SHOP, widget_settings=widget)
    for raw in ("<", ">", "&", "\u2028", "\u2029"):
        assert raw not in body
    assert json.loads(body) == build_model(kind, shop=SHOP, settings=widget, product=item, locale="en")


@pytest.mark.parametrize("kind", sorted(CASES))
def test_css_takes_only_valid_colours(kind):
    widget = settings(kind, colors={"accent": "red;}</style><script>alert(1)</script>", "text": "#abc",
                                    "background": "url(javascript:x)", "border": "#A1B2C3"})
    css = render(kind, "css", widget_settings=widget)
    assert "<" not in css and "url(" not in css and "red" not in css
    assert "--sfw-text:#abc;" in css and "--sfw-border:#A1B2C3" in css
    assert "--sfw-accent:#1a1a1a;" in css and "--sfw-bg:#ffffff;" in css


def test_merchant_urls_are_https_and_escaped_in_attributes():
    item, widget = evil_subscription()
    # Characters that have no business in a URL make it no URL at all.
    assert parse(render("subscription", "html", product=item, widget_settings=widget)).find_all("a") == []
    widget["learn_more_url"] = "https://example.com/?a=1&b=%3Cx%3E"
    html = render("subscription", "html", product=item, widget_settings=widget)
    assert parse(html).find("a").attrs["href"] == "https://example.com/?a=1&b=%3Cx%3E"
    assert 'href="https://example.com/?a=1&amp;b=%3Cx%3E"' in html
    item, widget = evil_bundle()
    images = parse(render("bundle", "html", product=item, widget_settings=widget)).find_all("img")
    assert [img.attrs["src"] for img in images] == ["https://cdn.example.com/s/crisps.png",
                                                    "https://cdn.example.com/s/choc.png",
                                                    "https://cdn.example.com/s/oat.png"]


@given(st.recursive(st.none() | st.booleans() | st.integers() | st.text(),
                    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(st.text(), inner, max_size=4),
                    max_leaves=12))
def test_inert_json_escapes_exactly_the_five_characters(value):
    text = inert_json(value)
    assert json.loads(text) == value
    plain = json.dumps(value, ensure_ascii=False, separators=(",", ":"), sort_keys=True)
    assert text == plain.replace("<", "\\u003c").replace(">", "\\u003e").replace("&", "\\u0026") \
        .replace("\u2028", "\\u2028").replace("\u2029", "\\u2029")
    assert not {"<", ">", "&", "\u2028", "\u2029"} & set(text)


def test_copy_json_shares_nothing_mutable():
    original = {"colors": {"accent": "#000"}, "tiers": [{"name": "Gold", "perks": ["a"]}], "n": 1,
                "t": ("x",)}
    copied = copy_json(original)
    assert copied == original
    copied["colors"]["accent"] = "#fff"
    copied["tiers"][0]["perks"].append("b")
    assert original == {"colors": {"accent": "#000"}, "tiers": [{"name": "Gold", "perks": ["a"]}], "n": 1,
                        "t": ("x",)}
