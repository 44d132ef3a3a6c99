"""Widget renders through the render cache: the cache key, the render call, and the response headers."""

from __future__ import annotations

import functools
import hashlib
import time
from pathlib import Path

from storefront import metrics
from storefront.cache import STALE, CacheResult, RenderCache
from storefront.render import render_widget
from storefront.settings import Settings
from storefront.web.widget_request import WidgetRequest, resolve_locale
from storefront.widget_lookup import RenderInputs, WidgetLookup

_ROOT = Path(__file__).resolve().parent


@functools.cache
def render_revision() -> str:
    """A digest of the code and templates that produce widget bytes.

    It is part of every cache key, so a deploy that changes a template never serves bytes
    rendered by the old one from Redis.
    """
    digest = hashlib.blake2b(digest_size=6)
    templates = _ROOT.parent / "templates" / "widgets"
    sources = sorted((_ROOT / "render").rglob("*")) + sorted(templates.rglob("*"))
    for path in sources:
        if path.is_file() and path.suffix in (".py", ".html", ".js", ".css", ".txt"):
            digest.update(path.name.encode())
            digest.update(path.read_bytes())
    return digest.hexdigest()


class WidgetRenders:
    """Builds keys from the normalised request plus versions, and renders on a miss."""

    def __init__(self, cache: RenderCache, settings: Settings, lookup: WidgetLookup,
                 revision: str | None = None) -> None:
        self.cache = cache
        self.lookup = lookup
        self.settings = settings
        self.revision = revision or render_revision()
        self.cache_control = (
            f"public, max-age={settings.browser_ttl_s}, s-maxage={settings.edge_ttl_s}, "
            f"stale-while-revalidate={settings.stale_while_revalidate_s}, "
            f"stale-if-error={settings.stale_if_error_s}")

    @staticmethod
    def tags(req: WidgetRequest) -> tuple[str, ...]:
        tags = (f"shop:{req.shop}", f"widget:{req.shop}:{req.kind}")
        if req.product_id is not None:
            tags += (f"product:{req.shop}:{req.product_id}",)
        return tags

    def headers_for(self, req: WidgetRequest) -> dict[str, str]:
        tags = self.tags(req)
        return {
            "Cache-Control": self.cache_control,
            "Surrogate-Key": " ".join(tags),
            "Cache-Tag": ",".join(tags),
            "Vary": "Accept-Encoding",
        }

    @staticmethod
    def _scope(req: WidgetRequest) -> str:
        # Braces make this Redis Cluster hash tag: a render's value, lock and last-good copy share a slot.
        return f"{{{req.shop}:{req.kind}:{req.product_id or '-'}}}:{req.fmt}"

    @staticmethod
    def purge_pattern(shop: str, kind: str | None, product_id: int | None) -> str:
        """A Redis glob for every cached render of a scope (shop, shop+kind, shop+product...)."""
        return f"{{{shop}:{kind or '*'}:{product_id if product_id is not None else '*'}}}*"

    def _last_good_key(self, req: WidgetRequest, stale_locale: str) -> str:
        return f"{self._scope(req)}:{stale_locale}"

    @staticmethod
    def resolve_locale(req: WidgetRequest, inputs: RenderInputs) -> str:
        if req.fmt == "css":
            return inputs.default_locale  # the stylesheet is the same in every language
        return resolve_locale(req.locale, inputs.default_locale, inputs.locales)

    def key_for(self, req: WidgetRequest, inputs: RenderInputs) -> str:
        """The render's cache key: normalised request, versions of its inputs, code revision."""
        locale = self.resolve_locale(req, inputs)
        return f"{self._scope(req)}:{locale}:{inputs.versions}:{self.revision}"

    def get(self, req: WidgetRequest, inputs: RenderInputs) -> tuple[CacheResult, str]:
        """The render and its key (from a tier, or rendered once)."""
        locale = self.resolve_locale(req, inputs)
        stale_locale = "" if locale == inputs.default_locale else locale
        key = self.key_for(req, inputs)

        def render() -> tuple[bytes, str]:
            started = time.perf_counter()
            # The documents read with these very versions, else read now (versions read later can
            # only be newer): the bytes under this key are never older than the key says.
            full = inputs if inputs.complete else self.lookup.read(req.shop, req.kind, req.product_id,
                                                                  inputs.versions)
            rendered = render_widget(
                req.kind, req.fmt, shop=full.shop, settings=full.settings,
                settings_version=full.settings_version, product=full.product, locale=locale,
                base_url=self.settings.public_base_url)
            metrics.RENDERS.labels(req.kind).inc()
            metrics.RENDER_DURATION.labels(req.kind).observe(time.perf_counter() - started)
            return rendered

        result = self.cache.get_or_render(key, render, tags=self.tags(req),
                                          last_good_key=self._last_good_key(req, stale_locale))
        return result, key

    def last_good(self, req: WidgetRequest) -> CacheResult | None:
        """The last good render when the inputs cannot be read (database down), else None."""
        for stale_locale in dict.fromkeys((req.locale or "", "")):
            entry = self.cache.get_stale(self._last_good_key(req, stale_locale))
            if entry is not None:
                metrics.STALE_SERVED.inc()
                return CacheResult(entry, STALE, "stale")
        return None
