"""Tests for storefront.validation: each rule with its exact field path, round trips, the settings merge."""

from __future__ import annotations

import copy
import json
import re
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from storefront.money import MONEY_PLACEHOLDERS
from storefront.validation import (
    MAX_ID,
    ROOT_PATH,
    ValidationFailed,
    parse_product_id,
    valid_locale,
    valid_shop_domain,
    validate_product,
    validate_rollback,
    validate_shop,
    validate_widget_settings,
)
from storefront.widget_settings import LABEL_MAX, LABELS, LONG_LABELS, default_settings

PRODUCTS_DIR = Path(__file__).parent / "fixtures" / "products"
PRODUCT_FILES = sorted(PRODUCTS_DIR.glob("*.json"))
KINDS = tuple(LABELS)

COFFEE = "coffee-three-plans"
FIRST_GROUP_ID = "7aceee4d7d64a3b7c0d1821b2f42834d6b8f0697"
BOX = "snack-box-bundle"
VITAMINS = "vitamins-first-order-offer"
ALLOC = "variants[0].selling_plan_allocations[0]"
GROUP = "selling_plan_groups[0]"
PLAN = f"{GROUP}.selling_plans[0]"
ADJ = f"{PLAN}.price_adjustments[0]"
COLL = "bundle.collections[0]"
ITEM = f"{COLL}.products[0]"

DELETE = object()
_SEGMENT = re.compile(r"\.?([A-Za-z0-9_-]+)|\[(\d+)\]")


def load_product(stem: str) -> dict[str, Any]:
    return json.loads((PRODUCTS_DIR / f"{stem}.json").read_text(encoding="utf-8"))


def mutate(doc: Any, path: str, value: Any) -> Any:
    """Set (or with DELETE remove) the member at a ``variants[0].price`` style path."""
    parts: list[Any] = [int(index) if index else name for name, index in _SEGMENT.findall(path)]
    target = doc
    for part in parts[:-1]:
        target = target[part]
    if value is DELETE:
        del target[parts[-1]]
    else:
        target[parts[-1]] = value
    return doc


def failures(call: Callable[[], Any]) -> dict[str, str]:
    with pytest.raises(ValidationFailed) as info:
        call()
    fields = info.value.fields
    assert all(isinstance(reason, str) and reason for reason in fields.values())
    return fields


def case_id(path: str, value: Any) -> str:
    return f"{path}={ascii(value)[:40]}"


def with_extras(value: Any) -> Any:
    """A copy with an unknown member added to every object, at every depth."""
    if isinstance(value, dict):
        result = {key: with_extras(item) for key, item in value.items()}
        result["x_unknown"] = {"nested": [1, "two"]}
        return result
    if isinstance(value, list):
        return [with_extras(item) for item in value]
    return value


# -- products: fixtures ------------------------------------------------------------------


def test_fixture_products_are_present() -> None:
    assert len(PRODUCT_FILES) >= 2


@pytest.mark.parametrize("path", PRODUCT_FILES, ids=lambda p: p.stem)
def test_fixture_product_round_trips(path: Path) -> None:
    doc = json.loads(path.read_text(encoding="utf-8"))
    original = copy.deepcopy(doc)
    assert validate_product(doc, doc["id"]) == original
    assert doc == original


@pytest.mark.parametrize("path", PRODUCT_FILES, ids=lambda p: p.stem)
def test_unknown_members_are_dropped_at_every_depth(path: Path) -> None:
    doc = json.loads(path.read_text(encoding="utf-8"))
    assert validate_product(with_extras(doc), doc["id"]) == doc


def test_result_is_a_fresh_copy() -> None:
    doc = load_product(BOX)
    result = validate_product(doc, doc["id"])
    assert result is not doc
    assert result["variants"] is not doc["variants"]
    assert result["bundle"]["collections"][0] is not doc["bundle"]["collections"][0]
    result["variants"][0]["selling_plan_allocations"][0]["price"] = 1
    result["bundle"]["collections"][0]["products"].clear()
    assert doc == load_product(BOX)


def test_null_bundle_is_accepted_and_left_out() -> None:
    doc = load_product(COFFEE)
    doc["bundle"] = None
    result = validate_product(doc, doc["id"])
    assert "bundle" not in result
    del doc["bundle"]
    assert result == doc


# -- products: values that are accepted --------------------------------------------------

GOOD_PRODUCT_VALUES = [
    (COFFEE, "variants[0].compare_at_price", 2000),
    (COFFEE, "variants[0].compare_at_price", 0),
    (COFFEE, "variants[0].price", 0),
    (COFFEE, "variants[0].id", MAX_ID),
    (COFFEE, f"{ALLOC}.price", 2**53 - 1),
    (COFFEE, "variants[0].selling_plan_allocations", []),
    (COFFEE, "requires_selling_plan", True),
    (COFFEE, "title", "x" * 255),
    (COFFEE, "title", "Kaffee \u2615 \U0001f375 <b>&amp;</b> {not a placeholder}"),
    (COFFEE, "handle", "\u30b3\u30fc\u30d2\u30fc"),
    (COFFEE, f"{GROUP}.app_id", None),
    (COFFEE, f"{PLAN}.description", "Line one\nLine two\twith a tab\r\n"),
    (COFFEE, f"{PLAN}.description", "d" * 5000),
    (COFFEE, f"{PLAN}.price_adjustments", []),
    (COFFEE, f"{PLAN}.options", []),
    (COFFEE, f"{ADJ}.value", 12.5),
    (COFFEE, f"{ADJ}.value", 100),
    (COFFEE, f"{ADJ}.value", 0),
    (COFFEE, f"{ADJ}.order_count", 3),
    (COFFEE, f"{ADJ}.order_count", 0),
    (VITAMINS, f"{ADJ}.value_type", "fixed_amount"),
    ("razor-subscription-only", f"{ADJ}.value", 150000),
    (BOX, "bundle.discount_percentage", 12.5),
    (BOX, "bundle.discount_percentage", 0),
    (BOX, "bundle.discount_percentage", 100),
    (BOX, "bundle.items_count", 3),
    (BOX, "bundle.items_count", 8),
    (BOX, f"{COLL}.min", 0),
    (BOX, f"{COLL}.min", 4),
    (BOX, f"{ITEM}.price", 0),
    (BOX, f"{ITEM}.image_url", "https://cdn.example.com:8443/s/crisps.png?v=1&w=200#x"),
    (BOX, f"{ITEM}.image_url", "https://xn--bcher-kva.example/b.png"),
    (BOX, f"{ITEM}.image_url", "https://cdn.example.com/s/caf%C3%A9.png"),
    (BOX, f"{ITEM}.image_url", "https://CDN.Example.com/s/x.png"),
]


@pytest.mark.parametrize(
    ("stem", "path", "value"), GOOD_PRODUCT_VALUES, ids=[case_id(p, v) for _, p, v in GOOD_PRODUCT_VALUES]
)
def test_product_accepts(stem: str, path: str, value: Any) -> None:
    doc = mutate(load_product(stem), path, value)
    assert validate_product(doc, doc["id"]) == doc


def test_size_limits_are_inclusive() -> None:
    doc = load_product(COFFEE)
    template = doc["variants"][0]
    doc["variants"] = [dict(copy.deepcopy(template), id=1 + i) for i in range(250)]
    plans = doc["selling_plan_groups"][0]["selling_plans"]
    extra = [dict(copy.deepcopy(plans[0]), id=800000000 + i) for i in range(100 - len(plans))]
    plans.extend(extra)
    assert validate_product(doc, doc["id"]) == doc


# -- products: each rule, with the exact path it reports ---------------------------------

BAD_PRODUCT_VALUES = [
    (COFFEE, "id", "7001000000001"),
    (COFFEE, "id", True),
    (COFFEE, "id", 0),
    (COFFEE, "id", MAX_ID + 1),
    (COFFEE, "id", 7001000000001.0),
    (COFFEE, "title", ""),
    (COFFEE, "title", "   "),
    (COFFEE, "title", None),
    (COFFEE, "title", 5),
    (COFFEE, "title", "x" * 256),
    (COFFEE, "title", "nul\x00here"),
    (COFFEE, "title", "two\nlines"),
    (COFFEE, "title", "c1\x85control"),
    (COFFEE, "title", "lone \ud800 surrogate"),
    (COFFEE, "handle", "has space"),
    (COFFEE, "handle", "a/b"),
    (COFFEE, "handle", ""),
    (COFFEE, "requires_selling_plan", 1),
    (COFFEE, "requires_selling_plan", "true"),
    (COFFEE, "requires_selling_plan", None),
    (COFFEE, "variants", []),
    (COFFEE, "variants", {}),
    (COFFEE, "variants", None),
    (COFFEE, "variants[0]", "variant"),
    (COFFEE, "variants[0].id", True),
    (COFFEE, "variants[0].id", -1),
    (COFFEE, "variants[0].id", "42001000000001"),
    (COFFEE, "variants[0].title", None),
    (COFFEE, "variants[0].price", -1),
    (COFFEE, "variants[0].price", 18.0),
    (COFFEE, "variants[0].price", "1800"),
    (COFFEE, "variants[0].price", "18.00"),
    (COFFEE, "variants[0].price", True),
    (COFFEE, "variants[0].price", None),
    (COFFEE, "variants[0].price", 2**53),
    (COFFEE, "variants[0].compare_at_price", "2000"),
    (COFFEE, "variants[0].compare_at_price", -1),
    (COFFEE, "variants[0].available", 1),
    (COFFEE, "variants[0].available", "yes"),
    (COFFEE, "variants[0].selling_plan_allocations", None),
    (COFFEE, "variants[0].selling_plan_allocations", {}),
    (COFFEE, ALLOC, 7),
    (COFFEE, f"{ALLOC}.selling_plan_group_id", "7ACEEE4D7D64A3B7C0D1821B2F42834D6B8F0697"),
    (COFFEE, f"{ALLOC}.selling_plan_group_id", "7aceee4d7d64a3b7c0d1821b2f42834d6b8f069"),
    (COFFEE, f"{ALLOC}.selling_plan_group_id", "7aceee4d7d64a3b7c0d1821b2f42834d6b8f0697\n"),
    (COFFEE, f"{ALLOC}.selling_plan_group_id", 12),
    (COFFEE, f"{ALLOC}.selling_plan_id", True),
    (COFFEE, f"{ALLOC}.selling_plan_id", "690001001"),
    (COFFEE, f"{ALLOC}.price", -1),
    (COFFEE, f"{ALLOC}.compare_at_price", None),
    (COFFEE, f"{ALLOC}.per_delivery_price", 1.5),
    (COFFEE, f"{ALLOC}.price_adjustments", [{"position": n, "price": 1} for n in (1, 2, 3)]),
    (COFFEE, f"{ALLOC}.price_adjustments", None),
    (COFFEE, f"{ALLOC}.price_adjustments[0].position", 0),
    (COFFEE, f"{ALLOC}.price_adjustments[0].price", -5),
    (COFFEE, "selling_plan_groups", None),
    (COFFEE, "selling_plan_groups", "groups"),
    (COFFEE, GROUP, []),
    (COFFEE, f"{GROUP}.id", 5),
    (COFFEE, f"{GROUP}.id", ""),
    (COFFEE, f"{GROUP}.name", None),
    (COFFEE, f"{GROUP}.app_id", 5),
    (COFFEE, f"{GROUP}.app_id", ""),
    (COFFEE, f"{GROUP}.options", None),
    (COFFEE, f"{GROUP}.options", [{"name": f"o{n}", "position": n, "values": ["v"]} for n in (1, 2, 3, 4)]),
    (COFFEE, f"{GROUP}.options[0].name", ""),
    (COFFEE, f"{GROUP}.options[0].position", "1"),
    (COFFEE, f"{GROUP}.options[0].values", []),
    (COFFEE, f"{GROUP}.options[0].values", "2 weeks"),
    (COFFEE, f"{GROUP}.options[0].values[0]", 5),
    (COFFEE, f"{GROUP}.selling_plans", None),
    (COFFEE, f"{PLAN}.id", True),
    (COFFEE, f"{PLAN}.name", ""),
    (COFFEE, f"{PLAN}.description", None),
    (COFFEE, f"{PLAN}.description", "d" * 5001),
    (COFFEE, f"{PLAN}.description", "bell\x07"),
    (COFFEE, f"{PLAN}.options[0].value", None),
    (COFFEE, f"{PLAN}.options[0].position", -1),
    (COFFEE, f"{PLAN}.recurring_deliveries", "yes"),
    (
        COFFEE,
        f"{PLAN}.price_adjustments",
        [{"order_count": None, "position": n, "value_type": "percentage", "value": 5} for n in (1, 2, 3)],
    ),
    (COFFEE, f"{ADJ}.value_type", "percent"),
    (COFFEE, f"{ADJ}.value_type", None),
    (COFFEE, f"{ADJ}.value", -1),
    (COFFEE, f"{ADJ}.value", 101),
    (COFFEE, f"{ADJ}.value", 100.01),
    (COFFEE, f"{ADJ}.value", float("nan")),
    (COFFEE, f"{ADJ}.value", float("inf")),
    (COFFEE, f"{ADJ}.value", True),
    (COFFEE, f"{ADJ}.value", "10"),
    (COFFEE, f"{ADJ}.order_count", -1),
    (COFFEE, f"{ADJ}.order_count", "1"),
    (COFFEE, f"{ADJ}.order_count", False),
    (COFFEE, f"{ADJ}.position", None),
    (BOX, "bundle", "box"),
    (BOX, "bundle", []),
    (BOX, "bundle.items_count", 0),
    (BOX, "bundle.items_count", True),
    (BOX, "bundle.items_count", 6.0),
    (BOX, "bundle.discount_percentage", 101),
    (BOX, "bundle.discount_percentage", -1),
    (BOX, "bundle.discount_percentage", "10"),
    (BOX, "bundle.collections", []),
    (BOX, "bundle.collections", None),
    (BOX, COLL, "savory"),
    (BOX, f"{COLL}.id", "300001"),
    (BOX, f"{COLL}.title", ""),
    (BOX, f"{COLL}.min", -1),
    (BOX, f"{COLL}.max", 1.5),
    (BOX, f"{COLL}.products", None),
    (BOX, f"{ITEM}.id", 0),
    (BOX, f"{ITEM}.variant_id", True),
    (BOX, f"{ITEM}.title", None),
    (BOX, f"{ITEM}.price", -1),
    (BOX, f"{ITEM}.image_url", None),
    (BOX, f"{ITEM}.image_url", "http://cdn.example.com/s/crisps.png"),
    (BOX, f"{ITEM}.image_url", "HTTPS://cdn.example.com/s/crisps.png"),
    (BOX, f"{ITEM}.image_url", "//cdn.example.com/s/crisps.png"),
    (BOX, f"{ITEM}.image_url", "javascript:alert(1)"),
    (BOX, f"{ITEM}.image_url", "data:image/png;base64,AAAA"),
    (BOX, f"{ITEM}.image_url", "https://"),
    (BOX, f"{ITEM}.image_url", "https:///s/crisps.png"),
    (BOX, f"{ITEM}.image_url", "https://user:pw@cdn.example.com/s/crisps.png"),
    (BOX, f"{ITEM}.image_url", "https://cdn.example.com@evil.example/x.png"),
    (BOX, f"{ITEM}.image_url", "https://cdn.example.com/a b.png"),
    (BOX, f"{ITEM}.image_url", 'https://cdn.example.com/x.png"onerror="alert(1)'),
    (BOX, f"{ITEM}.image_url", "https://cdn.example.com\\@evil.example/x.png"),
    (BOX, f"{ITEM}.image_url", "https://cdn.example.com/x.png\n"),
    (BOX, f"{ITEM}.image_url", "https://localhost/x.png"),
    (BOX, f"{ITEM}.image_url", "https://127.0.0.1/x.png"),
    (BOX, f"{ITEM}.image_url", "https://[::1]/x.png"),
    (BOX, f"{ITEM}.image_url", "https://cdn.example.com:99999/x.png"),
    (BOX, f"{ITEM}.image_url", "https://cdn.example.com:http/x.png"),
    (BOX, f"{ITEM}.image_url", "https://exa_mple.com/x.png"),
    (BOX, f"{ITEM}.image_url", "https://-cdn.example.com/x.png"),
    (BOX, f"{ITEM}.image_url", "https://cdn.example.com./x.png"),
    (BOX, f"{ITEM}.image_url", "https://cdn%2eexample.com/x.png"),
    (BOX, f"{ITEM}.image_url", "https://b\u00fccher.example/x.png"),
    (BOX, f"{ITEM}.image_url", "https://cdn.example.com/" + "a" * 2000),
]


@pytest.mark.parametrize(
    ("stem", "path", "value"), BAD_PRODUCT_VALUES, ids=[case_id(p, v) for _, p, v in BAD_PRODUCT_VALUES]
)
def test_product_rule_names_the_path(stem: str, path: str, value: Any) -> None:
    product_id = load_product(stem)["id"]
    doc = mutate(load_product(stem), path, value)
    assert set(failures(lambda: validate_product(doc, product_id))) == {path}


REQUIRED_PRODUCT_MEMBERS = [
    (COFFEE, path)
    for path in (
        "id",
        "title",
        "handle",
        "requires_selling_plan",
        "variants",
        "selling_plan_groups",
        "variants[1].id",
        "variants[1].title",
        "variants[1].price",
        "variants[1].compare_at_price",
        "variants[1].available",
        "variants[1].selling_plan_allocations",
        f"{ALLOC}.selling_plan_group_id",
        f"{ALLOC}.selling_plan_id",
        f"{ALLOC}.price",
        f"{ALLOC}.compare_at_price",
        f"{ALLOC}.per_delivery_price",
        f"{ALLOC}.price_adjustments",
        f"{ALLOC}.price_adjustments[0].position",
        f"{ALLOC}.price_adjustments[0].price",
        f"{GROUP}.id",
        f"{GROUP}.name",
        f"{GROUP}.app_id",
        f"{GROUP}.options",
        f"{GROUP}.options[0].name",
        f"{GROUP}.options[0].position",
        f"{GROUP}.options[0].values",
        f"{GROUP}.selling_plans",
        f"{PLAN}.id",
        f"{PLAN}.name",
        f"{PLAN}.description",
        f"{PLAN}.options",
        f"{PLAN}.options[0].name",
        f"{PLAN}.options[0].position",
        f"{PLAN}.options[0].value",
        f"{PLAN}.recurring_deliveries",
        f"{PLAN}.price_adjustments",
        f"{ADJ}.order_count",
        f"{ADJ}.position",
        f"{ADJ}.value_type",
        f"{ADJ}.value",
    )
] + [
    (BOX, path)
    for path in (
        "bundle.items_count",
        "bundle.discount_percentage",
        "bundle.collections",
        f"{COLL}.id",
        f"{COLL}.title",
        f"{COLL}.min",
        f"{COLL}.max",
        f"{COLL}.products",
        f"{ITEM}.id",
        f"{ITEM}.variant_id",
        f"{ITEM}.title",
        f"{ITEM}.price",
        f"{ITEM}.image_url",
    )
]


@pytest.mark.parametrize(
    ("stem", "path"), REQUIRED_PRODUCT_MEMBERS, ids=[p for _, p in REQUIRED_PRODUCT_MEMBERS]
)
def test_missing_product_member_names_the_path(stem: str, path: str) -> None:
    doc = mutate(load_product(stem), path, DELETE)
    product_id = load_product(stem)["id"]
    assert failures(lambda: validate_product(doc, product_id)) == {path: "is required"}


def _add_second_group(doc: dict[str, Any]) -> None:
    group = copy.deepcopy(doc["selling_plan_groups"][0])
    group["id"] = "b" * 40
    for offset, plan in enumerate(group["selling_plans"]):
        plan["id"] = 690009001 + offset
    doc["selling_plan_groups"].append(group)


def _duplicate_plan_id_in_group(doc: dict[str, Any]) -> None:
    plans = doc["selling_plan_groups"][0]["selling_plans"]
    gone = plans[1]["id"]
    plans[1]["id"] = plans[0]["id"]
    for variant in doc["variants"]:
        allocations = variant["selling_plan_allocations"]
        allocations[:] = [a for a in allocations if a["selling_plan_id"] != gone]


def _copies(path: str, count: int, vary: str | None = None) -> Callable[[dict[str, Any]], None]:
    """Replace the list at ``path`` with ``count`` copies of its first item (``vary`` made unique)."""

    def apply(doc: dict[str, Any]) -> None:
        target: Any = doc
        for name, index in _SEGMENT.findall(path):
            target = target[int(index) if index else name]
        target[:] = [copy.deepcopy(target[0]) for _ in range(count)]
        if vary:
            for number, item in enumerate(target, start=1):
                item[vary] = number

    return apply


CROSS_FIELD_CASES = [
    ("id-differs-from-url", COFFEE, lambda d: mutate(d, "id", d["id"] + 1), "id"),
    (
        "unknown-group",
        COFFEE,
        lambda d: mutate(d, f"{ALLOC}.selling_plan_group_id", "0" * 40),
        f"{ALLOC}.selling_plan_group_id",
    ),
    (
        "unknown-plan",
        COFFEE,
        lambda d: mutate(d, f"{ALLOC}.selling_plan_id", 690009999),
        f"{ALLOC}.selling_plan_id",
    ),
    (
        "plan-of-another-group",
        COFFEE,
        lambda d: (_add_second_group(d), mutate(d, f"{ALLOC}.selling_plan_id", 690009001)),
        f"{ALLOC}.selling_plan_id",
    ),
    (
        "plan-allocated-twice",
        COFFEE,
        lambda d: mutate(d, "variants[0].selling_plan_allocations[1].selling_plan_id", 690001001),
        "variants[0].selling_plan_allocations[1].selling_plan_id",
    ),
    (
        "duplicate-variant-id",
        COFFEE,
        lambda d: mutate(d, "variants[2].id", d["variants"][0]["id"]),
        "variants[2].id",
    ),
    (
        "duplicate-group-id",
        COFFEE,
        lambda d: (_add_second_group(d), mutate(d, "selling_plan_groups[1].id", FIRST_GROUP_ID)),
        "selling_plan_groups[1].id",
    ),
    (
        "duplicate-plan-id-across-groups",
        COFFEE,
        lambda d: (_add_second_group(d), mutate(d, "selling_plan_groups[1].selling_plans[2].id", 690001001)),
        "selling_plan_groups[1].selling_plans[2].id",
    ),
    ("duplicate-plan-id-in-group", COFFEE, _duplicate_plan_id_in_group, f"{GROUP}.selling_plans[1].id"),
    ("collection-min-above-max", BOX, lambda d: mutate(d, f"{COLL}.min", 5), f"{COLL}.max"),
    ("box-beyond-the-maximums", BOX, lambda d: mutate(d, "bundle.items_count", 9), "bundle.items_count"),
    ("box-below-the-minimums", BOX, lambda d: mutate(d, "bundle.items_count", 2), "bundle.items_count"),
    (
        "duplicate-collection-id",
        BOX,
        lambda d: mutate(d, "bundle.collections[1].id", d["bundle"]["collections"][0]["id"]),
        "bundle.collections[1].id",
    ),
    ("251-variants", COFFEE, _copies("variants", 251, vary="id"), "variants"),
    ("51-groups", COFFEE, _copies("selling_plan_groups", 51), "selling_plan_groups"),
    ("101-plans", COFFEE, _copies(f"{GROUP}.selling_plans", 101, vary="id"), f"{GROUP}.selling_plans"),
    ("101-option-values", COFFEE, _copies(f"{GROUP}.options[0].values", 101), f"{GROUP}.options[0].values"),
    ("4-plan-options", COFFEE, _copies(f"{PLAN}.options", 4, vary="position"), f"{PLAN}.options"),
    ("51-collections", BOX, _copies("bundle.collections", 51, vary="id"), "bundle.collections"),
    ("251-bundle-products", BOX, _copies(f"{COLL}.products", 251, vary="id"), f"{COLL}.products"),
]


@pytest.mark.parametrize(
    ("stem", "change", "path"), [c[1:] for c in CROSS_FIELD_CASES], ids=[c[0] for c in CROSS_FIELD_CASES]
)
def test_cross_field_rule_names_the_path(stem: str, change: Callable[[Any], Any], path: str) -> None:
    product_id = load_product(stem)["id"]
    doc = load_product(stem)
    change(doc)
    assert set(failures(lambda: validate_product(doc, product_id))) == {path}


def test_allocation_references_are_checked_only_when_groups_are_readable() -> None:
    # With the group's id unreadable, "no such group" would be a guess; only the real error shows.
    doc = mutate(load_product(COFFEE), f"{GROUP}.id", None)
    mutate(doc, f"{ALLOC}.selling_plan_id", 690009999)
    assert set(failures(lambda: validate_product(doc, doc["id"]))) == {f"{GROUP}.id"}


def test_all_product_errors_are_collected_at_once() -> None:
    doc = load_product(COFFEE)
    mutate(doc, "title", "")
    mutate(doc, "variants[2].price", -1)
    mutate(doc, f"{ADJ}.value_type", "free")
    mutate(doc, "variants[1].selling_plan_allocations[2].selling_plan_id", 690009999)
    mutate(doc, "variants[1].available", "no")
    fields = failures(lambda: validate_product(doc, doc["id"] + 1))
    assert set(fields) == {
        "id",
        "title",
        "variants[2].price",
        f"{ADJ}.value_type",
        "variants[1].selling_plan_allocations[2].selling_plan_id",
        "variants[1].available",
    }


@pytest.mark.parametrize("body", [None, [], "product", 5, True], ids=repr)
def test_product_body_must_be_an_object(body: Any) -> None:
    assert set(failures(lambda: validate_product(body, 1))) == {ROOT_PATH}


# -- shop --------------------------------------------------------------------------------

SHOP = {
    "name": "Demo Coffee Co.",
    "currency": "USD",
    "money_format": "${{amount}}",
    "default_locale": "en",
    "locales": ["en", "fr"],
}


def shop_with(**changes: Any) -> dict[str, Any]:
    return {**copy.deepcopy(SHOP), **changes}


GOOD_SHOPS = [
    shop_with(),
    shop_with(name="\u9152\u8535", currency="JPY", money_format="\u00a5{{amount_no_decimals}}"),
    shop_with(money_format="{{amount_with_comma_separator}} \u20ac", default_locale="de", locales=["de"]),
    shop_with(money_format="<span class=money>${{ amount }}</span>"),
    shop_with(money_format="{{amount}} / {{amount_no_decimals}}"),
    shop_with(name="n" * 200, money_format="m" * 88 + "{{amount}}"),
    shop_with(default_locale="fr-CA", locales=["en-US", "fr-CA"]),
    shop_with(locales=["en"] + [f"{a}{b}" for a in "bcd" for b in "abcdefghijklmnopqrstuvwxyz"][:19]),
] + [shop_with(money_format=f"{{{{ {name} }}}}") for name in MONEY_PLACEHOLDERS]


@pytest.mark.parametrize("shop", GOOD_SHOPS, ids=lambda s: ascii(s["money_format"])[:40])
def test_shop_accepts_and_round_trips(shop: dict[str, Any]) -> None:
    assert validate_shop(with_extras(shop)) == shop


BAD_SHOP_VALUES = [
    ("name", ""),
    ("name", "   "),
    ("name", "n" * 201),
    ("name", 5),
    ("name", None),
    ("name", "Demo\x00"),
    ("currency", "usd"),
    ("currency", "US"),
    ("currency", "USDD"),
    ("currency", "US1"),
    ("currency", "USD\n"),
    ("currency", 840),
    ("money_format", "$"),
    ("money_format", ""),
    ("money_format", "${amount}"),
    ("money_format", "{{ amount_foo }}"),
    ("money_format", "{{amount}} {{bogus}}"),
    ("money_format", "m" * 91 + "{{amount}}"),
    ("money_format", 5),
    ("money_format", "${{amount}}\x00"),
    ("default_locale", "EN"),
    ("default_locale", "en_US"),
    ("default_locale", "en-us"),
    ("default_locale", "eng"),
    ("default_locale", "en\n"),
    ("default_locale", None),
    ("locales", []),
    ("locales", "en"),
    ("locales", None),
    ("locales", [f"{a}{b}" for a in "ef" for b in "abcdefghijklmnopqrstuvwxyz"][:20] + ["en"]),
]


@pytest.mark.parametrize(("field", "value"), BAD_SHOP_VALUES, ids=[case_id(f, v) for f, v in BAD_SHOP_VALUES])
def test_shop_rule_names_the_field(field: str, value: Any) -> None:
    assert set(failures(lambda: validate_shop(shop_with(**{field: value})))) == {field}


@pytest.mark.parametrize(
    ("changes", "path"),
    [
        ({"locales": ["en", "fr", "en"]}, "locales[2]"),
        ({"locales": ["en", "xx-yy"]}, "locales[1]"),
        ({"locales": ["en", 5]}, "locales[1]"),
        ({"locales": ["fr", "de"]}, "locales"),
        ({"default_locale": "de"}, "locales"),
    ],
    ids=["duplicate", "malformed", "not-a-string", "default-missing", "default-not-listed"],
)
def test_shop_locales_rules(changes: dict[str, Any], path: str) -> None:
    assert set(failures(lambda: validate_shop(shop_with(**changes)))) == {path}


def test_shop_unknown_money_placeholder_is_named() -> None:
    fields = failures(lambda: validate_shop(shop_with(money_format="{{amount}} {{bogus}}")))
    assert "bogus" in fields["money_format"]


def test_shop_collects_all_errors_including_missing_fields() -> None:
    assert set(failures(lambda: validate_shop({"extra": 1}))) == set(SHOP)
    body = shop_with(name="", currency="usd", locales=[])
    assert set(failures(lambda: validate_shop(body))) == {"name", "currency", "locales"}


@pytest.mark.parametrize("body", [None, [], "shop"], ids=repr)
def test_shop_body_must_be_an_object(body: Any) -> None:
    assert set(failures(lambda: validate_shop(body))) == {ROOT_PATH}


# -- widget settings: accepted values and the merge --------------------------------------


@pytest.mark.parametrize("kind", KINDS)
def test_empty_settings_give_the_defaults(kind: str) -> None:
    assert validate_widget_settings(kind, {"settings": {}}) == default_settings(kind)


@pytest.mark.parametrize("kind", KINDS)
def test_defaults_as_a_full_body_validate(kind: str) -> None:
    body = {"settings": default_settings(kind), "ignored": True}
    assert validate_widget_settings(kind, body, base=default_settings(kind)) == default_settings(kind)


GOOD_SETTINGS = [
    ("subscription", {"first_option": "subscription", "default_selection": "onetime"}),
    ("subscription", {"template": "checkbox", "default_selection": "subscription"}),
    ("subscription", {"template": "button_group", "show_details": False}),
    ("subscription", {"learn_more_url": "https://shop.example.com/pages/subscriptions?from=widget#faq"}),
    ("subscription", {"learn_more_url": None}),
    ("subscription", {"labels": {"subscribe": "Save {discount} <b>now</b> & \"forever\""}}),
    ("subscription", {"labels": {"subscribe": "No discount mentioned"}}),
    ("bundle", {"labels": {"choose_range": "{max} at most, {min} at least, {min} again"}}),
    ("bundle", {"colors": {"accent": "#ABC", "background": "#a1B2c3", "text": "#000", "border": "#FFFFFF"}}),
    ("bundle", {"enabled": False}),
    ("loyalty", {"points_per_unit": 0.5, "signup_bonus": 1_000_000, "join_url": "https://example.com"}),
    ("loyalty", {"points_per_unit": 1000, "signup_bonus": 0}),
    (
        "loyalty",
        {
            "tiers": [
                {"name": "Bronze", "min_points": 0, "perks": []},
                {"name": "Silver", "min_points": 500, "perks": ["Free shipping", "10% off <sale> items"]},
                {"name": "Gold", "min_points": 2000, "perks": [f"Perk {n}" for n in range(10)]},
            ]
        },
    ),
    ("loyalty", {"translations": {"fr": {"earn": "Gagnez {points} points par {amount}"}, "fr-CA": {}}}),
]


@pytest.mark.parametrize(
    ("kind", "settings"), GOOD_SETTINGS, ids=[f"{k}-{ascii(s)[:40]}" for k, s in GOOD_SETTINGS]
)
def test_settings_accepts(kind: str, settings: dict[str, Any]) -> None:
    result = validate_widget_settings(kind, {"settings": copy.deepcopy(settings)})
    expected = default_settings(kind)
    for key, value in settings.items():
        expected[key] = {**expected[key], **value} if key in ("colors", "labels") else value
    assert result == expected


def test_tier_perks_default_to_empty() -> None:
    body = {"settings": {"tiers": [{"name": "Bronze", "min_points": 0}]}}
    result = validate_widget_settings("loyalty", body)
    assert result["tiers"] == [{"name": "Bronze", "min_points": 0, "perks": []}]
    result["tiers"][0]["perks"].append("mutated")
    again = validate_widget_settings("loyalty", body)
    assert again["tiers"][0]["perks"] == []


@pytest.mark.parametrize(
    ("kind", "key"),
    [(kind, key) for kind in KINDS for key in LABELS[kind]],
    ids=[f"{kind}.{key}" for kind in KINDS for key in LABELS[kind]],
)
def test_every_label_takes_exactly_its_placeholders_and_length(kind: str, key: str) -> None:
    allowed = LABELS[kind][key][1]
    limit = LONG_LABELS.get(key, LABEL_MAX)
    text = "Text " + " ".join(f"{{{name}}}" for name in sorted(allowed))
    for where in ("labels", "translations"):
        settings = {"labels": {key: text}} if where == "labels" else {"translations": {"fr": {key: text}}}
        result = validate_widget_settings(kind, {"settings": settings})
        assert (result["labels"][key] if where == "labels" else result["translations"]["fr"][key]) == text
    longest = "a" * limit
    assert validate_widget_settings(kind, {"settings": {"labels": {key: longest}}})["labels"][key] == longest

    path = f"settings.labels.{key}"
    too_long = {"settings": {"labels": {key: longest + "a"}}}
    assert set(failures(lambda: validate_widget_settings(kind, too_long))) == {path}
    unknown = {"settings": {"labels": {key: "Hello {nope}"}}}
    assert "{nope}" in failures(lambda: validate_widget_settings(kind, unknown))[path]
    in_translation = {"settings": {"translations": {"de": {key: "Hallo {nope}"}}}}
    translation_path = f"settings.translations.de.{key}"
    assert set(failures(lambda: validate_widget_settings(kind, in_translation))) == {translation_path}


def test_doubled_braces_get_their_own_reason() -> None:
    # Merchants used to Liquid or money formats write {{discount}}; say so rather than "unbalanced".
    body = {"settings": {"labels": {"subscribe": "Save {{discount}}"}}}
    fields = failures(lambda: validate_widget_settings("subscription", body))
    assert "{{" in fields["settings.labels.subscribe"]


def test_partial_colors_keep_the_other_colors() -> None:
    result = validate_widget_settings("bundle", {"settings": {"colors": {"accent": "#ff0000"}}})
    assert result["colors"] == {**default_settings("bundle")["colors"], "accent": "#ff0000"}


def test_merge_onto_the_draft_keeps_its_values() -> None:
    defaults = default_settings("subscription")
    first = {"template": "checkbox", "labels": {"onetime": "Just once"}, "colors": {"text": "#333"}}
    draft = validate_widget_settings("subscription", {"settings": first})
    second = {"labels": {"learn_more": "More"}, "colors": {"border": "#eee"}}
    result = validate_widget_settings("subscription", {"settings": second}, base=draft)
    assert result["template"] == "checkbox"
    assert result["labels"] == {**defaults["labels"], "onetime": "Just once", "learn_more": "More"}
    assert result["colors"] == {**defaults["colors"], "text": "#333", "border": "#eee"}


def test_translations_merge_by_locale_and_key_and_null_removes() -> None:
    first = {"fr": {"title": "R\u00e9compenses", "join": "Rejoindre"}, "de": {"join": "Los"}}
    base = validate_widget_settings("loyalty", {"settings": {"translations": first}})
    french = {"join": None, "signup": "Inscrivez-vous: {bonus} points"}
    patch = {"translations": {"fr": french, "de": None, "it": {}}}
    result = validate_widget_settings("loyalty", {"settings": patch}, base=base)
    assert result["translations"] == {
        "fr": {"title": "R\u00e9compenses", "signup": "Inscrivez-vous: {bonus} points"},
        "it": {},
    }


def test_lists_replace_rather_than_append() -> None:
    base = validate_widget_settings(
        "loyalty", {"settings": {"tiers": [{"name": "A", "min_points": 0}, {"name": "B", "min_points": 10}]}}
    )
    body = {"settings": {"tiers": [{"name": "C", "min_points": 5}]}}
    result = validate_widget_settings("loyalty", body, base=base)
    assert result["tiers"] == [{"name": "C", "min_points": 5, "perks": []}]


def test_merge_never_changes_its_inputs_or_shares_with_them() -> None:
    base = validate_widget_settings("loyalty", {"settings": {"tiers": [{"name": "A", "min_points": 0}]}})
    body = {"settings": {"colors": {"accent": "#000"}, "translations": {"fr": {"join": "Go"}}}}
    base_before, body_before = copy.deepcopy(base), copy.deepcopy(body)
    result = validate_widget_settings("loyalty", body, base=base)
    assert base == base_before and body == body_before
    result["colors"]["text"] = "#111"
    result["tiers"][0]["perks"].append("x")
    result["translations"]["fr"]["title"] = "x"
    assert base == base_before and body == body_before


def test_stale_keys_in_the_draft_are_dropped() -> None:
    draft = default_settings("bundle")
    draft["retired_setting"] = 1
    draft["colors"]["shadow"] = "#000"
    draft["labels"]["retired_label"] = "old"
    draft["translations"] = {"fr": {"title": "Votre bo\u00eete", "retired_label": "vieux"}}
    result = validate_widget_settings("bundle", {"settings": {}}, base=draft)
    expected = default_settings("bundle")
    expected["translations"] = {"fr": {"title": "Votre bo\u00eete"}}
    assert result == expected


def test_an_invalid_draft_value_is_reported_until_replaced() -> None:
    draft = default_settings("subscription")
    draft["learn_more_url"] = "http://old.example.com"
    assert set(failures(lambda: validate_widget_settings("subscription", {"settings": {}}, base=draft))) == {
        "settings.learn_more_url"
    }
    fixed = {"settings": {"learn_more_url": "https://new.example.com"}}
    assert validate_widget_settings("subscription", fixed, base=draft)["learn_more_url"] == "https://new.example.com"


def test_unknown_kind_is_a_programming_error() -> None:
    with pytest.raises(ValueError):
        validate_widget_settings("popup", {"settings": {}})


# -- widget settings: each rule, with the exact path it reports --------------------------


TIER = "settings.tiers[0]"


def _bad_settings_cases() -> list[Any]:
    cases: list[tuple[str, dict[str, Any], str]] = []
    for kind in KINDS:
        key = next(iter(LABELS[kind]))
        cases += [
            (kind, {"enabled": "yes"}, "settings.enabled"),
            (kind, {"enabled": 1}, "settings.enabled"),
            (kind, {"enabled": None}, "settings.enabled"),
            (kind, {"colors": "#000"}, "settings.colors"),
            (kind, {"colors": None}, "settings.colors"),
            (kind, {"colors": {"shadow": "#000"}}, "settings.colors.shadow"),
            (kind, {"colors": {"accent": None}}, "settings.colors.accent"),
            (kind, {"bogus": 1}, "settings.bogus"),
            (kind, {"Enabled": True}, "settings.Enabled"),
            (kind, {"labels": []}, "settings.labels"),
            (kind, {"labels": {"nope": "x"}}, "settings.labels.nope"),
            (kind, {"labels": {"a.b": "x"}}, 'settings.labels["a.b"]'),
            (kind, {"translations": []}, "settings.translations"),
            (kind, {"translations": None}, "settings.translations"),
            (kind, {"translations": {"FR": {}}}, "settings.translations.FR"),
            (kind, {"translations": {"fr_CA": {}}}, "settings.translations.fr_CA"),
            (kind, {"translations": {"fr-ca": {}}}, "settings.translations.fr-ca"),
            (kind, {"translations": {"fr\n": {}}}, 'settings.translations["fr\\n"]'),
            (kind, {"translations": {"fr": "x"}}, "settings.translations.fr"),
            (kind, {"translations": {"fr": {"nope": "x"}}}, "settings.translations.fr.nope"),
            (kind, {"translations": {"fr": {key: ""}}}, f"settings.translations.fr.{key}"),
            (kind, {"translations": {f"a{b}": {} for b in "abcdefghijklmnopqrstu"}}, "settings.translations"),
        ]
        for value in ("", "   ", 5, None, ["x"], "a\x00b", "two\nlines", "tab\there", "sep\u2028", "\udc00",
                      "{nope}", "{{x}}", "{", "}", "a } b { c", "{ x }", "{}", "{1x}"):
            cases.append((kind, {"labels": {key: value}}, f"settings.labels.{key}"))
    for name in ("colors.accent", "colors.background", "colors.text", "colors.border"):
        for value in ("red", "#12345", "#1234567", "#ggg", "#fff\n", "fff", "#ffff", 0xFFFFFF):
            cases.append(("bundle", {"colors": {name.split(".")[1]: value}}, f"settings.{name}"))
    cases += [
        ("bundle", {"template": "radio_group"}, "settings.template"),
        ("bundle", {"tiers": []}, "settings.tiers"),
        ("subscription", {"tiers": []}, "settings.tiers"),
        ("loyalty", {"template": "radio_group"}, "settings.template"),
        ("subscription", {"template": "dropdown"}, "settings.template"),
        ("subscription", {"template": None}, "settings.template"),
        ("subscription", {"first_option": "subscribe"}, "settings.first_option"),
        ("subscription", {"first_option": "ONETIME"}, "settings.first_option"),
        ("subscription", {"default_selection": None}, "settings.default_selection"),
        ("subscription", {"default_selection": 1}, "settings.default_selection"),
        ("subscription", {"show_details": "true"}, "settings.show_details"),
        ("subscription", {"labels": {"subscribe": "Save {min}"}}, "settings.labels.subscribe"),
        ("subscription", {"labels": {"onetime": "Once {discount}"}}, "settings.labels.onetime"),
        ("bundle", {"labels": {"choose_range": "{discount}"}}, "settings.labels.choose_range"),
        ("loyalty", {"labels": {"title": "{points}"}}, "settings.labels.title"),
        ("loyalty", {"labels": {"earn": "{points} per {bonus}"}}, "settings.labels.earn"),
        ("loyalty", {"points_per_unit": 0}, "settings.points_per_unit"),
        ("loyalty", {"points_per_unit": -1}, "settings.points_per_unit"),
        ("loyalty", {"points_per_unit": 1000.5}, "settings.points_per_unit"),
        ("loyalty", {"points_per_unit": True}, "settings.points_per_unit"),
        ("loyalty", {"points_per_unit": "1"}, "settings.points_per_unit"),
        ("loyalty", {"points_per_unit": float("nan")}, "settings.points_per_unit"),
        ("loyalty", {"points_per_unit": None}, "settings.points_per_unit"),
        ("loyalty", {"signup_bonus": -1}, "settings.signup_bonus"),
        ("loyalty", {"signup_bonus": 1_000_001}, "settings.signup_bonus"),
        ("loyalty", {"signup_bonus": 1.5}, "settings.signup_bonus"),
        ("loyalty", {"signup_bonus": True}, "settings.signup_bonus"),
        ("loyalty", {"join_url": "http://example.com/join"}, "settings.join_url"),
        ("loyalty", {"join_url": ""}, "settings.join_url"),
        ("loyalty", {"tiers": None}, "settings.tiers"),
        ("loyalty", {"tiers": {"name": "A"}}, "settings.tiers"),
        ("loyalty", {"tiers": [{"name": f"T{n}", "min_points": n} for n in range(11)]}, "settings.tiers"),
        ("loyalty", {"tiers": ["Gold"]}, "settings.tiers[0]"),
        ("loyalty", {"tiers": [{"min_points": 0}]}, "settings.tiers[0].name"),
        ("loyalty", {"tiers": [{"name": "", "min_points": 0}]}, "settings.tiers[0].name"),
        ("loyalty", {"tiers": [{"name": "{x}", "min_points": 0}]}, "settings.tiers[0].name"),
        ("loyalty", {"tiers": [{"name": "n" * 201, "min_points": 0}]}, "settings.tiers[0].name"),
        ("loyalty", {"tiers": [{"name": "A"}]}, "settings.tiers[0].min_points"),
        ("loyalty", {"tiers": [{"name": "A", "min_points": -1}]}, "settings.tiers[0].min_points"),
        ("loyalty", {"tiers": [{"name": "A", "min_points": True}]}, "settings.tiers[0].min_points"),
        ("loyalty", {"tiers": [{"name": "A", "min_points": 0, "perks": "x"}]}, "settings.tiers[0].perks"),
        (
            "loyalty",
            {"tiers": [{"name": "A", "min_points": 0, "perks": [f"p{n}" for n in range(11)]}]},
            "settings.tiers[0].perks",
        ),
        ("loyalty", {"tiers": [{"name": "A", "min_points": 0, "perks": ["", "b"]}]}, f"{TIER}.perks[0]"),
        ("loyalty", {"tiers": [{"name": "A", "min_points": 0, "perks": ["a", "\n"]}]}, f"{TIER}.perks[1]"),
        ("loyalty", {"tiers": [{"name": "A", "min_points": 0, "bonus": 5}]}, "settings.tiers[0].bonus"),
        (
            "loyalty",
            {"tiers": [{"name": "A", "min_points": 100}, {"name": "B", "min_points": 100}]},
            "settings.tiers[1].min_points",
        ),
        (
            "loyalty",
            {"tiers": [{"name": n, "min_points": p} for n, p in (("A", 0), ("B", 50), ("C", 10))]},
            "settings.tiers[2].min_points",
        ),
    ]
    for url in (
        "http://example.com",
        "HTTPS://example.com",
        "ftp://example.com",
        "javascript:alert(1)",
        "//example.com",
        "https://",
        "https://user:pass@example.com",
        "https://user@example.com",
        "https://example",
        "https://exa mple.com",
        "https://example.com/\x00",
        "https://example.com/<script>",
        "https://example.com/" + "a" * 1981,
        5,
        {},
    ):
        cases.append(("subscription", {"learn_more_url": url}, "settings.learn_more_url"))
    return [pytest.param(kind, body, path, id=f"{kind}-{ascii(body)[:60]}") for kind, body, path in cases]


@pytest.mark.parametrize(("kind", "settings", "path"), _bad_settings_cases())
def test_settings_rule_names_the_path(kind: str, settings: dict[str, Any], path: str) -> None:
    assert set(failures(lambda: validate_widget_settings(kind, {"settings": settings}))) == {path}


def test_learn_more_url_of_exactly_2000_characters_is_accepted() -> None:
    url = "https://example.com/" + "a" * 1980
    assert len(url) == 2000
    result = validate_widget_settings("subscription", {"settings": {"learn_more_url": url}})
    assert result["learn_more_url"] == url


def test_all_settings_errors_are_collected_at_once() -> None:
    settings = {
        "enabled": "no",
        "colours": {},
        "colors": {"accent": "red", "glow": "#fff"},
        "labels": {"earn": "{points} {oops}", "join": ""},
        "translations": {"EN": {}, "fr": {"title": "a\x00"}},
        "points_per_unit": 0,
        "tiers": [{"name": "B", "min_points": 9}, {"name": "A", "min_points": 3}],
    }
    assert set(failures(lambda: validate_widget_settings("loyalty", {"settings": settings}))) == {
        "settings.enabled",
        "settings.colours",
        "settings.colors.accent",
        "settings.colors.glow",
        "settings.labels.earn",
        "settings.labels.join",
        "settings.translations.EN",
        "settings.translations.fr.title",
        "settings.points_per_unit",
        "settings.tiers[1].min_points",
    }


@pytest.mark.parametrize(
    ("body", "path"),
    [
        (None, ROOT_PATH),
        ([], ROOT_PATH),
        ({}, "settings"),
        ({"setting": {}}, "settings"),
        ({"settings": []}, "settings"),
        ({"settings": None}, "settings"),
    ],
    ids=repr,
)
def test_settings_body_shape(body: Any, path: str) -> None:
    assert set(failures(lambda: validate_widget_settings("bundle", body))) == {path}


# -- rollback, product ids, shop domains, locales ----------------------------------------


@pytest.mark.parametrize("version", [1, 7, MAX_ID])
def test_rollback_returns_the_version(version: int) -> None:
    assert validate_rollback({"version": version, "note": "ignored"}) == version


@pytest.mark.parametrize(
    ("body", "path"),
    [
        ({"version": 0}, "version"),
        ({"version": -1}, "version"),
        ({"version": True}, "version"),
        ({"version": "3"}, "version"),
        ({"version": 3.0}, "version"),
        ({"version": None}, "version"),
        ({"version": MAX_ID + 1}, "version"),
        ({}, "version"),
        ([], ROOT_PATH),
        (None, ROOT_PATH),
    ],
    ids=repr,
)
def test_rollback_rejects(body: Any, path: str) -> None:
    assert set(failures(lambda: validate_rollback(body))) == {path}


@pytest.mark.parametrize(
    ("text", "expected"),
    [("1", 1), ("7001000000001", 7001000000001), ("0", 0), ("0042", 42), ("9" * 20, 10**20 - 1)],
)
def test_parse_product_id(text: str, expected: int) -> None:
    assert parse_product_id(text) == expected


@pytest.mark.parametrize(
    "text",
    ["", "+1", "-1", " 1", "1 ", "1\n", "1_000", "1.0", "0x1f", "1e3", "\u0661\u0662", "\uff11", "9" * 21]
    + [None],
    ids=ascii,
)
def test_parse_product_id_rejects(text: Any) -> None:
    with pytest.raises(ValueError):
        parse_product_id(text)


@pytest.mark.parametrize(
    "text",
    ["a.myshopify.com", "demo-coffee.myshopify.com", "0-shop.myshopify.com", "s" * 61 + ".myshopify.com"],
)
def test_valid_shop_domain(text: str) -> None:
    assert valid_shop_domain(text)


@pytest.mark.parametrize(
    "text",
    [
        "",
        "Demo.myshopify.com",
        "demo.MYSHOPIFY.com",
        "demo.myshopify.com\n",
        "demo.myshopify.com.",
        " demo.myshopify.com",
        "-demo.myshopify.com",
        "demo.myshopify.com.evil.com",
        "demo.myshopifyXcom",
        "demoxmyshopify.com",
        "demo%2e.myshopify.com",
        "de_mo.myshopify.com",
        "sub.demo.myshopify.com",
        "s" * 62 + ".myshopify.com",
        "myshopify.com",
        ".myshopify.com",
        "d\u0117mo.myshopify.com",
        None,
        5,
    ],
    ids=ascii,
)
def test_invalid_shop_domain(text: Any) -> None:
    assert not valid_shop_domain(text)


@pytest.mark.parametrize("text", ["en", "fr-CA", "ja", "pt-BR"])
def test_valid_locale(text: str) -> None:
    assert valid_locale(text)


@pytest.mark.parametrize(
    "text",
    ["", "EN", "en-us", "en_US", "eng", "en-USA", "en\n", "fr-CA\n", " en", "\u00e9n", "e", None, 1],
    ids=ascii,
)
def test_invalid_locale(text: Any) -> None:
    assert not valid_locale(text)


def test_validation_failed_carries_its_fields() -> None:
    error = ValidationFailed({"a.b": "why", "c[0]": "because"})
    assert error.fields == {"a.b": "why", "c[0]": "because"}
    assert "a.b" in str(error) and "c[0]" in str(error)
