"""The Shopify app proxy (GET /proxy/widgets/<kind>): signed requests get the cached HTML fragment.

A storefront URL such as ``https://shop.example/apps/widgets/subscription?product=1`` reaches
us through Shopify, which adds ``shop``, ``path_prefix``, ``timestamp``, ``logged_in_customer_id``
and ``signature``. The fragment is the same bytes as ``/v1/shops/{shop}/widgets/{kind}.html``,
served from the same cache entries.

Caching: a 200 says ``private, max-age=<browser ttl>``. The shopper's browser may keep it as
long as it keeps the public ``.html`` (the output depends on no customer data), but no shared
cache may: the URL a cache in front of Shopify sees lacks the signed parameters, and one that
keys on our URL would hold a copy per signature and timestamp, which is useless. Errors say
``no-store``: a 401 for a stale timestamp must not outlive the request.
"""

from __future__ import annotations

import logging
import re
import time

from flask import Blueprint, Response, current_app, request

from storefront import validation
from storefront.services import Services
from storefront.shopify.signatures import verify_app_proxy
from storefront.store import WIDGET_KINDS
from storefront.web.errors import ApiError
from storefront.web.widget_request import LOCALE, NEEDS_PRODUCT, PRODUCT, WidgetRequest
from storefront.web.widgets import fetch_render

log = logging.getLogger(__name__)

blueprint = Blueprint("proxy", __name__)

# Shopify's own parameters plus ours; values are the decoded ones the signature covers.
ALLOWED = {
    "shop": None,  # checked with validation.valid_shop_domain
    "path_prefix": re.compile(r"/[A-Za-z0-9/._~-]{0,254}"),
    "timestamp": re.compile(r"[0-9]{1,12}"),
    "logged_in_customer_id": re.compile(r"[0-9]{0,20}"),  # empty for a guest
    "signature": re.compile(r"[0-9a-f]{64}"),
    "product": PRODUCT,
    "locale": LOCALE,
}


def _bad(field: str, why: str) -> ApiError:
    return ApiError(400, f"{field}: {why}", {field: why})


@blueprint.after_request
def _caching(response: Response) -> Response:
    if response.status_code not in (200, 304):
        response.headers["Cache-Control"] = "no-store"
    return response


@blueprint.route("/proxy/widgets/<kind>", methods=["GET", "HEAD"])
def proxy_widget(kind: str) -> Response:
    if kind not in WIDGET_KINDS:
        raise ApiError(404, f"unknown widget kind; one of {', '.join(WIDGET_KINDS)}", {"kind": "unknown"})
    services: Services = current_app.extensions["storefront"]
    verdict = verify_app_proxy(request.environ.get("QUERY_STRING", ""),
                               services.settings.shopify_api_secret, time.time())
    if not verdict:
        log.info("app proxy request refused: %s", verdict.reason)
        raise ApiError(401, "the app proxy signature is missing, wrong or expired",
                       {"signature": verdict.reason}, code="unauthorized")
    # Authentic from here on; what remains is whether we accept what Shopify forwarded.
    params: dict[str, str] = {}
    for name, value in verdict.pairs:
        if name not in ALLOWED:
            raise _bad(name[:40] or "query", "unknown parameter")
        if name in params:
            raise _bad(name, "given more than once")
        pattern = ALLOWED[name]
        if pattern is not None and not pattern.fullmatch(value):
            raise _bad(name, "malformed value")
        params[name] = value
    shop = params.get("shop", "")
    if not validation.valid_shop_domain(shop):
        raise _bad("shop", "must be a lower-case *.myshopify.com domain")
    product_id = None
    if kind in NEEDS_PRODUCT:
        if "product" not in params:
            raise _bad("product", "required for this widget")
        product_id = int(params["product"])
    widget_request = WidgetRequest(shop=shop, kind=kind, fmt="html", product_id=product_id,
                                   locale=params.get("locale"))
    result, _ = fetch_render(services, widget_request)  # its 404s become no-store in _caching
    entry = result.entry
    headers = {
        "Cache-Control": f"private, max-age={services.settings.browser_ttl_s}",
        "Vary": "Accept-Encoding",
        "ETag": entry.etag,
        "X-Cache": result.status,
    }
    if request.if_none_match and request.if_none_match.contains_weak(entry.etag.strip('"')):
        return Response(status=304, headers=headers)
    # gzip or nothing: what every proxy hop understands; the stored copy is used as is.
    if request.accept_encodings["gzip"]:
        headers["Content-Encoding"] = "gzip"
        body = entry.gzip
    else:
        body = entry.identity
    return Response(body, headers=headers, content_type="text/html; charset=utf-8")
