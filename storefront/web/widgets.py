"""Public widget endpoints: validate -> look up -> render cache -> respond with CDN-grade HTTP."""

from __future__ import annotations

from typing import Any

from flask import Blueprint, Response, current_app, request

from storefront.cache import CacheResult, NotFoundRender
from storefront.services import Services
from storefront.store import StoreUnavailable
from storefront.web.errors import ApiError
from storefront.web.hot_path import ENCODINGS, HotTarget, raw_request_target, widget_answer
from storefront.web.request_log import annotate
from storefront.web.widget_request import WidgetRequest, parse_widget_request
from storefront.widget_lookup import Missing

blueprint = Blueprint("widgets", __name__)
# Where render_hot_miss leaves the exception it met, for the view to raise.
HOT_PATH_ERROR = "storefront.hot_path_error"


def _has_body() -> bool:
    return bool(request.content_length) or "chunked" in request.headers.get("Transfer-Encoding", "").lower()


@blueprint.route("/v1/shops/<shop>/widgets/<filename>", methods=["GET", "HEAD"])
def widget(shop: str, filename: str) -> Response:
    environ = request.environ
    raw_path = environ.get("RAW_URI") or environ.get("REQUEST_URI") or request.path
    widget_request = parse_widget_request(
        shop, filename, raw_path.partition("?")[0], environ.get("QUERY_STRING", ""), _has_body())
    services: Services = current_app.extensions["storefront"]
    # Noted before anything is read: a change arriving meanwhile keeps this URL's note short.
    generation = services.freshness.generation
    log_fields = {"shop": widget_request.shop, "kind": widget_request.kind, "format": widget_request.fmt}
    annotate(**log_fields)
    hot_path_error = environ.pop(HOT_PATH_ERROR, None)
    if hot_path_error is not None:
        raise hot_path_error  # met by render_hot_miss for this very request: answered as the view's own
    result, key = fetch_render(services, widget_request)
    annotate(cache=result.status, tier=result.tier,
             render_ms=round(result.entry.render_ms, 3) if result.status == "MISS" else None)
    raw_target = raw_request_target(request.environ)
    if key is not None and result.status != "STALE" and raw_target is not None:
        # The next request for this exact URL is answered before Flask (storefront/web/hot_path.py).
        services.hot_targets.remember(raw_target, key, services.renders.headers_for(widget_request),
                                      request.path, log_fields, generation)
    return widget_response(services, widget_request, result)


def _hot_widget_request(path: str, query: str, raw_target: str) -> WidgetRequest:
    """The view's parsing and validation of a GET or HEAD without a body, from its path (as routed:
    PATH_INFO) and query string.

    Raises ApiError for anything the view would refuse, routing included.
    """
    parts = path.split("/")
    if len(parts) != 6 or parts[1] != "v1" or parts[2] != "shops" or parts[4] != "widgets" \
            or not parts[3] or not parts[5]:
        raise ApiError(404, "no such resource")
    return parse_widget_request(parts[3], parts[5], raw_target.partition("?")[0], query, False)


def _remember(services: Services, raw_target: str, req: WidgetRequest, key: str, path: str,
              generation: int) -> HotTarget | None:
    fields = {"shop": req.shop, "kind": req.kind, "format": req.fmt}
    return services.hot_targets.remember(raw_target, key, services.renders.headers_for(req), path, fields,
                                         generation)


def resolve_hot_target(services: Services, path: str, query: str, raw_target: str) -> HotTarget | None:
    """The hot path's note for a widget URL this worker has not answered yet, made without Flask.

    The same parsing, validation and lookup as ``widget`` above, for a GET or HEAD without a body
    (``path``: as routed, PATH_INFO): a CDN's misses spread over thousands of URLs, and each would
    otherwise pay for routing and Flask's request machinery once per worker. Anything the view
    would refuse or that needs the database to say more (an invalid request, an unknown shop or
    product, the store down) gives None, and the view answers it as usual.
    """
    services.start_request()
    generation = services.freshness.generation
    try:
        req = _hot_widget_request(path, query, raw_target)
        inputs = services.lookup.lookup(req.shop, req.kind, req.product_id)
    except (ApiError, Missing, StoreUnavailable):
        return None
    finally:
        services.close_request()
    return _remember(services, raw_target, req, services.renders.key_for(req, inputs), path, generation)


def render_hot_miss(services: Services, environ: dict[str, Any], raw_target: str,
                    target: HotTarget) -> tuple[HotTarget, CacheResult] | None:
    """For the hot path: a noted URL that no cache tier holds, answered as the view would, without Flask.

    A miss costs routing and Flask's request machinery too (about a sixth of a cold miss). On any
    error (an unknown product, the store down with no last good copy, a failed render) this gives
    None and leaves the exception in the environ: the view raises it, so Flask's error handlers
    answer it exactly as if the view had met it, without reading or rendering a second time.
    """
    services.start_request()
    generation = services.freshness.generation
    try:
        req = _hot_widget_request(environ.get("PATH_INFO", ""), environ.get("QUERY_STRING", ""), raw_target)
        result, key = fetch_render(services, req)
    except Exception as error:
        environ[HOT_PATH_ERROR] = error
        return None
    finally:
        services.close_request()
    if key is not None and key != target.key and result.status != "STALE":
        # The lookup moved on (a change arrived): the note follows it.
        target = _remember(services, raw_target, req, key, environ.get("PATH_INFO", ""), generation) or target
    return target, result


def fetch_render(services: Services, req: WidgetRequest) -> tuple[CacheResult, str | None]:
    """The render for ``req`` and its key: from a cache tier, rendered once, or (database down) the
    last good copy, which has no current key."""
    try:
        inputs = services.lookup.lookup(req.shop, req.kind, req.product_id)
        # A render may read its documents again: the shop or product may be gone by then (Missing too).
        return services.renders.get(req, inputs)
    except Missing as missing:
        ttl = services.settings.negative_ttl_s
        raise ApiError(404, f"no such {missing.what}", {missing.what: "not found"},
                       cache_control=f"public, max-age={ttl}") from None
    except NotFoundRender:
        # A not-found the render cache remembers (this app's renders report Missing instead, but a
        # marker under the key is the cache's word): the same 404, never an error page.
        ttl = services.settings.negative_ttl_s
        raise ApiError(404, "no such widget", cache_control=f"public, max-age={ttl}") from None
    except StoreUnavailable:
        stale = services.renders.last_good(req)
        if stale is None:
            raise
        return stale, None


def widget_response(services: Services, req: WidgetRequest, result: CacheResult) -> Response:
    encoding = request.accept_encodings.best_match(ENCODINGS, default="identity") or "identity"
    status, headers, body = widget_answer(services.renders.headers_for(req).items(), result.entry,
                                          result.status, request.headers.get("If-None-Match"), encoding)
    if status == 304:
        return Response(status=304, headers=headers)
    # For HEAD, werkzeug sends these headers (Content-Length included) and drops the body.
    return Response(body, headers=headers)
