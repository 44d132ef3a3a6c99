"""Widget scripts and stylesheets: sources minified once at import, composed per render; the size report."""

from __future__ import annotations

import gzip
import json
import re
from pathlib import Path
from typing import Any

import brotli

from storefront.render.context import merge_settings, safe_color
from storefront.render.encoding import inert_json
from storefront.render.templates import TEMPLATES
from storefront.widget_settings import COMMON_DEFAULTS

# The render cache compresses with brotli_compress too, so these figures are the bytes shoppers
# download. Brotli 11 makes a widget script ~7% smaller than 6 but costs ~20 ms instead of ~0.5 ms, on the
# miss that a shopper (or the CDN on their behalf) is waiting for. Measured in docs/benchmarks.md.
BROTLI_QUALITY = 6


def brotli_compress(body: bytes) -> bytes:
    """Brotli as the origin sends it (storefront/cache/entry.py): quality 6, text mode, and a window
    just large enough for the body. The default 4 MiB window buys a widget nothing, and its buffers
    cost every miss time and memory the allocator keeps."""
    window = min(24, max(10, len(body).bit_length()))
    return brotli.compress(body, mode=brotli.MODE_TEXT, quality=BROTLI_QUALITY, lgwin=window)


SOURCES = TEMPLATES / "widgets"
KINDS = ("subscription", "bundle", "loyalty")
CSS_COMMENT = re.compile(r"/\*.*?\*/", re.DOTALL)


def minify_js(source: str) -> str:
    """Drop whole-line comments, blank lines and indentation; keep every line break.

    Only comments that start a line go, so nothing inside a string can be taken for one, and
    keeping the line breaks leaves automatic semicolon insertion exactly as in the source.
    A line that opens a block comment must be comment only: code after ``*/`` is refused.
    """
    lines = []
    in_comment = False
    for raw in source.split("\n"):
        line = raw.strip()
        if line.startswith("/*") and not in_comment:
            in_comment = True
            line = line[2:]
        if in_comment:
            if "*/" in line:
                in_comment = False
                if line.split("*/", 1)[1].strip():
                    raise ValueError(f"code after a block comment on one line: {raw!r}")
            continue
        if line and not line.startswith("//"):
            lines.append(line)
    return "\n".join(lines)


def minify_css(source: str) -> str:
    """Drop comments (our sources hold no strings that contain ``/*``) and the layout around rules."""
    parts = []
    for line in CSS_COMMENT.sub("", source).split("\n"):
        line = line.strip()
        if line:
            # A line ending inside a selector or value needs its separator; one ending a rule does not.
            parts.append(line if line[-1] in "{};," else line + " ")
    return "".join(parts).strip()


def _read(name: str) -> str:
    return (SOURCES / name).read_text(encoding="utf-8")


# Minified once, at import: a render only concatenates strings.
RUNTIME_JS = minify_js(_read("runtime.js"))
KIND_JS = {
    "subscription": minify_js(_read("subscription.js")),
    "bundle": minify_js(_read("bundle.js")),
    "loyalty": "function init(){}",
}
BASE_CSS = minify_css(_read("widget.css"))
KIND_CSS = {kind: minify_css(_read(f"{kind}.css")) for kind in KINDS}


def compose_script(kind: str, *, product_id: int | None, id_prefix: str, stylesheet_url: str, html: str,
                   data: dict[str, Any]) -> str:
    """The widget's .js: one IIFE holding the HTML and data as JSON literals, then the shared runtime."""
    constants = ",".join([
        "S=document.currentScript",
        f"K={inert_json(kind)}",
        f"P={inert_json(product_id)}",
        f"X={inert_json(id_prefix)}",
        f"C={inert_json(stylesheet_url)}",
        f"H={inert_json(html)}",
        f"M={inert_json(data)}",
    ])
    return (f"/* storefront {kind} widget */\n(function(){{\n\"use strict\";\nvar {constants};\n"
            f"{RUNTIME_JS}\n{KIND_JS[kind]}\nstart();\n}})();\n")


def _reserve(kind: str, settings: dict[str, Any]) -> str | None:
    """Height the placeholder keeps free (in em of the widget's font) so mounting shifts nothing.

    Mirrors the stylesheet's row sizes for the collapsed widget with one-line texts; bundles depend
    on the product, which the stylesheet does not know, so they reserve nothing.
    """
    if kind == "subscription":
        rows = {"radio_group": 2 * 2.75 + 0.5, "button_group": 3.5, "checkbox": 2.75}
        height = rows.get(settings.get("template"), rows["radio_group"])
        if settings.get("default_selection") == "subscription":
            height += 0.5 + 2.75
        if settings.get("show_details"):
            height += 0.5 + 2.0
    elif kind == "loyalty":
        paragraph = 1.25 + 0.5
        height = 2.0 + (1.25 * 1.25 + 0.5 * 1.25) + paragraph
        if settings.get("signup_bonus"):
            height += paragraph
        tiers = [tier for tier in settings.get("tiers") or [] if isinstance(tier, dict)]
        if tiers:
            height += 0.5 + sum(1.25 * (1 + len([p for p in tier.get("perks") or [] if p])) for tier in tiers)
        if settings.get("join_url"):
            height += 2.75
    else:
        return None
    # A quarter em of slack absorbs sub-pixel rounding of line boxes.
    return f"calc({height + 0.25:g}em + 2px)"


def stylesheet(kind: str, settings: dict[str, Any]) -> str:
    """The kind's .css: merchant colours as custom properties on the kind's root class, the
    placeholder reservation, then the shared and the kind's rules."""
    merged = merge_settings(kind, settings)
    given = merged.get("colors") or {}
    colors = {name: safe_color(given.get(name), default)
              for name, default in COMMON_DEFAULTS["colors"].items()}
    rules = [
        f"/* storefront {kind} widget */",
        (f".sfw-{kind}{{--sfw-accent:{colors['accent']};--sfw-bg:{colors['background']};"
         f"--sfw-text:{colors['text']};--sfw-border:{colors['border']}}}"),
    ]
    reserve = _reserve(kind, merged)
    if reserve:
        rules.append(f'[data-storefront-widget="{kind}"]{{display:block;min-height:{reserve}}}')
    rules += [BASE_CSS, KIND_CSS[kind]]
    return "\n".join(rules) + "\n"


def _sizes(body: bytes) -> dict[str, int]:
    return {
        "raw": len(body),
        "gzip": len(gzip.compress(body, compresslevel=9, mtime=0)),
        "brotli": len(brotli_compress(body)),
    }


def size_report() -> dict[str, Any]:
    """Raw, gzip (9) and brotli (6, as sent) byte counts of every kind's .js and .css on the demo data.

    ``{kind: {case: {"js": sizes, "css": sizes, "js+css": sizes}}}`` where a case is a product
    handle (subscription, bundle: every fixture product that does not render empty, in its demo
    shop) or a shop domain (loyalty). Settings are the demo catalog's, merged onto the defaults.
    """
    from storefront.render.widget import render_widget

    data = Path(__file__).resolve().parents[1] / "demo_data"
    shops = json.loads((data / "shops.json").read_text(encoding="utf-8"))["shops"]
    catalog_path = data / "catalog.json"
    catalog = json.loads(catalog_path.read_text(encoding="utf-8")) if catalog_path.exists() else {}
    widgets = catalog.get("widgets") or {}
    # Each product in the first demo shop that lists it (the sake in the JPY shop), else the first shop.
    home = {}
    for shop in shops:
        for name in (catalog.get("products") or {}).get(shop["shop"], []):
            home.setdefault(name, shop)

    cases: list[tuple[str, str, dict[str, Any], dict[str, Any] | None]] = [
        ("loyalty", shop["shop"], shop, None) for shop in shops]
    for path in sorted((data / "products").glob("*.json")):
        product = json.loads(path.read_text(encoding="utf-8"))
        for kind in ("subscription", "bundle"):
            cases.append((kind, product["handle"], home.get(path.name, shops[0]), product))

    report: dict[str, Any] = {}
    for kind, name, shop, product in cases:
        settings = merge_settings(kind, widgets.get(kind) or {})
        entry = {}
        for fmt in ("js", "css"):
            body, _ = render_widget(kind, fmt, shop=shop, settings=settings, settings_version=1,
                                    product=product, locale=shop["default_locale"],
                                    base_url="https://widgets.example.com")
            if fmt == "js" and body.startswith(b"/* storefront: "):
                break  # renders empty for this kind: nothing to weigh
            entry[fmt] = _sizes(body)
        else:
            entry["js+css"] = {key: entry["js"][key] + entry["css"][key] for key in ("raw", "gzip", "brotli")}
            report.setdefault(kind, {})[name] = entry
    return report
