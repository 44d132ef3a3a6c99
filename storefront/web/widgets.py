"""Public widget endpoints: validate -> look up -> (cache) -> render -> respond with CDN-grade headers."""

from __future__ import annotations

from flask import Blueprint, Response, current_app, request

from storefront.render import render_widget
from storefront.services import Services
from storefront.web.errors import ApiError
from storefront.web.widget_request import WidgetRequest, parse_widget_request, resolve_locale

blueprint = Blueprint("widgets", __name__)

MAX_PRODUCT_ID = 2**63 - 1


def _not_found(what: str, services: Services) -> ApiError:
    ttl = services.settings.negative_ttl_s
    return ApiError(404, f"no such {what}", {what: "not found"}, cache_control=f"public, max-age={ttl}")


def _has_body() -> bool:
    return bool(request.content_length) or "chunked" in request.headers.get("Transfer-Encoding", "").lower()


@blueprint.route("/v1/shops/<shop>/widgets/<filename>", methods=["GET", "HEAD"])
def widget(shop: str, filename: str) -> Response:
    environ = request.environ
    raw_path = environ.get("RAW_URI") or environ.get("REQUEST_URI") or request.path
    widget_request = parse_widget_request(
        shop, filename, raw_path.partition("?")[0], environ.get("QUERY_STRING", ""), _has_body())
    return serve_widget(current_app.extensions["storefront"], widget_request)


def serve_widget(services: Services, req: WidgetRequest) -> Response:
    store, settings = services.store, services.settings
    shop = store.get_shop(req.shop)
    if shop is None:
        raise _not_found("shop", services)
    product = None
    if req.product_id is not None:
        product = store.get_product(req.shop, req.product_id) if req.product_id <= MAX_PRODUCT_ID else None
        if product is None:
            raise _not_found("product", services)
    state = store.get_widget(req.shop, req.kind)
    published = state.published
    locale = resolve_locale(req.locale, shop.default_locale, shop.locales)
    body, content_type = render_widget(
        req.kind, req.fmt,
        shop=shop.to_json(),
        settings=published.settings if published else None,
        settings_version=published.version if published else None,
        product=product.document if product else None,
        locale=locale,
        base_url=settings.public_base_url,
    )
    response = Response(body, content_type=content_type)
    response.headers["Cache-Control"] = (
        f"public, max-age={settings.browser_ttl_s}, s-maxage={settings.edge_ttl_s}, "
        f"stale-while-revalidate={settings.stale_while_revalidate_s}, "
        f"stale-if-error={settings.stale_if_error_s}")
    tags = [f"shop:{req.shop}", f"widget:{req.shop}:{req.kind}"]
    if req.product_id is not None:
        tags.append(f"product:{req.shop}:{req.product_id}")
    response.headers["Surrogate-Key"] = " ".join(tags)
    response.headers["Cache-Tag"] = ",".join(tags)
    response.headers["Vary"] = "Accept-Encoding"
    return response
