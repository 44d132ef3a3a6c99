"""render_widget: one widget kind in one format (.js, .html, .json, .css) as bytes and a content type."""

from __future__ import annotations

from typing import Any
from urllib.parse import quote

from storefront.render.assets import compose_script, stylesheet
from storefront.render.bundle import bundle_client_data, bundle_view
from storefront.render.encoding import inert_json
from storefront.render.model import KINDS, build_model, is_enabled
from storefront.render.subscription import subscription_client_data, subscription_view
from storefront.render.templates import render_html

CONTENT_TYPES = {
    "js": "application/javascript; charset=utf-8",
    "html": "text/html; charset=utf-8",
    "json": "application/json",
    "css": "text/css; charset=utf-8",
}


def stylesheet_url(base_url: str, shop: str, kind: str, settings_version: int | None) -> str:
    """Where the .js finds the kind's stylesheet; the version busts caches when settings change."""
    version = settings_version if settings_version is not None else 0
    return f"{base_url.rstrip('/')}/v1/shops/{quote(shop, safe='')}/widgets/{kind}.css?v={version}"


def id_prefix(kind: str, model: dict[str, Any]) -> str:
    """Prefix of every id in the HTML: distinct per kind and product, so fragments can share a page."""
    product = model.get("product") or {}
    return f"sfw-{kind[0]}{product.get('id', '')}-"


def empty_render(kind: str, fmt: str) -> str:
    return {
        "js": f"/* storefront: {kind} widget disabled */\n",
        "html": "",
        "json": inert_json({"enabled": False}),
        "css": f"/* storefront: {kind} widget disabled */\n",
    }[fmt]


def _views(kind: str, model: dict[str, Any]) -> tuple[dict[str, Any], dict[str, Any]]:
    """(template values, data for the browser runtime) of an enabled model."""
    if kind == "subscription":
        return subscription_view(model), subscription_client_data(model)
    if kind == "bundle":
        return bundle_view(model), bundle_client_data(model)
    return {}, {}


def render_widget(kind: str, fmt: str, *, shop: dict[str, Any], settings: dict[str, Any] | None,
                  settings_version: int | None, product: dict[str, Any] | None, locale: str,
                  base_url: str, stylesheet_url_override: str | None = None) -> tuple[bytes, str]:
    """Render ``kind`` as ``fmt``; a pure function of its arguments, byte-for-byte deterministic.

    ``base_url`` (configuration) is the only source of absolute URLs. The .css depends on the
    settings alone; the other formats on shop, settings, product and locale.
    ``stylesheet_url_override`` points the widget at another stylesheet (a draft preview's).
    """
    if kind not in KINDS:
        raise ValueError(f"unknown widget kind {kind!r}")
    if fmt not in CONTENT_TYPES:
        raise ValueError(f"unknown widget format {fmt!r}")
    content_type = CONTENT_TYPES[fmt]
    if fmt == "css":
        body = stylesheet(kind, settings) if is_enabled(settings) else empty_render(kind, fmt)
        return body.encode("utf-8"), content_type

    model = build_model(kind, shop=shop, settings=settings, product=product, locale=locale)
    if not model["enabled"]:
        return empty_render(kind, fmt).encode("utf-8"), content_type
    if fmt == "json":
        return inert_json(model).encode("utf-8"), content_type

    css_url = stylesheet_url_override or stylesheet_url(base_url, shop["shop"], kind, settings_version)
    prefix = id_prefix(kind, model)
    view, data = _views(kind, model)
    html = render_html(f"widgets/{kind}.html", m=model, x=prefix,
                       stylesheet_url=css_url if fmt == "html" else None, v=view)
    if fmt == "html":
        return (html + "\n").encode("utf-8"), content_type
    product_id = model["product"]["id"] if "product" in model else None
    script = compose_script(kind, product_id=product_id, id_prefix=prefix, stylesheet_url=css_url,
                            html=html, data=data)
    return script.encode("utf-8"), content_type
