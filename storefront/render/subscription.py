"""The subscription widget's render model: plans, per-variant offers and the discount shown for each."""

from __future__ import annotations

from decimal import ROUND_HALF_UP, Decimal
from typing import Any

from storefront.render.context import WidgetContext, safe_https_url


def _half_up(value: Decimal) -> int:
    return int(value.quantize(Decimal(1), rounding=ROUND_HALF_UP))


def discount_text(ctx: WidgetContext, compare_at: int, price: int, value_type: str) -> str | None:
    """``compare_at - price`` as a whole percent (half up) for percentage plans, else as shop money.

    None when there is nothing off, so the caller shows the no-discount label instead.
    """
    off = compare_at - price
    if compare_at <= 0 or off <= 0:
        return None
    if value_type == "percentage":
        percent = _half_up(Decimal(off) * 100 / Decimal(compare_at))
        return f"{percent}%" if percent > 0 else None
    return ctx.money(off)


def adjusted_price(compare_at: int, adjustment: dict[str, Any]) -> int:
    """The price one plan adjustment gives; only used when an allocation lacks that position."""
    value = adjustment.get("value") or 0
    kind = adjustment.get("value_type")
    if kind == "percentage":
        return compare_at - _half_up(Decimal(compare_at) * Decimal(str(value)) / 100)
    if kind == "fixed_amount":
        return max(0, compare_at - int(value))
    return int(value)


def _plan_option(plan: dict[str, Any]) -> str:
    values = [str(option.get("value")) for option in sorted(plan.get("options") or [],
                                                              key=lambda o: o.get("position") or 0)
              if option.get("value")]
    return " / ".join(values) or str(plan.get("name") or plan.get("id"))


def _offer(ctx: WidgetContext, variant: dict[str, Any], allocation: dict[str, Any],
           plan: dict[str, Any]) -> dict[str, Any]:
    price = int(allocation["price"])
    compare_at = int(allocation.get("compare_at_price") or variant["price"])
    adjustments = sorted(plan.get("price_adjustments") or [], key=lambda a: a.get("position") or 0)
    first_type = adjustments[0].get("value_type", "percentage") if adjustments else "percentage"
    first = discount_text(ctx, compare_at, price, first_type)

    later_price = None
    orders = None
    discount = first
    if len(adjustments) >= 2:
        positions = {a.get("position"): a.get("price") for a in allocation.get("price_adjustments") or []}
        second = adjustments[1]
        later_price = positions.get(second.get("position"))
        if not isinstance(later_price, int):
            later_price = adjusted_price(compare_at, second)
        # widget-model.md: the second adjustment applies after order_count orders.
        orders = int(second.get("order_count") or adjustments[0].get("order_count") or 1)
        later = discount_text(ctx, compare_at, later_price, second.get("value_type", "percentage"))
        if first or later:
            regular = ctx.label("regular_price")
            key = "first_order_discount" if orders == 1 else "first_orders_discount"
            discount = ctx.label(key, first=first or regular, later=later or regular, count=orders)

    price_text = ctx.money(price)
    return {
        "selling_plan_id": plan["id"],
        "price": price,
        "price_formatted": price_text,
        "compare_at_price": compare_at,
        "discount": discount,
        "subscribe_label": (ctx.label("subscribe", discount=discount) if discount
                            else ctx.label("subscribe_no_discount")),
        "option_label": f"{_plan_option(plan)} \u2013 {price_text}",
        "first_orders": orders,
        "later_price": later_price,
        "later_price_formatted": ctx.money(later_price) if later_price is not None else None,
        "later_label": (ctx.label("then_price", price=ctx.money(later_price))
                        if later_price is not None and later_price != price else None),
    }


def _plans(product: dict[str, Any]) -> dict[Any, tuple[dict[str, Any], dict[str, Any]]]:
    """plan id -> (group, plan), in group then plan order."""
    plans: dict[Any, tuple[dict[str, Any], dict[str, Any]]] = {}
    for group in product.get("selling_plan_groups") or []:
        for plan in group.get("selling_plans") or []:
            plans.setdefault(plan["id"], (group, plan))
    return plans


def _initial_variant(variants: list[dict[str, Any]]) -> dict[str, Any] | None:
    # What Shopify themes preselect: the first available variant, else the first one.
    return next((v for v in variants if v.get("available")), variants[0] if variants else None)


def build_subscription_model(ctx: WidgetContext, product: dict[str, Any] | None) -> dict[str, Any] | None:
    """The model, or None when there is nothing to sell on a plan (the empty render)."""
    if product is None:
        return None
    plans = _plans(product)
    order = {plan_id: index for index, plan_id in enumerate(plans)}
    variants = []
    offered: set[Any] = set()
    for variant in product.get("variants") or []:
        allocations = [a for a in variant.get("selling_plan_allocations") or []
                       if a.get("selling_plan_id") in plans]
        allocations.sort(key=lambda a: order[a["selling_plan_id"]])
        offers = [_offer(ctx, variant, a, plans[a["selling_plan_id"]][1]) for a in allocations]
        offered.update(a["selling_plan_id"] for a in allocations)
        variants.append({
            "id": variant["id"],
            "title": variant.get("title"),
            "available": bool(variant.get("available")),
            "price": variant["price"],
            "price_formatted": ctx.money(variant["price"]),
            "selling_plans": offers,
        })
    if not offered:
        return None

    settings = ctx.settings
    requires = bool(product.get("requires_selling_plan"))
    initial = _initial_variant(variants)
    model = ctx.common()
    model.update({
        "product": {"id": product["id"], "title": product.get("title"), "handle": product.get("handle"),
                    "requires_selling_plan": requires},
        "template": settings.get("template") if settings.get("template") in (
            "radio_group", "button_group", "checkbox") else "radio_group",
        "first_option": "subscription" if settings.get("first_option") == "subscription" else "onetime",
        "default_selection": ("subscription" if requires
                              or settings.get("default_selection") == "subscription" else "onetime"),
        "show_details": bool(settings.get("show_details")),
        "learn_more_url": safe_https_url(settings.get("learn_more_url")),
        "selling_plans": [
            {"id": plan["id"], "group_id": group.get("id"), "group_name": group.get("name"),
             "name": plan.get("name"), "description": plan.get("description") or "",
             "option": _plan_option(plan)}
            for plan_id, (group, plan) in plans.items() if plan_id in offered
        ],
        "variants": variants,
        "initial_variant_id": initial["id"] if initial else None,
    })
    return model


def subscription_client_data(model: dict[str, Any]) -> dict[str, Any]:
    """The part of the model the browser runtime needs to re-price on a variant change."""
    return {
        "variants": [
            {"id": v["id"], "available": v["available"], "price_formatted": v["price_formatted"],
             "selling_plans": [
                 {key: offer[key] for key in
                  ("selling_plan_id", "subscribe_label", "price_formatted", "option_label", "later_label")}
                 for offer in v["selling_plans"]]}
            for v in model["variants"]
        ],
        "initial_variant_id": model["initial_variant_id"],
    }


def subscription_view(model: dict[str, Any]) -> dict[str, Any]:
    """Template values for the initially selected variant (the HTML a no-JS reader sees)."""
    variant = next(v for v in model["variants"] if v["id"] == model["initial_variant_id"])
    offers = {offer["selling_plan_id"]: offer for offer in variant["selling_plans"]}
    offer = variant["selling_plans"][0] if variant["selling_plans"] else None
    groups: list[dict[str, Any]] = []
    for plan in model["selling_plans"]:
        if not groups or groups[-1]["id"] != plan["group_id"]:
            groups.append({"id": plan["group_id"], "name": plan["group_name"], "options": []})
        current = offers.get(plan["id"])
        groups[-1]["options"].append({
            "id": plan["id"],
            "text": current["option_label"] if current else plan["option"],
            "offered": current is not None,
            "selected": offer is not None and offer["selling_plan_id"] == plan["id"],
        })
    subscribed = model["default_selection"] == "subscription"
    order = ["onetime", "subscription"] if model["first_option"] == "onetime" else ["subscription", "onetime"]
    requires = model["product"]["requires_selling_plan"]
    if requires or model["template"] == "checkbox":
        order = ["subscription"]
    return {
        "variant": variant,
        "offer": offer,
        "groups": groups,
        "order": order,
        "subscribed": subscribed,
        # A lone required plan is a checked radio: a checkbox would invite unchecking it.
        "input_type": "checkbox" if model["template"] == "checkbox" and not requires else "radio",
        "show_frequency": subscribed and len(variant["selling_plans"]) > 1,
        "details_paragraphs": paragraphs(model["labels"]["details_body"]),
    }


def paragraphs(text: str) -> list[str]:
    """Blank-line separated paragraphs, so the HTML never depends on whitespace inside one element."""
    parts = [part.strip() for part in text.replace("\r\n", "\n").split("\n\n")]
    return [part for part in parts if part]
