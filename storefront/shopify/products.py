"""``products/update`` payloads (Admin REST shape) merged into a stored product document."""

from __future__ import annotations

import copy
import re
from decimal import ROUND_HALF_UP, Decimal, InvalidOperation
from typing import Any

from storefront import validation
from storefront.validation import ValidationFailed

# ISO 4217 currencies with no minor unit that Shopify sells in. Amounts are still x100 in our
# model, but Shopify charges whole units, so computed plan prices are rounded to whole units.
ZERO_DECIMAL_CURRENCIES = frozenset({
    "BIF", "CLP", "DJF", "GNF", "ISK", "JPY", "KMF", "KRW", "PYG", "RWF", "UGX", "VND", "VUV",
    "XAF", "XOF", "XPF",
})

# "19.00", "3300", "0.5": what the Admin REST API writes for prices (never signs or exponents).
_DECIMAL = re.compile(r"[0-9]{1,16}(\.[0-9]{1,16})?")
_HUNDRED = Decimal(100)


def _amount(value: object) -> int:
    """``"19.00"`` -> ``1900`` and ``"3300"`` -> ``330000``: amounts in x100 subunits."""
    if not isinstance(value, str) or not _DECIMAL.fullmatch(value):
        raise ValueError('must be a decimal string such as "19.00"')
    try:
        subunits = Decimal(value) * _HUNDRED
    except InvalidOperation:  # pragma: no cover - the pattern admits only valid decimals
        raise ValueError('must be a decimal string such as "19.00"') from None
    if subunits != subunits.to_integral_value():
        raise ValueError("must have at most two decimal places")
    if subunits > validation.MAX_AMOUNT:
        raise ValueError("is too large")
    return int(subunits)


def _is_int(value: object) -> bool:
    return isinstance(value, int) and not isinstance(value, bool)


def _variant_update(errors: dict[str, str], raw: object, path: str) -> dict[str, Any] | None:
    """One payload variant as our variant fields (without allocations), or None after noting why."""
    if not isinstance(raw, dict):
        errors[path] = "must be an object"
        return None
    before = len(errors)
    variant: dict[str, Any] = {}
    if not _is_int(raw.get("id")) or not 1 <= raw["id"] <= validation.MAX_ID:
        errors[f"{path}.id"] = "must be a positive integer id"
    else:
        variant["id"] = raw["id"]
    if not isinstance(raw.get("title"), str):
        errors[f"{path}.title"] = "must be a string"
    else:
        variant["title"] = raw["title"]
    for name, nullable in (("price", False), ("compare_at_price", True)):
        value = raw.get(name)
        # Shopify writes an absent compare-at price as null (older versions: "").
        if nullable and value in (None, ""):
            variant[name] = None
            continue
        try:
            variant[name] = _amount(value)
        except ValueError as error:
            errors[f"{path}.{name}"] = str(error) if name in raw else "is required"
    quantity, policy = raw.get("inventory_quantity"), raw.get("inventory_policy")
    if not _is_int(quantity):
        errors[f"{path}.inventory_quantity"] = "must be an integer"
    if not isinstance(policy, str):
        errors[f"{path}.inventory_policy"] = "must be a string such as deny or continue"
    if len(errors) > before:
        return None
    # The contract's rule: in stock, or sold on regardless of stock ("continue").
    variant["available"] = quantity > 0 or policy == "continue"
    return variant


def parse_products_update(payload: object) -> dict[str, Any]:
    """The fields of a ``products/update`` payload we use: ``{"id", "title", "handle", "variants"}``.

    Raises ValidationFailed naming the payload's paths; unknown fields are ignored.
    """
    if not isinstance(payload, dict):
        raise ValidationFailed({validation.ROOT_PATH: "must be an object"})
    errors: dict[str, str] = {}
    update: dict[str, Any] = {}
    if not _is_int(payload.get("id")) or not 1 <= payload["id"] <= validation.MAX_ID:
        errors["id"] = "must be a positive integer id"
    else:
        update["id"] = payload["id"]
    for name in ("title", "handle"):
        if not isinstance(payload.get(name), str):
            errors[name] = "must be a string"
        else:
            update[name] = payload[name]
    variants = payload.get("variants")
    if not isinstance(variants, list) or not variants:
        errors["variants"] = "must be a non-empty list"
    elif len(variants) > validation.MAX_VARIANTS:
        errors["variants"] = f"must have at most {validation.MAX_VARIANTS} items"
    else:
        update["variants"] = [_variant_update(errors, raw, f"variants[{index}]")
                              for index, raw in enumerate(variants)]
    if errors:
        raise ValidationFailed(errors)
    return update


# -- plan prices -------------------------------------------------------------------------------------


def _round(amount: Decimal, step: int) -> int:
    """Half up to a multiple of ``step`` subunits (1, or 100 for a zero-decimal currency)."""
    return int((amount / step).quantize(Decimal(1), rounding=ROUND_HALF_UP)) * step


def adjusted_price(price: int, adjustment: dict[str, Any], step: int = 1) -> int:
    """The variant ``price`` after one selling plan price adjustment (never below zero)."""
    # str() first: 12.3 as a float is not 12.3, and the percentage would round the wrong way.
    value = Decimal(str(adjustment["value"]))
    kind = adjustment["value_type"]
    if kind == "percentage":
        result = Decimal(price) * (_HUNDRED - value) / _HUNDRED
    elif kind == "fixed_amount":
        result = Decimal(price) - value
    elif kind == "price":
        result = value
    else:
        raise ValueError(f"unknown price adjustment type {kind!r}")
    return max(_round(result, step), 0)


def allocation_for(price: int, group_id: str, plan: dict[str, Any], step: int = 1) -> dict[str, Any]:
    """The allocation of ``plan`` for a variant at ``price``, computed as Shopify computes it.

    The first adjustment sets the price now; a second one (after ``order_count`` orders) only
    appears in ``price_adjustments``. A plan without adjustments charges the variant price.
    """
    adjustments = sorted(plan["price_adjustments"], key=lambda adjustment: adjustment["position"])
    prices = [{"position": adjustment["position"], "price": adjusted_price(price, adjustment, step)}
              for adjustment in adjustments]
    first = prices[0]["price"] if prices else price
    return {
        "selling_plan_group_id": group_id,
        "selling_plan_id": plan["id"],
        "price": first,
        "compare_at_price": price,
        "per_delivery_price": first,
        "price_adjustments": prices,
    }


def apply_products_update(stored_document: dict[str, Any], payload: object, *,
                          currency: str | None = None) -> dict[str, Any]:
    """The stored product document updated from a ``products/update`` payload; a new dict.

    Title, handle and variants (added, removed, re-priced, re-stocked, in the payload's order)
    come from Shopify; selling plan groups, ``requires_selling_plan`` and ``bundle`` stay as the
    admin API set them. Each variant keeps the plans it had (a new variant gets every plan of
    the groups the stored variants use), with prices recomputed from the plans' adjustments.
    ``currency`` (the shop's) rounds plan prices to whole units when it has no minor unit.

    Raises ValidationFailed naming payload paths; the result passes ``validate_product``.
    """
    update = parse_products_update(payload)
    if update["id"] != stored_document["id"]:
        raise ValidationFailed({"id": f"must be the stored product's id ({stored_document['id']})"})
    step = 100 if currency in ZERO_DECIMAL_CURRENCIES else 1
    plans: dict[int, tuple[str, dict[str, Any]]] = {}
    for group in stored_document["selling_plan_groups"]:
        for plan in group["selling_plans"]:
            plans[plan["id"]] = (group["id"], plan)
    stored_plans = {variant["id"]: [a["selling_plan_id"] for a in variant["selling_plan_allocations"]]
                    for variant in stored_document["variants"]}
    used_groups = {plans[plan_id][0] for plan_ids in stored_plans.values() for plan_id in plan_ids}
    # In the groups' own order, so a new variant lists its plans as the widget lists them.
    new_variant_plans = [plan["id"] for group in stored_document["selling_plan_groups"]
                         if group["id"] in used_groups for plan in group["selling_plans"]]

    document = copy.deepcopy(stored_document)
    document["title"] = update["title"]
    document["handle"] = update["handle"]
    document["variants"] = []
    for fields in update["variants"]:
        plan_ids = stored_plans.get(fields["id"], new_variant_plans)
        allocations = [allocation_for(fields["price"], *plans[plan_id], step) for plan_id in plan_ids]
        document["variants"].append({**fields, "selling_plan_allocations": allocations})
    # Paths in the result are the payload's paths too: variants keep the payload's order.
    return validation.validate_product(document, document["id"])
