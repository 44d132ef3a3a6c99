"""apply_products_update: Admin REST payloads merged into stored documents, plan prices recomputed."""

from __future__ import annotations

import copy
from typing import Any

import pytest

from storefront import validation
from storefront.shopify.products import adjusted_price, apply_products_update
from storefront.validation import ValidationFailed
from tests.conftest import load_fixture

WEBHOOK = load_fixture("shopify/webhook-products-update.json")


def stored(name: str) -> dict[str, Any]:
    document = load_fixture(f"products/{name}.json")
    return validation.validate_product(document, document["id"])


def rest_variant(variant_id: int, price: str, *, quantity: int = 5, policy: str = "deny",
                 title: str = "Default Title", compare_at_price: str | None = None) -> dict[str, Any]:
    return {"id": variant_id, "title": title, "price": price, "compare_at_price": compare_at_price,
            "inventory_quantity": quantity, "inventory_policy": policy, "sku": "", "position": 1}


def payload_for(document: dict[str, Any], *variants: dict[str, Any],
                title: str | None = None) -> dict[str, Any]:
    return {"id": document["id"], "title": title or document["title"], "handle": document["handle"],
            "status": "active", "body_html": "<p>ignored</p>", "variants": list(variants)}


def plan_prices(variant: dict[str, Any]) -> dict[int, tuple[int, list[tuple[int, int]]]]:
    return {a["selling_plan_id"]: (a["price"], [(p["position"], p["price"]) for p in a["price_adjustments"]])
            for a in variant["selling_plan_allocations"]}


# -- the webhook fixture on the coffee (three percentage plans) ---------------------------------
def test_fixture_payload_reprices_retitles_and_restocks_the_coffee() -> None:
    coffee = stored("coffee-three-plans")
    before = copy.deepcopy(coffee)
    result = apply_products_update(coffee, WEBHOOK)

    assert coffee == before, "the stored document must not be modified in place"
    assert result["title"] == "Single-Origin Coffee Beans (new harvest)"
    assert [v["id"] for v in result["variants"]] == [42001000000001, 42001000000002]  # 5 kg is gone
    small, large = result["variants"]
    assert (small["price"], small["available"]) == (1900, True)
    assert (large["price"], large["available"]) == (5400, False)  # 0 in stock, policy deny
    assert plan_prices(small) == {690001001: (1710, [(1, 1710)]), 690001002: (1615, [(1, 1615)]),
                                  690001003: (1520, [(1, 1520)])}
    assert plan_prices(large) == {690001001: (4860, [(1, 4860)]), 690001002: (4590, [(1, 4590)]),
                                  690001003: (4320, [(1, 4320)])}
    for variant in result["variants"]:
        for allocation in variant["selling_plan_allocations"]:
            assert allocation["compare_at_price"] == variant["price"]
            assert allocation["per_delivery_price"] == allocation["price"]
            assert allocation["selling_plan_group_id"] == "7aceee4d7d64a3b7c0d1821b2f42834d6b8f0697"
    # What the admin API set stays as it was.
    assert result["selling_plan_groups"] == coffee["selling_plan_groups"]
    assert result["requires_selling_plan"] is coffee["requires_selling_plan"]
    assert validation.validate_product(result, result["id"]) == result


@pytest.mark.parametrize(("quantity", "policy", "available"), [
    (1, "deny", True), (0, "deny", False), (-3, "deny", False), (0, "continue", True), (-3, "continue", True),
])
def test_availability_is_stock_or_selling_on_regardless(quantity: int, policy: str, available: bool) -> None:
    coffee = stored("coffee-three-plans")
    result = apply_products_update(coffee, payload_for(
        coffee, rest_variant(42001000000001, "18.00", quantity=quantity, policy=policy)))
    assert result["variants"][0]["available"] is available


# -- each adjustment type ---------------------------------------------------------------------------
@pytest.mark.parametrize(("price", "expected"), [
    ("18.00", 1620),   # 10% off
    ("0.05", 5),       # 4.5 -> 5: half up, where banker's rounding would give 4
    ("0.15", 14),      # 13.5 -> 14
    ("0.25", 23),      # 22.5 -> 23
    ("0.00", 0),
])
def test_percentage_rounds_half_up_to_a_subunit(price: str, expected: int) -> None:
    coffee = stored("coffee-three-plans")
    result = apply_products_update(coffee, payload_for(coffee, rest_variant(42001000000001, price)))
    assert result["variants"][0]["selling_plan_allocations"][0]["price"] == expected


def test_fixed_amount_takes_the_value_off_and_never_goes_below_zero() -> None:
    razor = stored("razor-subscription-only")  # $2.00 off every 6 weeks
    result = apply_products_update(razor, payload_for(razor, rest_variant(42002000000001, "13.99")))
    assert plan_prices(result["variants"][0]) == {690002001: (1199, [(1, 1199)])}
    assert result["requires_selling_plan"] is True
    result = apply_products_update(razor, payload_for(razor, rest_variant(42002000000001, "1.50")))
    assert plan_prices(result["variants"][0]) == {690002001: (0, [(1, 0)])}


def test_price_adjustment_sets_the_price_whatever_the_variant_costs() -> None:
    tea = stored("tea-fixed-price-plan")  # a members' price of $25.00
    result = apply_products_update(tea, payload_for(tea, rest_variant(42005000000001, "40.00",
                                                                      compare_at_price="45.00")))
    variant = result["variants"][0]
    assert (variant["price"], variant["compare_at_price"]) == (4000, 4500)
    allocation = variant["selling_plan_allocations"][0]
    assert (allocation["price"], allocation["compare_at_price"], allocation["per_delivery_price"]) == (
        2500, 4000, 2500)


def test_two_adjustments_price_now_and_after_the_first_orders() -> None:
    vitamins = stored("vitamins-first-order-offer")  # 50% off the first order, then 10% off
    result = apply_products_update(vitamins, payload_for(vitamins, rest_variant(42004000000001, "32.00")))
    allocation = result["variants"][0]["selling_plan_allocations"][0]
    assert allocation["price"] == 1600
    assert allocation["per_delivery_price"] == 1600
    assert allocation["compare_at_price"] == 3200
    assert allocation["price_adjustments"] == [{"position": 1, "price": 1600}, {"position": 2, "price": 2880}]


def test_adjustments_are_applied_in_position_order_whatever_the_stored_order() -> None:
    vitamins = stored("vitamins-first-order-offer")
    adjustments = vitamins["selling_plan_groups"][0]["selling_plans"][0]["price_adjustments"]
    adjustments.reverse()
    result = apply_products_update(vitamins, payload_for(vitamins, rest_variant(42004000000001, "32.00")))
    assert result["variants"][0]["selling_plan_allocations"][0]["price"] == 1600


@pytest.mark.parametrize(("adjustment", "expected"), [
    ({"value_type": "percentage", "value": 12.5}, 1750),     # a fractional percentage, exactly
    ({"value_type": "percentage", "value": 100}, 0),
    ({"value_type": "fixed_amount", "value": 250}, 1750),
    ({"value_type": "fixed_amount", "value": 2001}, 0),
    ({"value_type": "price", "value": 1234}, 1234),
])
def test_adjusted_price(adjustment: dict[str, Any], expected: int) -> None:
    assert adjusted_price(2000, adjustment) == expected


# -- JPY: amounts stay x100 ------------------------------------------------------------------------
@pytest.mark.parametrize("price", ["3300", "3300.00"])
def test_jpy_prices_are_x100_subunits(price: str) -> None:
    sake = stored("sake-jpy")
    payload = payload_for(sake, rest_variant(42007000000001, price))
    result = apply_products_update(sake, payload, currency="JPY")
    variant = result["variants"][0]
    assert variant["price"] == 330000
    assert plan_prices(variant) == {690007001: (313500, [(1, 313500)])}  # 5% off


def test_zero_decimal_currencies_round_plan_prices_to_whole_units() -> None:
    sake = stored("sake-jpy")
    payload = payload_for(sake, rest_variant(42007000000001, "3299"))
    # 5% off 3,299 yen is 3,134.05 yen: Shopify charges 3,134 yen.
    yen = apply_products_update(sake, payload, currency="JPY")
    assert yen["variants"][0]["selling_plan_allocations"][0]["price"] == 313400
    # The same amounts in a currency with cents keep the cents.
    dollars = apply_products_update(sake, payload, currency="USD")
    assert dollars["variants"][0]["selling_plan_allocations"][0]["price"] == 313405


# -- variants added and removed ---------------------------------------------------------------------
def test_a_new_variant_gets_every_plan_of_the_groups_in_use() -> None:
    coffee = stored("coffee-three-plans")
    result = apply_products_update(coffee, payload_for(
        coffee,
        rest_variant(42001000000009, "9.00", title="100 g"),     # new, listed first
        rest_variant(42001000000001, "18.00", title="250 g"),
    ))
    new, old = result["variants"]
    assert new["title"] == "100 g"
    assert plan_prices(new) == {690001001: (810, [(1, 810)]), 690001002: (765, [(1, 765)]),
                                690001003: (720, [(1, 720)])}
    plan_order = [a["selling_plan_id"] for a in new["selling_plan_allocations"]]
    assert plan_order == [690001001, 690001002, 690001003]
    assert plan_prices(old)[690001001] == (1620, [(1, 1620)])


def test_an_existing_variant_keeps_exactly_its_own_plans() -> None:
    coffee = stored("coffee-three-plans")
    # The admin API offered the 1 kg only the monthly plan.
    coffee["variants"][1]["selling_plan_allocations"] = coffee["variants"][1]["selling_plan_allocations"][1:2]
    result = apply_products_update(coffee, WEBHOOK)
    assert list(plan_prices(result["variants"][1])) == [690001002]
    assert list(plan_prices(result["variants"][0])) == [690001001, 690001002, 690001003]


def test_a_product_without_plans_stays_without_plans() -> None:
    mug = stored("mug-no-plans")
    result = apply_products_update(mug, payload_for(
        mug, rest_variant(42003000000001, "26.00"), rest_variant(42003000000002, "30.00", title="Large")))
    prices = [(v["price"], v["selling_plan_allocations"]) for v in result["variants"]]
    assert prices == [(2600, []), (3000, [])]
    assert result["selling_plan_groups"] == []


def test_the_bundle_the_admin_api_set_is_kept() -> None:
    box = stored("snack-box-bundle")
    payload = payload_for(box, rest_variant(42006000000001, "40.00"), title="New box")
    result = apply_products_update(box, payload)
    assert result["bundle"] == box["bundle"]
    assert result["title"] == "New box"
    assert plan_prices(result["variants"][0]) == {690006001: (3600, [(1, 3600)])}


@pytest.mark.parametrize(("value", "expected"), [(None, None), ("", None), ("24.00", 2400), ("0", 0)])
def test_variant_compare_at_price(value: str | None, expected: int | None) -> None:
    coffee = stored("coffee-three-plans")
    result = apply_products_update(coffee, payload_for(
        coffee, rest_variant(42001000000001, "18.00", compare_at_price=value)))
    assert result["variants"][0]["compare_at_price"] == expected


# -- refusals ---------------------------------------------------------------------------------------
def broken(path: list[Any], value: Any) -> dict[str, Any]:
    payload = copy.deepcopy(WEBHOOK)
    target = payload
    for step in path[:-1]:
        target = target[step]
    if value is KeyError:
        del target[path[-1]]
    else:
        target[path[-1]] = value
    return payload


@pytest.mark.parametrize(("payload", "field"), [
    ([], "$"),
    (broken(["id"], "7001000000001"), "id"),
    (broken(["id"], 7001000000002), "id"),              # not the stored product
    (broken(["title"], KeyError), "title"),
    (broken(["title"], "x" * 256), "title"),            # caught by validate_product, same path
    (broken(["handle"], "has space"), "handle"),
    (broken(["variants"], []), "variants"),
    (broken(["variants"], {"0": {}}), "variants"),
    (broken(["variants", 0], "variant"), "variants[0]"),
    (broken(["variants", 0, "id"], True), "variants[0].id"),
    (broken(["variants", 1, "id"], 42001000000001), "variants[1].id"),  # duplicate
    (broken(["variants", 0, "title"], None), "variants[0].title"),
    (broken(["variants", 0, "price"], 19.0), "variants[0].price"),
    (broken(["variants", 0, "price"], "19.005"), "variants[0].price"),
    (broken(["variants", 0, "price"], "-1.00"), "variants[0].price"),
    (broken(["variants", 0, "price"], "1e3"), "variants[0].price"),
    (broken(["variants", 0, "price"], "NaN"), "variants[0].price"),
    (broken(["variants", 0, "price"], "99999999999999999.00"), "variants[0].price"),
    (broken(["variants", 0, "price"], KeyError), "variants[0].price"),
    (broken(["variants", 1, "compare_at_price"], "cheap"), "variants[1].compare_at_price"),
    (broken(["variants", 0, "inventory_quantity"], "40"), "variants[0].inventory_quantity"),
    (broken(["variants", 0, "inventory_policy"], KeyError), "variants[0].inventory_policy"),
])
def test_unusable_payloads_name_the_field(payload: Any, field: str) -> None:
    with pytest.raises(ValidationFailed) as caught:
        apply_products_update(stored("coffee-three-plans"), payload)
    assert field in caught.value.fields, caught.value.fields
