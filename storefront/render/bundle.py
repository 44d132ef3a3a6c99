"""The bundle builder's render model: collections with their limits, items with prices, box size."""

from __future__ import annotations

from typing import Any

from storefront.render.context import WidgetContext, fill, safe_https_url


def _count(value: object, default: int) -> int:
    return value if isinstance(value, int) and not isinstance(value, bool) and value >= 0 else default


def _item(ctx: WidgetContext, item: dict[str, Any]) -> dict[str, Any]:
    title = item.get("title") or ""
    price = ctx.money(int(item.get("price") or 0))
    # The quantity buttons' accessible names carry the item and its price.
    named = f"{title}, {price}"
    return {
        "id": item.get("id"),
        "variant_id": item["variant_id"],
        "title": title,
        "price": item.get("price"),
        "price_formatted": price,
        "image_url": safe_https_url(item.get("image_url")),
        "add_label": ctx.label("add_one", item=named),
        "remove_label": ctx.label("remove_one", item=named),
    }


def build_bundle_model(ctx: WidgetContext, product: dict[str, Any] | None) -> dict[str, Any] | None:
    """The model, or None when the product is not a bundle (the empty render)."""
    bundle = (product or {}).get("bundle")
    if not isinstance(bundle, dict) or not bundle.get("collections"):
        return None
    items_count = _count(bundle.get("items_count"), 0)
    if items_count < 1:
        return None
    collections = []
    for collection in bundle["collections"]:
        low = _count(collection.get("min"), 0)
        high = max(low, _count(collection.get("max"), items_count))
        collections.append({
            "id": collection["id"],
            "title": collection.get("title") or "",
            "min": low,
            "max": high,
            "range_label": ctx.label("choose_range", min=low, max=high),
            "products": [_item(ctx, item) for item in collection.get("products") or []],
        })
    model = ctx.common()
    model.update({
        "product": {"id": product["id"], "title": product.get("title"), "handle": product.get("handle")},
        "items_count": items_count,
        "discount_percentage": bundle.get("discount_percentage") or 0,
        "collections": collections,
    })
    return model


def bundle_client_data(model: dict[str, Any]) -> dict[str, Any]:
    """What the builder needs in the browser: limits, the box size, texts it fills in as counts change."""
    labels = model["labels"]
    return {
        "title": model["product"]["title"],
        "items_count": model["items_count"],
        "collections": [
            {"min": c["min"], "max": c["max"],
             "short": fill(labels["collection_short"], collection=c["title"], range=c["range_label"]),
             "variant_ids": [item["variant_id"] for item in c["products"]]}
            for c in model["collections"]
        ],
        "labels": {key: labels[key] for key in ("add_more", "full", "added", "add_failed")},
    }


def bundle_view(model: dict[str, Any]) -> dict[str, Any]:
    """Template values for the empty box."""
    return {"status": fill(model["labels"]["add_more"], remainder=model["items_count"])}
