"""The preview page: a mock product page's template values, built from plain data like every render."""

from __future__ import annotations

from typing import Any

from storefront.render.context import shop_money
from storefront.render.templates import ENVIRONMENT

PREVIEW_TEMPLATE = "preview/product_page.html"


def _first_available(variants: list[dict[str, Any]]) -> Any:
    # What a Shopify theme preselects.
    chosen = next((v for v in variants if v.get("available")), variants[0] if variants else None)
    return chosen["id"] if chosen else None


def preview_context(shop: dict[str, Any], products: list[dict[str, Any]], product: dict[str, Any] | None,
                    kind: str, locale: str, widget_js_url: str, *, widget_css_url: str | None = None,
                    static_url: str = "/static",
                    hidden_fields: dict[str, str] | None = None) -> dict[str, Any]:
    """Values for ``templates/preview/product_page.html``.

    ``widget_js_url`` is the real widget script URL; ``widget_css_url``, when given, is linked in
    <head> the way a theme would, so the placeholder keeps its space before the script runs.
    ``hidden_fields`` ride along in the product/locale selector (a preview token, for instance).
    """
    money_format = shop.get("money_format") or ""
    page_product = None
    if product is not None:
        variants = product.get("variants") or []
        selected = _first_available(variants)
        page_variants = [
            {"id": v["id"], "title": v.get("title") or "", "available": bool(v.get("available")),
             "price_formatted": shop_money(int(v.get("price") or 0), money_format),
             "selected": v["id"] == selected}
            for v in variants
        ]
        current = next((v for v in page_variants if v["selected"]), None)
        page_product = {
            "id": product["id"],
            "title": product.get("title") or "",
            "handle": product.get("handle") or "",
            "variants": page_variants,
            "price_formatted": current["price_formatted"] if current else "",
            "available": bool(current and current["available"]),
            # A variant picker with one "Default Title" variant is noise on a real theme too.
            "single_default": len(page_variants) == 1 and page_variants[0]["title"] == "Default Title",
        }
    product_id = product["id"] if product is not None else None
    locales = list(shop.get("locales") or [locale])
    heading = page_product["title"] if page_product else shop.get("name", "")
    return {
        "page_title": f"{heading} \u2013 {kind} preview",
        "shop_name": shop.get("name") or shop.get("shop") or "",
        "shop_domain": shop.get("shop") or "",
        "kind": kind,
        "locale": locale,
        "locales": [{"value": code, "selected": code == locale} for code in locales],
        "products": [{"id": p["id"], "title": p.get("title") or str(p["id"]),
                      "selected": p["id"] == product_id} for p in products],
        "product": page_product,
        "placeholder": {"kind": kind, "product_id": product_id if kind != "loyalty" else None},
        "widget_js_url": widget_js_url,
        "widget_css_url": widget_css_url,
        "stylesheet_url": f"{static_url.rstrip('/')}/preview.css",
        "script_url": f"{static_url.rstrip('/')}/preview.js",
        "hidden_fields": sorted((hidden_fields or {}).items()),
    }


def render_preview_page(context: dict[str, Any]) -> str:
    """The page as text, with the render package's own environment (no Flask needed)."""
    return ENVIRONMENT.get_template(PREVIEW_TEMPLATE).render(**context)
