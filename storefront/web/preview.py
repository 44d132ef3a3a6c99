"""/preview/{shop}/{kind}: a mock product page loading the widget; open in development, signed otherwise."""

from __future__ import annotations

import dataclasses
import re
from typing import Any
from urllib.parse import urlencode

from flask import Blueprint, Response, current_app, render_template, request

from storefront.preview_links import PreviewGrant, PreviewTokenError
from storefront.render import render_widget
from storefront.render.preview import preview_context
from storefront.services import Services
from storefront.store import WIDGET_KINDS
from storefront.web.errors import ApiError
from storefront.web.widget_request import LOCALE, PRODUCT, SHOP, parse_query, resolve_locale

blueprint = Blueprint("preview", __name__)

TOKEN = r"[A-Za-z0-9_.\-]{1,2000}"
DEVELOPMENT_PARAMS = {"product": PRODUCT, "locale": LOCALE}


def _services() -> Services:
    return current_app.extensions["storefront"]


def _no_store(response: Response) -> Response:
    response.headers["Cache-Control"] = "no-store"
    return response


def _grant(shop: str, kind: str) -> PreviewGrant:
    """The signed grant for this request (development without a token: an open, published preview)."""
    if kind not in WIDGET_KINDS:
        raise ApiError(404, "unknown widget kind", {"kind": "unknown"})
    if not SHOP.fullmatch(shop):
        raise ApiError(400, "shop must be a lower-case *.myshopify.com domain", {"shop": "malformed"})
    services = _services()
    raw_query = request.environ.get("QUERY_STRING", "")
    if "token" not in request.args:
        if not services.settings.development:
            raise ApiError(401, "a signed preview link is required", {"token": "missing"},
                           code="unauthorized")
        params = parse_query(raw_query, DEVELOPMENT_PARAMS)
        return PreviewGrant(shop=shop, kind=kind, locale=params.get("locale"), draft=False,
                            product_id=int(params["product"]) if "product" in params else None)
    params = parse_query(raw_query, {"token": re.compile(TOKEN), **DEVELOPMENT_PARAMS})
    try:
        grant = services.preview_signer.verify(params["token"], shop, kind)
    except PreviewTokenError as error:
        raise ApiError(403, str(error), {"token": str(error)}, code="forbidden") from None
    # The link grants a shop's widget; which of its products and languages to look at is the
    # viewer's choice (the page's selector), so those may be changed without a new link.
    return dataclasses.replace(
        grant, locale=params.get("locale", grant.locale),
        product_id=int(params["product"]) if "product" in params else grant.product_id)


def _inputs(grant: PreviewGrant) -> tuple[Any, list[dict[str, Any]], dict[str, Any] | None, str]:
    store = _services().store.primary
    shop = store.get_shop(grant.shop)
    if shop is None:
        raise ApiError(404, "no such shop", {"shop": "not found"})
    documents = [p.document for p in (store.get_product(grant.shop, pid)
                                      for pid in store.list_product_ids(grant.shop)) if p is not None]
    product = None
    if grant.product_id is not None:
        product = next((d for d in documents if d["id"] == grant.product_id), None)
        if product is None:
            raise ApiError(404, "no such product", {"product": "not found"})
    elif documents and grant.kind != "loyalty":
        product = documents[0]
    return shop, documents, product, resolve_locale(grant.locale, shop.default_locale, shop.locales)


@blueprint.get("/preview/<shop>/<kind>")
def preview(shop: str, kind: str) -> Response:
    grant = _grant(shop, kind)
    shop_record, documents, product, locale = _inputs(grant)
    base = _services().settings.public_base_url
    query: dict[str, str] = {"locale": locale}
    if product is not None and kind != "loyalty":
        query = {"product": str(product["id"]), "locale": locale}
    token = request.args.get("token")
    if grant.draft:
        # The draft never goes through the public endpoint or the shared cache.
        draft_query = urlencode({"token": token, **query})
        widget_js_url = f"{base}/preview/{shop}/{kind}/draft.js?{draft_query}"
        widget_css_url = f"{base}/preview/{shop}/{kind}/draft.css?{draft_query}"
    else:
        published = _services().store.primary.get_widget(shop, kind).published
        widget_js_url = f"{base}/v1/shops/{shop}/widgets/{kind}.js?{urlencode(query)}"
        widget_css_url = (f"{base}/v1/shops/{shop}/widgets/{kind}.css?"
                          f"v={published.version if published else 0}")
    context = preview_context(shop_record.to_json(), documents, product, kind, locale, widget_js_url,
                              widget_css_url=widget_css_url,
                              hidden_fields={"token": token} if token else None)
    return _no_store(Response(render_template("preview/product_page.html", **context)))


@blueprint.get("/preview/<shop>/<kind>/draft.<fmt>")
def draft_asset(shop: str, kind: str, fmt: str) -> Response:
    """The draft rendered directly for a signed draft preview: never cached, anywhere."""
    if fmt not in ("js", "css"):
        raise ApiError(404, "no such preview asset", {"format": "unknown"})
    grant = _grant(shop, kind)
    if not grant.draft:
        raise ApiError(403, "this preview link does not grant the draft", {"token": "not a draft link"},
                       code="forbidden")
    shop_record, _, product, locale = _inputs(grant)
    state = _services().store.primary.get_widget(shop, kind)
    settings = state.draft if state.draft is not None else (
        state.published.settings if state.published else None)
    base = _services().settings.public_base_url
    token_query = urlencode({"token": request.args["token"]})

    body, content_type = render_widget(
        kind, fmt, shop=shop_record.to_json(), settings=settings, settings_version=None,
        product=product if kind != "loyalty" else None, locale=locale, base_url=base,
        stylesheet_url_override=f"{base}/preview/{shop}/{kind}/draft.css?{token_query}")
    return _no_store(Response(body, content_type=content_type))
