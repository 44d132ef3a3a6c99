"""The discount shown per plan, from each variant's allocation, against every fixture product."""

from __future__ import annotations

from typing import Any

import pytest

from storefront.render import build_model
from tests.render.fixture_data import EUR, JPY, PRODUCTS, USD, product, settings


def model(item: dict[str, Any], shop: dict[str, Any] = USD, **changes: Any) -> dict[str, Any]:
    return build_model("subscription", shop=shop, settings=settings("subscription", **changes), product=item,
                       locale=shop["default_locale"])


def offers(item: dict[str, Any], shop: dict[str, Any] = USD) -> dict[tuple[int, int], dict[str, Any]]:
    """(variant id, plan id) -> offer."""
    return {(variant["id"], offer["selling_plan_id"]): offer
            for variant in model(item, shop)["variants"] for offer in variant["selling_plans"]}


def test_coffee_each_plan_shows_its_own_percentage_on_every_variant():
    got = {key: (offer["discount"], offer["price_formatted"], offer["subscribe_label"])
           for key, offer in offers(PRODUCTS["coffee-three-plans"]).items()}
    assert got == {
        (42001000000001, 690001001): ("10%", "$16.20", "Subscribe & save 10%"),
        (42001000000001, 690001002): ("15%", "$15.30", "Subscribe & save 15%"),
        (42001000000001, 690001003): ("20%", "$14.40", "Subscribe & save 20%"),
        (42001000000002, 690001001): ("10%", "$48.60", "Subscribe & save 10%"),
        (42001000000002, 690001002): ("15%", "$45.90", "Subscribe & save 15%"),
        (42001000000002, 690001003): ("20%", "$43.20", "Subscribe & save 20%"),
        # 21999 -> 19799 is 10.0005%: rounded to a whole percent.
        (42001000000003, 690001001): ("10%", "$197.99", "Subscribe & save 10%"),
        (42001000000003, 690001002): ("15%", "$186.99", "Subscribe & save 15%"),
        (42001000000003, 690001003): ("20%", "$175.99", "Subscribe & save 20%"),
    }


def test_fixed_amount_plan_shows_money_off():
    offer = offers(PRODUCTS["razor-subscription-only"])[(42002000000001, 690002001)]
    assert offer["discount"] == "$2.00"
    assert offer["subscribe_label"] == "Subscribe & save $2.00"
    assert offer["price_formatted"] == "$10.99"


def test_fixed_amount_in_a_euro_shop_uses_its_money_format():
    offer = offers(PRODUCTS["razor-subscription-only"], EUR)[(42002000000001, 690002001)]
    assert offer["discount"] == "2,00 €"
    assert offer["price_formatted"] == "10,99 €"


def test_fixed_price_plan_shows_the_difference_as_money():
    offer = offers(PRODUCTS["tea-fixed-price-plan"])[(42005000000001, 690005001)]
    assert offer["discount"] == "$7.00"
    assert offer["price_formatted"] == "$25.00"


def test_first_order_offer_shows_the_first_and_the_later_price():
    offer = offers(PRODUCTS["vitamins-first-order-offer"])[(42004000000001, 690004001)]
    assert offer["discount"] == "50% on your first order, then 10%"
    assert offer["subscribe_label"] == "Subscribe & save 50% on your first order, then 10%"
    assert (offer["price"], offer["price_formatted"]) == (1500, "$15.00")
    assert (offer["later_price"], offer["later_price_formatted"]) == (2700, "$27.00")
    assert offer["later_label"] == "then $27.00"
    assert offer["first_orders"] == 1


def test_first_orders_count_above_one_and_a_fixed_amount_later():
    item = product("vitamins-first-order-offer")
    plan = item["selling_plan_groups"][0]["selling_plans"][0]
    plan["price_adjustments"][1].update(order_count=3, value_type="fixed_amount", value=500)
    item["variants"][0]["selling_plan_allocations"][0]["price_adjustments"][1]["price"] = 2500
    offer = offers(item)[(42004000000001, 690004001)]
    assert offer["discount"] == "50% on your first 3 orders, then $5.00"
    assert offer["later_label"] == "then $25.00"


def test_later_price_missing_from_the_allocation_is_computed_from_the_plan():
    item = product("vitamins-first-order-offer")
    del item["variants"][0]["selling_plan_allocations"][0]["price_adjustments"][1]
    offer = offers(item)[(42004000000001, 690004001)]
    assert offer["later_price"] == 2700  # 10% off 3000
    assert offer["discount"] == "50% on your first order, then 10%"


def test_later_full_price_reads_as_regular_price():
    item = product("vitamins-first-order-offer")
    plan = item["selling_plan_groups"][0]["selling_plans"][0]
    plan["price_adjustments"][1]["value"] = 0
    item["variants"][0]["selling_plan_allocations"][0]["price_adjustments"][1]["price"] = 3000
    offer = offers(item)[(42004000000001, 690004001)]
    assert offer["discount"] == "50% on your first order, then regular price"


def test_zero_decimal_currency():
    offer = offers(PRODUCTS["sake-jpy"], JPY)[(42007000000001, 690007001)]
    assert offer["discount"] == "5%"
    assert offer["price_formatted"] == "¥3,135"
    assert offer["option_label"] == "1ヶ月 \u2013 ¥3,135"
    assert model(PRODUCTS["sake-jpy"], JPY)["variants"][0]["price_formatted"] == "¥3,300"


def test_bundle_product_subscription_plan():
    offer = offers(PRODUCTS["snack-box-bundle"])[(42006000000001, 690006001)]
    assert (offer["discount"], offer["price_formatted"]) == ("10%", "$32.40")


@pytest.mark.parametrize(("compare_at", "price", "expected"), [
    (1000, 875, "13%"),   # 12.5 -> 13: half up
    (1000, 885, "12%"),   # 11.5 -> 12
    (1000, 876, "12%"),   # 12.4 -> 12
    (1000, 995, "1%"),    # 0.5 -> 1
    (1000, 996, None),    # 0.4 -> 0: nothing worth showing
    (1000, 1000, None),   # no discount at all
    (1000, 1100, None),   # dearer on the plan: not a discount
    (3, 2, "33%"),
    (3, 1, "67%"),        # 66.67 -> 67
])
def test_percentage_rounding(compare_at, price, expected):
    item = product("razor-subscription-only")
    item["selling_plan_groups"][0]["selling_plans"][0]["price_adjustments"][0]["value_type"] = "percentage"
    item["variants"][0]["price"] = compare_at
    allocation = item["variants"][0]["selling_plan_allocations"][0]
    allocation.update(price=price, compare_at_price=compare_at)
    offer = offers(item)[(42002000000001, 690002001)]
    assert offer["discount"] == expected
    assert offer["subscribe_label"] == (f"Subscribe & save {expected}" if expected else "Subscribe")


def test_no_discount_uses_the_no_discount_label_and_other_plans_keep_theirs():
    item = product("coffee-three-plans")
    allocation = item["variants"][0]["selling_plan_allocations"][1]
    allocation.update(price=1800, compare_at_price=1800)
    got = offers(item)
    assert got[(42001000000001, 690001002)]["subscribe_label"] == "Subscribe"
    assert got[(42001000000001, 690001002)]["discount"] is None
    assert got[(42001000000001, 690001001)]["subscribe_label"] == "Subscribe & save 10%"
    assert got[(42001000000001, 690001003)]["subscribe_label"] == "Subscribe & save 20%"


def test_missing_compare_at_price_falls_back_to_the_variant_price():
    item = product("coffee-three-plans")
    item["variants"][0]["selling_plan_allocations"][0]["compare_at_price"] = None
    assert offers(item)[(42001000000001, 690001001)]["discount"] == "10%"


def test_money_format_markup_is_dropped_not_trusted():
    shop = dict(USD, money_format='<span class="money">${{amount}}</span>')
    offer = offers(PRODUCTS["razor-subscription-only"], shop)[(42002000000001, 690002001)]
    assert (offer["discount"], offer["price_formatted"]) == ("$2.00", "$10.99")


def test_translated_subscribe_label_gets_the_discount():
    labels = {"subscribe": "Abonnieren und {discount} sparen"}
    got = model(PRODUCTS["coffee-three-plans"], EUR, translations={"de": labels})
    assert [o["subscribe_label"] for o in got["variants"][0]["selling_plans"]] == [
        "Abonnieren und 10% sparen", "Abonnieren und 15% sparen", "Abonnieren und 20% sparen"]
    assert got["variants"][0]["selling_plans"][0]["price_formatted"] == "16,20 €"
