"""What every widget kind renders with: merged settings, resolved labels, shop money and safe URLs/colours."""

from __future__ import annotations

import re
from typing import Any
from urllib.parse import urlsplit

from storefront.money import format_money
from storefront.widget_settings import LABELS, copy_json, default_settings

# Texts the render needs that widget_settings does not (yet) let merchants edit. They resolve through
# the same chain as the merchant labels, so they become translatable as soon as the keys are added there.
EXTRA_LABELS: dict[str, dict[str, str]] = {
    "subscription": {
        "purchase_options": "Purchase options",
        "first_order_discount": "{first} on your first order, then {later}",
        "first_orders_discount": "{first} on your first {count} orders, then {later}",
        "regular_price": "regular price",
        "then_price": "then {price}",
    },
    "bundle": {
        "add_one": "Add one {item}",
        "remove_one": "Remove one {item}",
        "collection_short": "{collection}: {range}",
        "added": "Added to cart",
        "add_failed": "Could not add to cart. Please try again.",
    },
    "loyalty": {
        "tier_from": "{points}+ points",
    },
}

COLOR = re.compile(r"#[0-9a-fA-F]{3}(?:[0-9a-fA-F]{3})?")
PLACEHOLDER = re.compile(r"\{(\w+)\}")
# Shopify money formats may carry markup (`<span class=money>`); we render plain text only.
TAG = re.compile(r"<[^>]*>")
UNSAFE_URL_CHARS = re.compile(r"[\x00-\x20\x7f\"'<>\\`]")


def shop_money(subunits: int, money_format: str) -> str:
    """The shop's money format as plain text (any markup in the format is dropped, never trusted)."""
    return TAG.sub("", format_money(subunits, money_format or "{{amount}}")).strip()


def label_defaults(kind: str) -> dict[str, str]:
    """Built-in texts for every label key of ``kind``: widget_settings first, then our extras."""
    defaults = dict(EXTRA_LABELS[kind])
    defaults.update({key: text for key, (text, _) in LABELS[kind].items()})
    return defaults


def merge_settings(kind: str, settings: dict[str, Any]) -> dict[str, Any]:
    """Published settings over the defaults, so a partial or older document still renders."""
    merged = default_settings(kind)
    for key, value in settings.items():
        if key in ("colors", "labels", "translations"):
            if isinstance(value, dict):
                merged[key].update(copy_json(value))
        else:
            merged[key] = copy_json(value)
    return merged


def resolve_labels(kind: str, settings: dict[str, Any], locale: str, default_locale: str) -> dict[str, str]:
    """Each label from the first source that has it.

    translations[locale] -> (translations[default_locale] unless locale is the default) ->
    settings.labels -> built-in defaults.
    """
    translations = settings.get("translations") or {}
    chain = [translations.get(locale)]
    if locale != default_locale:
        chain.append(translations.get(default_locale))
    chain.append(settings.get("labels"))
    chain = [source for source in chain if isinstance(source, dict)]
    resolved = {}
    for key, default in label_defaults(kind).items():
        text = next((source[key] for source in chain if isinstance(source.get(key), str) and source[key]),
                    default)
        resolved[key] = text
    return resolved


def fill(text: str, **values: object) -> str:
    """Replace ``{name}`` placeholders in one pass; unknown names stay as typed (plain text either way)."""
    def replace(match: re.Match[str]) -> str:
        name = match.group(1)
        return str(values[name]) if name in values else match.group(0)

    return PLACEHOLDER.sub(replace, text)


def safe_color(value: object, default: str) -> str:
    """A #rgb/#rrggbb colour or the default: colours end up in CSS, so nothing else may pass."""
    return value if isinstance(value, str) and COLOR.fullmatch(value) else default


def safe_https_url(value: object) -> str | None:
    """An absolute https:// URL fit for an href, or None."""
    if not isinstance(value, str) or UNSAFE_URL_CHARS.search(value):
        return None
    parts = urlsplit(value)
    if parts.scheme.lower() != "https" or not parts.hostname:
        return None
    return value


class WidgetContext:
    """Shop money, labels and colours for one render; built once per call."""

    def __init__(self, kind: str, shop: dict[str, Any], settings: dict[str, Any], locale: str) -> None:
        self.kind = kind
        self.shop = shop
        self.settings = merge_settings(kind, settings)
        self.locale = locale
        self.labels = resolve_labels(kind, self.settings, locale, shop.get("default_locale") or locale)
        self.money_format = shop.get("money_format") or ""

    def money(self, subunits: int) -> str:
        return shop_money(subunits, self.money_format)

    def label(self, key: str, **values: object) -> str:
        return fill(self.labels[key], **values)

    def colors(self) -> dict[str, str]:
        defaults = default_settings(self.kind)["colors"]
        given = self.settings.get("colors") or {}
        return {name: safe_color(given.get(name), default) for name, default in sorted(defaults.items())}

    def common(self) -> dict[str, Any]:
        """Keys every enabled model starts with."""
        return {
            "kind": self.kind,
            "enabled": True,
            "shop": self.shop.get("shop"),
            "locale": self.locale,
            "currency": self.shop.get("currency"),
            "colors": self.colors(),
            "labels": dict(sorted(self.labels.items())),
        }
