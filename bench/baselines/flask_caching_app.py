"""Baseline: what a team would write first, Flask-Caching ``@cache.cached(query_string=True)`` on Redis.

It reads the same database through the project's store, renders the same templates with the
project's ``render_widget`` and sends the same bytes and headers (the body compressed for the
request's ``Accept-Encoding`` exactly as the project compresses it), so the only difference
measured is the serving path: Flask-Caching pickles the whole response into Redis and unpickles
it on every hit. The encoding is part of the cache key (through ``key_prefix``): without it the
first client's encoding would be served to everyone. No ETag revalidation, no single-flight, no
in-process tier: that is the point of the comparison.

Configured by ``BENCH_FC_DATABASE_URL``, ``BENCH_FC_REDIS_URL``, ``BENCH_FC_KEY_PREFIX`` and
``BENCH_FC_PUBLIC_BASE_URL``.
"""

from __future__ import annotations

import gzip
import os
import uuid

import brotli
from flask import Flask, Response, abort, g, request
from flask_caching import Cache

from storefront.cache.entry import strong_etag
from storefront.render import render_widget
from storefront.store import create_store

CACHE_CONTROL = "public, max-age=60, s-maxage=86400, stale-while-revalidate=60, stale-if-error=86400"

app = Flask(__name__)
app.config.update(
    CACHE_TYPE="RedisCache",
    CACHE_REDIS_URL=os.environ["BENCH_FC_REDIS_URL"],
    CACHE_KEY_PREFIX=os.environ["BENCH_FC_KEY_PREFIX"],
    CACHE_DEFAULT_TIMEOUT=3600,
)
cache = Cache(app)
store = create_store(os.environ["BENCH_FC_DATABASE_URL"])
BASE_URL = os.environ["BENCH_FC_PUBLIC_BASE_URL"]


def _encoding() -> str:
    return request.accept_encodings.best_match(("br", "gzip", "identity"), default="identity") or "identity"


def _key_prefix() -> str:
    return f"view/{request.path}/{_encoding()}/"


@app.get("/v1/shops/<shop>/widgets/<filename>")
@cache.cached(query_string=True, key_prefix=_key_prefix)
def widget(shop: str, filename: str) -> Response:
    g.rendered = True
    kind, _, fmt = filename.partition(".")
    record = store.get_shop(shop)
    if record is None:
        abort(404)
    product = None
    if kind != "loyalty" and fmt != "css":
        product = store.get_product(shop, request.args.get("product", type=int) or 0)
        if product is None:
            abort(404)
    published = store.get_widget(shop, kind).published
    locale = request.args.get("locale")
    if fmt == "css" or locale not in record.locales:
        locale = record.default_locale
    body, content_type = render_widget(
        kind, fmt, shop=record.to_json(), settings=published.settings if published else None,
        settings_version=published.version if published else None,
        product=product.document if product else None, locale=locale, base_url=BASE_URL)
    tags = [f"shop:{shop}", f"widget:{shop}:{kind}"]
    if product is not None:
        tags.append(f"product:{shop}:{product.product_id}")
    headers = {"Cache-Control": CACHE_CONTROL, "Surrogate-Key": " ".join(tags), "Cache-Tag": ",".join(tags),
               "Vary": "Accept-Encoding", "ETag": strong_etag(body)}
    encoding = _encoding()
    if encoding == "gzip":
        body = gzip.compress(body, compresslevel=9, mtime=0)
    elif encoding == "br":
        body = brotli.compress(body, mode=brotli.MODE_TEXT, quality=11)
    if encoding != "identity":
        headers["Content-Encoding"] = encoding
    return Response(body, headers=headers, content_type=content_type)


@app.after_request
def _per_request_headers(response: Response) -> Response:
    # The project sends both on every response; the cached response object carries neither.
    response.headers["X-Cache"] = "MISS" if g.get("rendered") else "HIT"
    response.headers["X-Request-ID"] = uuid.uuid4().hex
    return response


@app.teardown_appcontext
def _close(_exc: BaseException | None) -> None:
    store.close()
