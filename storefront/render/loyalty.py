"""The loyalty banner's render model: earn rate, signup bonus, tiers and the join link. Nothing personal."""

from __future__ import annotations

from decimal import Decimal, InvalidOperation
from typing import Any

from storefront.render.context import WidgetContext, safe_https_url


def points_text(value: object) -> str:
    """``1`` -> ``1``, ``1.50`` -> ``1.5``; anything unusable -> ``0``."""
    if isinstance(value, bool):
        return "0"
    try:
        number = Decimal(str(value))
    except InvalidOperation:
        return "0"
    if not number.is_finite() or number < 0:
        return "0"
    return f"{number.normalize():f}"


def build_loyalty_model(ctx: WidgetContext) -> dict[str, Any]:
    settings = ctx.settings
    points = points_text(settings.get("points_per_unit", 1))
    bonus = points_text(settings.get("signup_bonus", 0))
    tiers = []
    for tier in settings.get("tiers") or []:
        if not isinstance(tier, dict):
            continue
        minimum = points_text(tier.get("min_points", 0))
        tiers.append({
            "name": str(tier.get("name") or ""),
            "min_points": tier.get("min_points", 0),
            "min_points_text": ctx.label("tier_from", points=minimum),
            "perks": [str(perk) for perk in tier.get("perks") or [] if perk],
        })
    model = ctx.common()
    model.update({
        "points_per_unit": settings.get("points_per_unit", 1),
        "signup_bonus": settings.get("signup_bonus", 0),
        # "for every 1.00 of the shop's currency", written the way the shop writes money.
        "earn_text": ctx.label("earn", points=points, amount=ctx.money(100)),
        "signup_text": ctx.label("signup", bonus=bonus) if bonus != "0" else None,
        "tiers": tiers,
        "join_url": safe_https_url(settings.get("join_url")),
    })
    return model
