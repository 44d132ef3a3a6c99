"""Widget settings per kind: the defaults, the label keys and the placeholders each label may use."""

from __future__ import annotations

from typing import Any

COMMON_DEFAULTS: dict[str, Any] = {
    "enabled": True,
    "colors": {"accent": "#1a1a1a", "background": "#ffffff", "text": "#1a1a1a", "border": "#d4d4d4"},
    "translations": {},
}

# label key -> (default text, placeholders it may use)
LABELS: dict[str, dict[str, tuple[str, frozenset[str]]]] = {
    "subscription": {
        "onetime": ("One-time purchase", frozenset()),
        "subscribe": ("Subscribe & save {discount}", frozenset({"discount"})),
        "subscribe_no_discount": ("Subscribe", frozenset()),
        "deliver_every": ("Deliver every", frozenset()),
        "details_title": ("How subscriptions work", frozenset()),
        "details_body": (
            "Products are delivered on your schedule. Skip, change or cancel anytime.",
            frozenset(),
        ),
        "learn_more": ("Learn more", frozenset()),
    },
    "bundle": {
        "title": ("Build your box", frozenset()),
        "choose_range": ("Choose {min}-{max}", frozenset({"min", "max"})),
        "add_more": ("Add {remainder} more to continue", frozenset({"remainder"})),
        "full": ("Your box is full", frozenset()),
        "add_to_cart": ("Add box to cart", frozenset()),
    },
    "loyalty": {
        "title": ("Rewards", frozenset()),
        "earn": ("Earn {points} points for every {amount} spent", frozenset({"points", "amount"})),
        "signup": ("Join and get {bonus} points", frozenset({"bonus"})),
        "join": ("Join now", frozenset()),
    },
}

# Labels longer than 200 characters are refused; this one may hold a paragraph.
LONG_LABELS = {"details_body": 1000}
LABEL_MAX = 200
MAX_TRANSLATION_LOCALES = 20

KIND_DEFAULTS: dict[str, dict[str, Any]] = {
    "subscription": {
        "template": "radio_group",
        "first_option": "onetime",
        "default_selection": "onetime",
        "show_details": True,
        "learn_more_url": None,
    },
    "bundle": {},
    "loyalty": {
        "points_per_unit": 1,
        "signup_bonus": 0,
        "join_url": None,
        "tiers": [],
    },
}


def default_settings(kind: str) -> dict[str, Any]:
    """A fresh, complete settings dict for ``kind`` (labels included)."""
    settings = copy_json(COMMON_DEFAULTS)
    settings.update(copy_json(KIND_DEFAULTS[kind]))
    settings["labels"] = {key: text for key, (text, _) in LABELS[kind].items()}
    return settings


def copy_json(value: Any) -> Any:
    """A deep copy of a JSON-like value (dicts and lists of scalars, tuples of immutables).

    What copy.deepcopy gives for such values, several times faster: every render copies the
    defaults and the published settings, and deepcopy's memo and dispatch were a fifth of a render.
    """
    if isinstance(value, dict):
        return {key: copy_json(item) for key, item in value.items()}
    if isinstance(value, list):
        return [copy_json(item) for item in value]
    return value
