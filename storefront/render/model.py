"""build_model: plain data in, the render model out (the .json body, and what the .html/.js show)."""

from __future__ import annotations

from typing import Any

from storefront.render.bundle import build_bundle_model
from storefront.render.context import WidgetContext
from storefront.render.loyalty import build_loyalty_model
from storefront.render.subscription import build_subscription_model

KINDS = ("subscription", "bundle", "loyalty")


def disabled_model() -> dict[str, Any]:
    return {"enabled": False}


def is_enabled(settings: dict[str, Any] | None) -> bool:
    """Published and switched on; never-published settings arrive as None."""
    return settings is not None and bool(settings.get("enabled", True))


def build_model(kind: str, *, shop: dict[str, Any], settings: dict[str, Any] | None,
                product: dict[str, Any] | None, locale: str) -> dict[str, Any]:
    """The render model of ``kind``, or ``{"enabled": False}`` for the empty render.

    Empty when the widget is disabled or never published, when a subscription product has no
    selling plans, or when a bundle product carries no bundle definition.
    """
    if kind not in KINDS:
        raise ValueError(f"unknown widget kind {kind!r}")
    if not is_enabled(settings):
        return disabled_model()
    ctx = WidgetContext(kind, shop, settings, locale)
    if kind == "subscription":
        model = build_subscription_model(ctx, product)
    elif kind == "bundle":
        model = build_bundle_model(ctx, product)
    else:
        model = build_loyalty_model(ctx)
    return model if model is not None else disabled_model()
