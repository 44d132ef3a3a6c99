"""Parse and normalise a public widget request strictly: allow-listed, unrepeated, literal parameters."""

from __future__ import annotations

import dataclasses
import re

from storefront.store import WIDGET_KINDS
from storefront.web.errors import ApiError

FORMATS = ("js", "html", "json", "css")
SHOP = re.compile(r"[a-z0-9][a-z0-9-]{0,60}\.myshopify\.com")
PRODUCT = re.compile(r"[0-9]{1,20}")
LOCALE = re.compile(r"[a-z]{2}(?:-[A-Z]{2})?")
BUSTER = re.compile(r"[A-Za-z0-9._-]{1,32}")
CANONICAL_KIND = re.compile(r"[a-z]{1,32}")
ALLOWED = {"product": PRODUCT, "locale": LOCALE, "v": BUSTER}
# Kinds whose render depends on a product; loyalty accepts ?product= but ignores it.
NEEDS_PRODUCT = ("subscription", "bundle")


@dataclasses.dataclass(frozen=True)
class WidgetRequest:
    shop: str
    kind: str
    fmt: str
    product_id: int | None
    # As asked; resolved against the shop's locales once the shop is known.
    locale: str | None


def _bad(field: str, why: str) -> ApiError:
    return ApiError(400, f"{field}: {why}", {field: why})


def parse_query(raw_query: str, allowed: dict[str, re.Pattern[str]]) -> dict[str, str]:
    """Parse the raw query string without decoding anything.

    None of the allowed values ever needs percent-encoding, so a name or value is taken
    literally: ``pro%64uct`` is an unknown parameter and ``;`` is never a separator. This keeps
    the origin's view of a URL identical to any cache's view of it (no parameter cloaking).
    """
    params: dict[str, str] = {}
    if not raw_query:
        return params
    for pair in raw_query.split("&"):
        name, sep, value = pair.partition("=")
        if not sep:
            raise _bad(name[:40] or "query", "every parameter needs a value")
        if name not in allowed:
            raise _bad(name[:40] or "query", "unknown parameter")
        if name in params:
            raise _bad(name, "given more than once")
        if not allowed[name].fullmatch(value):
            raise _bad(name, "malformed value")
        params[name] = value
    return params


def parse_widget_request(shop: str, filename: str, raw_path: str, raw_query: str,
                         has_body: bool) -> WidgetRequest:
    """Validate one request for ``/v1/shops/{shop}/widgets/{kind}.{fmt}``; 400 or 404 on anything off."""
    kind, dot, fmt = filename.partition(".")
    if not dot or kind not in WIDGET_KINDS or fmt not in FORMATS:
        # Only a canonical-looking name may be remembered by shared caches: a cache that
        # normalises paths (case, ";params", "%00") could otherwise store this 404 under a real
        # widget's key.
        canonical = CANONICAL_KIND.fullmatch(kind) is not None and fmt in FORMATS
        raise ApiError(404, "no such widget; use /v1/shops/{shop}/widgets/{kind}.js|.html|.json",
                       {"kind": "unknown"}, cache_control="public, max-age=60" if canonical else "no-store")
    # The raw path must be literal too: a percent-encoded shop names the same resource twice.
    if "%" in raw_path or not SHOP.fullmatch(shop):
        raise _bad("shop", "must be a lower-case *.myshopify.com domain")
    if has_body:
        raise _bad("body", "a GET request takes no body")
    params = parse_query(raw_query, ALLOWED)
    product_id = None
    if kind in NEEDS_PRODUCT and fmt != "css":
        if "product" not in params:
            raise _bad("product", "required for this widget")
        product_id = int(params["product"])
    return WidgetRequest(shop=shop, kind=kind, fmt=fmt, product_id=product_id,
                         locale=params.get("locale"))


def resolve_locale(asked: str | None, default_locale: str, locales: tuple[str, ...]) -> str:
    """A locale the shop does not offer falls back to its default (and is keyed as that)."""
    return asked if asked in locales else default_locale
