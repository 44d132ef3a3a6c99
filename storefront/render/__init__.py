"""Widget rendering: a pure function of plain data (shop, settings, product, locale) to bytes."""

from __future__ import annotations

from storefront.render.model import KINDS, build_model
from storefront.render.widget import CONTENT_TYPES, render_widget, stylesheet_url

__all__ = ["CONTENT_TYPES", "KINDS", "build_model", "render_widget", "stylesheet_url"]
