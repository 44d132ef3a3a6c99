"""/preview/{shop}/{kind}: a mock product page that loads the widget through the real .js URL."""

from __future__ import annotations

from urllib.parse import urlencode

from flask import Blueprint, Response, current_app, render_template, request

from storefront.store import WIDGET_KINDS
from storefront.web.errors import ApiError
from storefront.web.widget_request import LOCALE, PRODUCT, SHOP, parse_query, resolve_locale

blueprint = Blueprint("preview", __name__)

PREVIEW_PARAMS = {"product": PRODUCT, "locale": LOCALE}


@blueprint.get("/preview/<shop>/<kind>")
def preview(shop: str, kind: str) -> Response:
    services = current_app.extensions["storefront"]
    if not services.settings.development:
        # Signed preview links (issue 5) are the only way in outside development.
        raise ApiError(401, "a signed preview token is required", {"token": "missing"}, code="unauthorized")
    if kind not in WIDGET_KINDS:
        raise ApiError(404, "unknown widget kind", {"kind": "unknown"})
    if not SHOP.fullmatch(shop):
        raise ApiError(400, "shop must be a lower-case *.myshopify.com domain", {"shop": "malformed"})
    params = parse_query(request.environ.get("QUERY_STRING", ""), PREVIEW_PARAMS)
    store = services.store
    shop_record = store.get_shop(shop)
    if shop_record is None:
        raise ApiError(404, "no such shop", {"shop": "not found"})
    products = [store.get_product(shop, pid) for pid in store.list_product_ids(shop)]
    documents = [p.document for p in products if p is not None]
    product = None
    if "product" in params:
        product = next((d for d in documents if d["id"] == int(params["product"])), None)
        if product is None:
            raise ApiError(404, "no such product", {"product": "not found"})
    elif documents and kind != "loyalty":
        product = documents[0]
    locale = resolve_locale(params.get("locale"), shop_record.default_locale, shop_record.locales)
    query = {"locale": locale}
    if product is not None and kind != "loyalty":
        query = {"product": str(product["id"]), "locale": locale}
    widget_js_url = (f"{services.settings.public_base_url}/v1/shops/{shop}/widgets/{kind}.js?"
                     f"{urlencode(query)}")
    from storefront.render.preview import preview_context

    context = preview_context(shop_record.to_json(), documents, product, kind, locale, widget_js_url)
    response = Response(render_template("preview/product_page.html", **context))
    response.headers["Cache-Control"] = "no-store"
    return response
