"""Fixture products and demo shops for the render tests, and a short way to call render_widget."""

from __future__ import annotations

import copy
import json
from pathlib import Path
from typing import Any

from storefront.render import render_widget
from storefront.widget_settings import default_settings

REPO = Path(__file__).resolve().parents[2]
PRODUCTS = {path.stem: json.loads(path.read_text(encoding="utf-8"))
            for path in sorted((REPO / "tests" / "fixtures" / "products").glob("*.json"))}
SHOPS = json.loads((REPO / "storefront" / "demo_data" / "shops.json").read_text(encoding="utf-8"))["shops"]
USD, EUR, JPY = (next(shop for shop in SHOPS if shop["currency"] == code) for code in ("USD", "EUR", "JPY"))
BASE_URL = "https://widgets.example.com"
# Products that sell on a plan (every fixture except the mug).
WITH_PLANS = [name for name, product in PRODUCTS.items() if product["selling_plan_groups"]]


def product(name: str) -> dict[str, Any]:
    """A fresh copy, so a test may change it."""
    return copy.deepcopy(PRODUCTS[name])


def settings(kind: str, **changes: Any) -> dict[str, Any]:
    result = default_settings(kind)
    for key, value in changes.items():
        if key in ("labels", "colors"):
            result[key].update(value)
        else:
            result[key] = value
    return result


_DEFAULT = object()


def render(kind: str, fmt: str, *, product: dict[str, Any] | None = None, shop: dict[str, Any] = USD,
           widget_settings: Any = _DEFAULT, locale: str | None = None, version: int | None = 1) -> str:
    body, _ = render_widget(
        kind, fmt, shop=shop,
        settings=default_settings(kind) if widget_settings is _DEFAULT else widget_settings,
        settings_version=version, product=product, locale=locale or shop["default_locale"], base_url=BASE_URL)
    return body.decode("utf-8")
