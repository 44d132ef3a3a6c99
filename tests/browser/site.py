"""A test site for browser tests: pages under a strict CSP, widget assets, and a cart that records posts.

Reusable on purpose: the widget assets come from a pluggable source. ``RenderedWidgets`` calls
``render_widget`` directly; ``FlaskWidgets`` forwards to the Flask app's real endpoints; or give
``widget_origin`` to point the pages at a running server. The pages and the asserts stay the same.
"""

from __future__ import annotations

import html
import json
import re
import threading
import time
from collections.abc import Callable, Iterable
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any
from urllib.parse import parse_qsl, urlsplit

from storefront.render import render_widget
from storefront.widget_settings import default_settings

REPO = Path(__file__).resolve().parents[2]
FIXTURES = REPO / "tests" / "fixtures"

# (path, raw query string, site origin) -> (status, body, content type), or None for a path it lacks.
WidgetSource = Callable[[str, str, str], "tuple[int, bytes, str] | None"]

WIDGET_PATH = re.compile(r"/v1/shops/([a-z0-9.-]+)/widgets/(subscription|bundle|loyalty)\.(js|html|json|css)")

# The page's own stylesheet: a fixed font size so em-based reservations are comparable in tests.
PAGE_CSS = (
    "body{margin:0;padding:16px;font:16px/1.5 sans-serif;max-width:480px}"
    "form{display:grid;gap:12px;margin:0 0 24px}"
    "select,button,input{font:inherit;min-height:40px}"
)


def load_product(name: str) -> dict[str, Any]:
    return json.loads((FIXTURES / "products" / f"{name}.json").read_text(encoding="utf-8"))


def load_shops() -> list[dict[str, Any]]:
    return json.loads((REPO / "storefront" / "demo_data" / "shops.json").read_text(encoding="utf-8"))["shops"]


class RenderedWidgets:
    """Widget assets straight from ``render_widget``, with the site's origin as the configured base URL."""

    def __init__(self, shops: Iterable[dict[str, Any]], products: Iterable[dict[str, Any]],
                 settings: dict[str, dict[str, Any] | None] | None = None, version: int = 1) -> None:
        self.shops = {shop["shop"]: shop for shop in shops}
        self.products = {product["id"]: product for product in products}
        # kind -> published settings; a kind that is absent uses the defaults, None means never published.
        self.settings = dict(settings or {})
        self.version = version

    def __call__(self, path: str, raw_query: str, origin: str) -> tuple[int, bytes, str] | None:
        match = WIDGET_PATH.fullmatch(path)
        if match is None:
            return None
        query = dict(parse_qsl(raw_query))
        shop_domain, kind, fmt = match.groups()
        shop = self.shops.get(shop_domain)
        product = self.products.get(int(query["product"])) if query.get("product", "").isdigit() else None
        if shop is None or (kind != "loyalty" and fmt != "css" and product is None):
            return 404, b"not found", "text/plain"
        locale = query.get("locale")
        if locale not in shop["locales"]:
            locale = shop["default_locale"]
        settings = self.settings.get(kind, default_settings(kind))
        body, content_type = render_widget(
            kind, fmt, shop=shop, settings=settings, settings_version=self.version if settings else None,
            product=product if kind != "loyalty" else None, locale=locale, base_url=origin)
        return 200, body, content_type


class FlaskWidgets:
    """Widget assets from the Flask app's real /v1 endpoints, through its test client.

    Build the app with ``PUBLIC_BASE_URL`` set to the site's origin, so the stylesheet URL in
    each script points back at this site.
    """

    def __init__(self, app: Any) -> None:
        self.client = app.test_client()
        # The test client is not meant for concurrent use; the site serves requests in threads.
        self.lock = threading.Lock()

    def __call__(self, path: str, raw_query: str, origin: str) -> tuple[int, bytes, str] | None:
        if not path.startswith("/v1/"):
            return None
        with self.lock:
            response = self.client.get(path, query_string=raw_query)
            return response.status_code, response.get_data(), response.content_type


class WidgetSite:
    """A threaded HTTP server on 127.0.0.1 (a free port) serving test pages, widget assets and a cart.

    Pages carry ``Content-Security-Policy: script-src <origin>; style-src <origin>`` (plus
    ``widget_origin`` when the widget comes from elsewhere). ``/cart/add`` and ``/cart/add.js`` record
    what they receive in ``cart_posts``. ``/static/*`` serves the repository's static/ folder.
    """

    def __init__(self, widgets: WidgetSource | None = None, *, widget_origin: str | None = None) -> None:
        self.widgets = widgets
        self.widget_origin = widget_origin
        # Seconds to hold every widget asset back: the page paints first, as on a slow network.
        self.widget_delay = 0.0
        self.pages: dict[str, str] = {}
        self.files: dict[str, tuple[bytes, str]] = {
            "/page.css": (PAGE_CSS.encode(), "text/css; charset=utf-8")}
        self.cart_posts: list[dict[str, Any]] = []
        self.requests: list[str] = []
        self._posted = threading.Condition()
        self._server = ThreadingHTTPServer(("127.0.0.1", 0), self._handler())
        self._server.daemon_threads = True
        self.origin = f"http://127.0.0.1:{self._server.server_address[1]}"
        self._thread = threading.Thread(target=self._server.serve_forever, name="widget-site", daemon=True)

    def __enter__(self) -> WidgetSite:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._server.shutdown()
        self._server.server_close()
        self._thread.join(5)

    @property
    def csp(self) -> str:
        sources = " ".join(dict.fromkeys(filter(None, [self.origin, self.widget_origin])))
        return f"script-src {sources}; style-src {sources}"

    def widget_url(self, kind: str, fmt: str, shop: str, *, product: int | None = None,
                   locale: str | None = None) -> str:
        query = []
        if product is not None:
            query.append(f"product={product}")
        if locale is not None:
            query.append(f"locale={locale}")
        base = self.widget_origin or self.origin
        return f"{base}/v1/shops/{shop}/widgets/{kind}.{fmt}" + ("?" + "&".join(query) if query else "")

    def add_page(self, path: str, page: str) -> str:
        self.pages[path] = page
        return self.origin + path

    def wait_for_cart_posts(self, count: int, timeout: float = 5.0) -> list[dict[str, Any]]:
        with self._posted:
            self._posted.wait_for(lambda: len(self.cart_posts) >= count, timeout)
            return list(self.cart_posts)

    def _record(self, entry: dict[str, Any]) -> None:
        with self._posted:
            self.cart_posts.append(entry)
            self._posted.notify_all()

    def _handler(self) -> type[BaseHTTPRequestHandler]:
        site = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def log_message(self, format: str, *args: object) -> None:  # noqa: A002 - stdlib signature
                pass  # keep test output clean

            def _send(self, status: int, body: bytes, content_type: str, csp: bool = False) -> None:
                self.send_response(status)
                self.send_header("Content-Type", content_type)
                self.send_header("Content-Length", str(len(body)))
                self.send_header("Cache-Control", "no-store")
                if csp:
                    self.send_header("Content-Security-Policy", site.csp)
                self.end_headers()
                if self.command != "HEAD":
                    self.wfile.write(body)

            def do_GET(self) -> None:  # noqa: N802 - stdlib name
                parts = urlsplit(self.path)
                site.requests.append(self.path)
                if parts.path in site.pages:
                    body = site.pages[parts.path].encode()
                    return self._send(200, body, "text/html; charset=utf-8", csp=True)
                if parts.path in site.files:
                    body, content_type = site.files[parts.path]
                    return self._send(200, body, content_type)
                if parts.path.startswith("/static/") and "/.." not in parts.path:
                    file = REPO / "static" / parts.path[len("/static/"):]
                    if file.is_file():
                        kind = "text/css" if file.suffix == ".css" else "application/javascript"
                        return self._send(200, file.read_bytes(), f"{kind}; charset=utf-8")
                if site.widgets is not None:
                    answer = site.widgets(parts.path, parts.query, site.origin)
                    if answer is not None:
                        time.sleep(site.widget_delay)
                        return self._send(*answer)
                return self._send(404, b"not found", "text/plain")

            def do_POST(self) -> None:  # noqa: N802 - stdlib name
                parts = urlsplit(self.path)
                length = int(self.headers.get("Content-Length") or 0)
                raw = self.rfile.read(length)
                if parts.path == "/cart/add.js":
                    payload = json.loads(raw or b"{}")
                    site._record({"path": parts.path, "json": payload,
                                  "content_type": self.headers.get("Content-Type")})
                    return self._send(200, json.dumps({"items": payload.get("items", [])}).encode(),
                                      "application/json")
                if parts.path == "/cart/add":
                    form: dict[str, list[str]] = {}
                    for key, value in parse_qsl(raw.decode(), keep_blank_values=True):
                        form.setdefault(key, []).append(value)
                    site._record({"path": parts.path, "form": form})
                    return self._send(200, page("Added", "<p>Added to cart</p>").encode(),
                                      "text/html; charset=utf-8", csp=True)
                return self._send(404, b"not found", "text/plain")

        return Handler


def page(title: str, body: str, *, head: str = "") -> str:
    """A complete HTML page that links the page stylesheet; no inline script or style anywhere."""
    return (f'<!doctype html>\n<html lang="en">\n<head>\n<meta charset="utf-8">\n<title>{html.escape(title)}'
            f'</title>\n<link rel="icon" href="data:,">\n<link rel="stylesheet" href="/page.css">\n{head}\n'
            f"</head>\n<body>\n{body}\n</body>\n</html>\n")


def script_tag(src: str) -> str:
    return f'<script src="{html.escape(src)}" defer></script>'


def stylesheet_tag(href: str) -> str:
    return f'<link rel="stylesheet" href="{html.escape(href)}">'


def product_form(product: dict[str, Any], *, placeholder: str | None = "subscription",
                 variant: int | None = None, attributes: str = "") -> str:
    """A theme-like add-to-cart form: a variant <select name=id>, quantity, the widget placeholder
    (inside the form, where app blocks usually sit) and the submit button."""
    variants = product["variants"]
    chosen = variant or next((v["id"] for v in variants if v["available"]), variants[0]["id"])
    options = "".join(
        f'<option value="{v["id"]}"{" selected" if v["id"] == chosen else ""}>'
        f'{html.escape(v["title"])}</option>' for v in variants)
    spot = (f'<div data-storefront-widget="{placeholder}" data-product-id="{product["id"]}"></div>'
            if placeholder else "")
    return (f'<form action="/cart/add" method="post" {attributes}>\n'
            f'<h2>{html.escape(product["title"])}</h2>\n'
            f'<select name="id" aria-label="Variant">{options}</select>\n'
            f'<input type="number" name="quantity" value="1" min="1" aria-label="Quantity">\n'
            f"{spot}\n"
            f'<button type="submit">Add to cart</button>\n</form>')
