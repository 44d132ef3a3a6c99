"""The demo shops, products and published widgets that `seed-demo` loads (data under demo_data/)."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from storefront import validation
from storefront.store import WIDGET_KINDS, Store

DATA = Path(__file__).parent / "demo_data"


def _load(name: str) -> Any:
    return json.loads((DATA / name).read_text(encoding="utf-8"))


def demo_shops() -> list[dict[str, Any]]:
    return _load("shops.json")["shops"]


def demo_products(shop: str) -> list[dict[str, Any]]:
    return [_load(f"products/{name}") for name in _load("catalog.json")["products"].get(shop, [])]


def seed_demo(store: Store) -> list[str]:
    """Load every demo shop, its products and published widgets. Idempotent: a second run
    changes nothing (widgets are only published when their settings differ from what is live)."""
    catalog = _load("catalog.json")
    report = []
    for entry in demo_shops():
        shop = entry["shop"]
        fields = validation.validate_shop(entry)
        current = store.get_shop(shop)
        if current is None or {k: getattr(current, k) for k in fields} != {
                k: tuple(v) if isinstance(v, list) else v for k, v in fields.items()}:
            store.put_shop(shop, fields)
        products = demo_products(shop)
        for document in products:
            normalized = validation.validate_product(document, document["id"])
            existing = store.get_product(shop, document["id"])
            if existing is None or existing.document != normalized:
                store.put_product(shop, document["id"], normalized)
        for kind in WIDGET_KINDS:
            wanted = {k: v for k, v in catalog["widgets"][kind].items() if k != "translations"}
            translations = {
                locale: labels for locale, labels in catalog["widgets"][kind].get("translations", {}).items()
                if locale in entry["locales"]}
            if translations:
                wanted["translations"] = translations
            settings = validation.validate_widget_settings(kind, {"settings": wanted}, None)
            state = store.get_widget(shop, kind)
            if state.published is None or state.published.settings != settings:
                store.put_draft(shop, kind, settings)
                store.publish(shop, kind)
        report.append(f"{shop}: {len(products)} products, widgets {', '.join(WIDGET_KINDS)}")
    return report
