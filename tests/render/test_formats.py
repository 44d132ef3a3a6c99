"""render_widget's contract: content types, the empty render, determinism, and base_url as the only origin."""

from __future__ import annotations

import json
import re

import pytest

from storefront.render import CONTENT_TYPES, build_model, render_widget
from storefront.widget_settings import default_settings
from tests.render.fixture_data import BASE_URL, EUR, JPY, PRODUCTS, REPO, USD, product, render, settings

KINDS = ("subscription", "bundle", "loyalty")
FORMATS = ("js", "html", "json", "css")
PRODUCT_FOR = {"subscription": "coffee-three-plans", "bundle": "snack-box-bundle", "loyalty": None}


def call(kind, fmt, **overrides):
    arguments = dict(shop=USD, settings=default_settings(kind), settings_version=4,
                     product=PRODUCTS[PRODUCT_FOR[kind]] if PRODUCT_FOR[kind] else None,
                     locale="en", base_url=BASE_URL)
    arguments.update(overrides)
    return render_widget(kind, fmt, **arguments)


@pytest.mark.parametrize("kind", KINDS)
@pytest.mark.parametrize("fmt", FORMATS)
def test_content_types(kind, fmt):
    body, content_type = call(kind, fmt)
    assert content_type == {"js": "application/javascript; charset=utf-8", "html": "text/html; charset=utf-8",
                            "json": "application/json", "css": "text/css; charset=utf-8"}[fmt]
    assert CONTENT_TYPES[fmt] == content_type
    assert body and isinstance(body, bytes)
    body.decode("utf-8")


def assert_empty(kind, fmt, body):
    text = body.decode()
    if fmt == "js":
        assert text == f"/* storefront: {kind} widget disabled */\n"
    elif fmt == "html":
        assert text == ""
    elif fmt == "json":
        assert json.loads(text) == {"enabled": False}
    else:
        assert text == f"/* storefront: {kind} widget disabled */\n"


@pytest.mark.parametrize("kind", KINDS)
@pytest.mark.parametrize("fmt", FORMATS)
def test_never_published_renders_empty(kind, fmt):
    body, _ = call(kind, fmt, settings=None, settings_version=None)
    assert_empty(kind, fmt, body)


@pytest.mark.parametrize("kind", KINDS)
@pytest.mark.parametrize("fmt", FORMATS)
def test_disabled_renders_empty(kind, fmt):
    body, _ = call(kind, fmt, settings=settings(kind, enabled=False))
    assert_empty(kind, fmt, body)


@pytest.mark.parametrize("fmt", ["js", "html", "json"])
def test_product_without_plans_renders_empty_subscription(fmt):
    body, _ = call("subscription", fmt, product=PRODUCTS["mug-no-plans"])
    assert_empty("subscription", fmt, body)
    assert build_model("subscription", shop=USD, settings=default_settings("subscription"),
                       product=PRODUCTS["mug-no-plans"], locale="en") == {"enabled": False}


def test_allocations_to_unknown_plans_count_as_no_plans():
    item = product("coffee-three-plans")
    item["selling_plan_groups"] = []
    body, _ = call("subscription", "json", product=item)
    assert json.loads(body) == {"enabled": False}


@pytest.mark.parametrize("fmt", ["js", "html", "json"])
@pytest.mark.parametrize("name", ["coffee-three-plans", "mug-no-plans"])
def test_product_without_bundle_renders_empty_bundle(fmt, name):
    body, _ = call("bundle", fmt, product=PRODUCTS[name])
    assert_empty("bundle", fmt, body)


@pytest.mark.parametrize(("kind", "fmt"), [("subscription", "js"), ("bundle", "html")])
def test_missing_product_renders_empty(kind, fmt):
    body, _ = call(kind, fmt, product=None)
    assert_empty(kind, fmt, body)


def test_the_stylesheet_depends_on_settings_alone():
    assert call("subscription", "css", product=PRODUCTS["mug-no-plans"])[0] == call("subscription", "css")[0]
    assert call("subscription", "css", locale="fr", shop=EUR)[0] == call("subscription", "css")[0]


@pytest.mark.parametrize("kind", KINDS)
@pytest.mark.parametrize("fmt", FORMATS)
def test_rendering_is_deterministic(kind, fmt):
    first = call(kind, fmt)[0]
    # Same data, different dict insertion order: the same bytes (and so the same ETag).
    shuffled = {key: value for key, value in reversed(list(default_settings(kind).items()))}
    shop = {key: value for key, value in reversed(list(USD.items()))}
    assert call(kind, fmt, settings=shuffled, shop=shop)[0] == first
    assert call(kind, fmt)[0] == first


def test_json_is_the_model_serialised_compactly_with_sorted_keys():
    body, _ = call("subscription", "json")
    model = build_model("subscription", shop=USD, settings=default_settings("subscription"),
                        product=PRODUCTS["coffee-three-plans"], locale="en")
    assert json.loads(body) == model
    text = body.decode()
    assert text == json.dumps(model, ensure_ascii=False, sort_keys=True, separators=(",", ":")).replace(
        "&", "\\u0026")


@pytest.mark.parametrize("kind", KINDS)
def test_base_url_is_the_only_origin_in_the_script(kind):
    item = PRODUCTS[PRODUCT_FOR[kind]] if PRODUCT_FOR[kind] else None
    script = call(kind, "js", product=item, base_url="https://cdn-widgets.example.net/")[0].decode()
    css_url = f"https://cdn-widgets.example.net/v1/shops/demo-coffee.myshopify.com/widgets/{kind}.css?v=4"
    assert f'C="{css_url}"' in script
    urls = set(re.findall(r"https?://[^\"'\s\\]+", script))
    merchant = {"https://cdn.example.com/s/crisps.png", "https://cdn.example.com/s/almonds.png",
                "https://cdn.example.com/s/choc.png", "https://cdn.example.com/s/oat.png"}
    assert urls - merchant == {css_url}


def test_settings_version_busts_the_stylesheet_url():
    assert '.css?v=4"' in call("subscription", "js")[0].decode()
    assert '.css?v=5"' in call("subscription", "js", settings_version=5)[0].decode()


def test_the_script_captures_current_script_first_and_is_one_iife():
    script = call("subscription", "js")[0].decode()
    lines = script.split("\n")
    assert lines[0] == "/* storefront subscription widget */"
    assert lines[1] == "(function(){" and lines[2] == '"use strict";'
    assert lines[3].startswith("var S=document.currentScript,")
    assert script.endswith("start();\n})();\n")
    for forbidden in ("eval(", "new Function", "Function(", "setAttribute('on", "setAttribute('style",
                      ".style.", "document.write", "cookie", "localStorage"):
        assert forbidden not in script


def test_output_holds_nothing_of_the_customer_or_the_request():
    # The inputs carry no customer; the model keys are the fixed, documented ones.
    model = build_model("loyalty", shop=JPY, settings=default_settings("loyalty"), product=None, locale="ja")
    assert set(model) == {"kind", "enabled", "shop", "locale", "currency", "colors", "labels",
                          "points_per_unit", "signup_bonus", "earn_text", "signup_text", "tiers", "join_url"}


@pytest.mark.parametrize(("kind", "fmt"), [("nope", "js"), ("subscription", "xml"), ("Subscription", "js")])
def test_unknown_kind_or_format_is_an_error(kind, fmt):
    with pytest.raises(ValueError):
        render_widget(kind, fmt, shop=USD, settings=None, settings_version=None, product=None, locale="en",
                      base_url=BASE_URL)


def test_render_helper_uses_the_default_locale():
    assert 'lang="de"' in render("subscription", "html", product=PRODUCTS["coffee-three-plans"], shop=EUR)


def test_render_package_imports_nothing_of_the_web_store_or_cache():
    package = REPO / "storefront" / "render"
    modules = r"flask|werkzeug|storefront\.(?:web|store|cache)|redis|pymysql"
    forbidden = re.compile(rf"^\s*(?:from|import)\s+({modules})\b", re.M)
    sources = sorted(package.glob("*.py"))
    assert len(sources) >= 8
    for source in sources:
        assert not forbidden.search(source.read_text(encoding="utf-8")), source.name
