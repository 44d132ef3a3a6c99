"""Admin API validation: JSON bodies -> normalized shop, product and widget settings, or field errors."""

from __future__ import annotations

import copy
import json
import math
import re
from collections.abc import Callable, Iterable
from typing import Any
from urllib.parse import urlsplit

from storefront.money import MONEY_PLACEHOLDERS, PLACEHOLDER
from storefront.widget_settings import (
    COMMON_DEFAULTS,
    LABEL_MAX,
    LABELS,
    LONG_LABELS,
    MAX_TRANSLATION_LOCALES,
    default_settings,
)

# The key used in ``fields`` when the body itself (not one of its members) is wrong.
ROOT_PATH = "$"

# Ids are stored as BIGINT; 0 and negatives are never Shopify ids.
MAX_ID = 2**63 - 1
# Amounts travel to JavaScript in the .json/.js renders, so keep them exact there.
MAX_AMOUNT = 2**53 - 1
MAX_SMALL_INT = 2**31 - 1

TEXT_MAX = 255
DESCRIPTION_MAX = 5000
URL_MAX = 2000
SHOP_NAME_MAX = 200
MONEY_FORMAT_MAX = 100
MAX_LOCALES = 20

MAX_VARIANTS = 250
MAX_GROUPS = 50
MAX_PLANS_PER_GROUP = 100
# One allocation per plan is the most a variant can meaningfully have.
MAX_ALLOCATIONS = MAX_GROUPS * MAX_PLANS_PER_GROUP
MAX_OPTIONS = 3
MAX_OPTION_VALUES = MAX_PLANS_PER_GROUP
MAX_PRICE_ADJUSTMENTS = 2
MAX_COLLECTIONS = 50
MAX_COLLECTION_PRODUCTS = 250
MAX_BUNDLE_ITEMS = 1000

MAX_TIERS = 10
MAX_PERKS = 10
MAX_POINTS_PER_UNIT = 1000
MAX_SIGNUP_BONUS = 1_000_000

VALUE_TYPES = ("percentage", "fixed_amount", "price")
TEMPLATES = ("radio_group", "button_group", "checkbox")
PURCHASE_OPTIONS = ("onetime", "subscription")

# fullmatch everywhere: with re.match, "$" would also accept a trailing newline.
_SHOP_DOMAIN = re.compile(r"[a-z0-9][a-z0-9-]{0,60}\.myshopify\.com")
_LOCALE = re.compile(r"[a-z]{2}(-[A-Z]{2})?")
_PRODUCT_ID = re.compile(r"[0-9]{1,20}")
_CURRENCY = re.compile(r"[A-Z]{3}")
_COLOR = re.compile(r"#[0-9a-fA-F]{3}([0-9a-fA-F]{3})?")
_GROUP_HASH = re.compile(r"[0-9a-f]{40}")
# Handles end up in storefront URLs (/products/<handle>).
_HANDLE = re.compile(r"[^\s/?#]+")

_SURROGATE = re.compile(r"[\ud800-\udfff]")
# C0, DEL, C1 and the Unicode line/paragraph separators: labels are single-line plain text.
_CONTROL = re.compile(r"[\x00-\x1f\x7f-\x9f\u2028\u2029]")
# Plan descriptions come from Shopify and may hold line breaks and tabs.
_CONTROL_EXCEPT_LINE_BREAKS = re.compile(r"[\x00-\x08\x0b\x0c\x0e-\x1f\x7f-\x9f]")

_BRACE_TOKEN = re.compile(r"\{([^{}]*)\}|[{}]")
_PLACEHOLDER_NAME = re.compile(r"[A-Za-z_][A-Za-z0-9_]*")

# Characters RFC 3986 never allows raw; a backslash is read as "/" by browsers.
_URL_FORBIDDEN = re.compile(r'[\s"<>\\^`{|}]')
_HOST_LABEL = re.compile(r"[a-z0-9]([a-z0-9-]{0,61}[a-z0-9])?")

_PLAIN_SEGMENT = re.compile(r"[A-Za-z0-9_-]+")


class ValidationFailed(Exception):
    """The body broke one or more rules; ``fields`` maps each JSON path to why (the 422 ``fields``)."""

    def __init__(self, fields: dict[str, str]) -> None:
        self.fields = dict(fields)
        super().__init__("invalid: " + ", ".join(self.fields))


# -- public helpers ----------------------------------------------------------------------


def valid_shop_domain(text: object) -> bool:
    """True for a permanent shop domain such as ``demo-coffee.myshopify.com``."""
    return isinstance(text, str) and _SHOP_DOMAIN.fullmatch(text) is not None


def valid_locale(text: object) -> bool:
    """True for ``en`` or ``fr-CA``."""
    return isinstance(text, str) and _LOCALE.fullmatch(text) is not None


def parse_product_id(text: str) -> int:
    """``"7001000000001"`` -> ``7001000000001``; ValueError unless 1-20 ASCII digits.

    ``int()`` alone would also take ``+1``, `` 1``, ``1_000`` and non-ASCII digits. A 20-digit
    value may exceed :data:`MAX_ID`; no stored product has such an id.
    """
    if not isinstance(text, str) or _PRODUCT_ID.fullmatch(text) is None:
        raise ValueError("a product id is 1-20 digits")
    return int(text)


# -- errors and paths --------------------------------------------------------------------


class _Invalid:
    """Stands in for a value that failed; every one is paired with an entry in ``fields``."""

    __slots__ = ()

    def __repr__(self) -> str:
        return "<invalid>"


_INVALID: Any = _Invalid()
_MISSING: Any = object()


class _Errors:
    def __init__(self) -> None:
        self.fields: dict[str, str] = {}

    def add(self, path: str, reason: str) -> Any:
        # The first reason found for a path is the most basic one; keep it.
        self.fields.setdefault(path or ROOT_PATH, reason)
        return _INVALID

    def raise_if_any(self) -> None:
        if self.fields:
            raise ValidationFailed(self.fields)


def _key(path: str, key: object) -> str:
    text = str(key)
    if _PLAIN_SEGMENT.fullmatch(text):
        return f"{path}.{text}" if path else text
    # Keys holding dots, brackets or odd characters stay unambiguous when quoted.
    return f"{path}[{json.dumps(text)}]"


def _at(path: str, index: int) -> str:
    return f"{path}[{index}]"


def _ok(*values: object) -> bool:
    return all(value is not _INVALID for value in values)


def _is_int(value: object) -> bool:
    return isinstance(value, int) and not isinstance(value, bool)


def _is_number(value: object) -> bool:
    if isinstance(value, bool):
        return False
    if isinstance(value, int):
        return True
    # json.loads accepts NaN and Infinity unless told otherwise.
    return isinstance(value, float) and math.isfinite(value)


def _text_problem(
    value: object, max_len: int, *, allow_empty: bool = False, multiline: bool = False
) -> str | None:
    if not isinstance(value, str):
        return "must be a string"
    if _SURROGATE.search(value):
        return "contains a lone surrogate (not valid Unicode)"
    if multiline and _CONTROL_EXCEPT_LINE_BREAKS.search(value):
        return "must not contain control characters"
    if not multiline and _CONTROL.search(value):
        return "must not contain control characters or line breaks"
    if len(value) > max_len:
        return f"must be at most {max_len} characters"
    if not allow_empty and not value.strip():
        return "must not be empty"
    return None


def _placeholder_problem(text: str, allowed: frozenset[str]) -> str | None:
    if "{{" in text or "}}" in text:
        return "placeholders are written {name}; {{ and }} are not allowed"
    for match in _BRACE_TOKEN.finditer(text):
        name = match.group(1)
        if name is None:
            return "has an unbalanced { or }"
        if _PLACEHOLDER_NAME.fullmatch(name) is None:
            return f"malformed placeholder {match.group(0)}; write {{name}}"
        if name not in allowed:
            if not allowed:
                return f"unknown placeholder {{{name}}}; this text takes no placeholders"
            known = ", ".join(f"{{{n}}}" for n in sorted(allowed))
            return f"unknown placeholder {{{name}}}; allowed: {known}"
    return None


def _url_problem(value: object) -> str | None:
    problem = _text_problem(value, URL_MAX)
    if problem is not None or not isinstance(value, str):
        return problem
    if not value.startswith("https://"):
        return "must be an https:// URL"
    if _URL_FORBIDDEN.search(value):
        return "must not contain spaces, quotes, backslashes or any of <>{}|^`"
    try:
        parts = urlsplit(value)
        parts.port  # noqa: B018 - raises ValueError for a port that is not a number in range
    except ValueError:
        return "is not a valid URL"
    if "@" in parts.netloc:
        return "must not contain credentials"
    host = parts.hostname or ""
    labels = host.split(".")
    if (
        len(host) > 253
        or len(labels) < 2
        or not all(_HOST_LABEL.fullmatch(label) for label in labels)
        or labels[-1].isdigit()
    ):
        return "needs a valid host name such as example.com (IDN hosts in xn-- form)"
    return None


# -- specs: each checks one value, reports under its path and returns the normalized value ---


class _Spec:
    def check(self, errors: _Errors, value: Any, path: str) -> Any:
        raise NotImplementedError


class _Int(_Spec):
    def __init__(self, low: int, high: int) -> None:
        self.low, self.high = low, high

    def check(self, errors: _Errors, value: Any, path: str) -> Any:
        if not _is_int(value):
            return errors.add(path, "must be an integer")
        if value < self.low:
            return errors.add(path, f"must be at least {self.low}")
        if value > self.high:
            return errors.add(path, f"must be at most {self.high}")
        return value


class _Number(_Spec):
    def __init__(self, low: float, high: float, *, low_exclusive: bool = False) -> None:
        self.low, self.high, self.low_exclusive = low, high, low_exclusive

    def check(self, errors: _Errors, value: Any, path: str) -> Any:
        if not _is_number(value):
            return errors.add(path, "must be a number")
        if self.low_exclusive and value <= self.low:
            return errors.add(path, f"must be greater than {self.low}")
        if value < self.low:
            return errors.add(path, f"must be at least {self.low}")
        if value > self.high:
            return errors.add(path, f"must be at most {self.high}")
        return value


class _Bool(_Spec):
    def check(self, errors: _Errors, value: Any, path: str) -> Any:
        if not isinstance(value, bool):
            return errors.add(path, "must be true or false")
        return value


class _Enum(_Spec):
    def __init__(self, choices: Iterable[str]) -> None:
        self.choices = tuple(choices)

    def check(self, errors: _Errors, value: Any, path: str) -> Any:
        if not isinstance(value, str) or value not in self.choices:
            return errors.add(path, "must be one of " + ", ".join(self.choices))
        return value


class _Pattern(_Spec):
    def __init__(self, pattern: re.Pattern[str], reason: str) -> None:
        self.pattern, self.reason = pattern, reason

    def check(self, errors: _Errors, value: Any, path: str) -> Any:
        if not isinstance(value, str):
            return errors.add(path, "must be a string")
        if self.pattern.fullmatch(value) is None:
            return errors.add(path, self.reason)
        return value


class _Text(_Spec):
    def __init__(
        self,
        max_len: int,
        *,
        allow_empty: bool = False,
        multiline: bool = False,
        pattern: re.Pattern[str] | None = None,
        pattern_reason: str = "",
    ) -> None:
        self.max_len, self.allow_empty, self.multiline = max_len, allow_empty, multiline
        self.pattern, self.pattern_reason = pattern, pattern_reason

    def check(self, errors: _Errors, value: Any, path: str) -> Any:
        problem = _text_problem(value, self.max_len, allow_empty=self.allow_empty, multiline=self.multiline)
        if problem:
            return errors.add(path, problem)
        if self.pattern is not None and self.pattern.fullmatch(value) is None:
            return errors.add(path, self.pattern_reason)
        return value


class _Label(_Spec):
    """Merchant-written plain text; rendered escaped, so < > & are fine, but braces are placeholders."""

    def __init__(self, placeholders: frozenset[str], max_len: int) -> None:
        self.placeholders, self.max_len = placeholders, max_len

    def check(self, errors: _Errors, value: Any, path: str) -> Any:
        problem = _text_problem(value, self.max_len) or _placeholder_problem(value, self.placeholders)
        if problem:
            return errors.add(path, problem)
        return value


class _HttpsUrl(_Spec):
    def check(self, errors: _Errors, value: Any, path: str) -> Any:
        problem = _url_problem(value)
        if problem:
            return errors.add(path, problem)
        return value


class _Nullable(_Spec):
    def __init__(self, inner: _Spec) -> None:
        self.inner = inner

    def check(self, errors: _Errors, value: Any, path: str) -> Any:
        return None if value is None else self.inner.check(errors, value, path)


class _List(_Spec):
    def __init__(self, item: _Spec, *, max_items: int, min_items: int = 0) -> None:
        self.item, self.max_items, self.min_items = item, max_items, min_items

    def check(self, errors: _Errors, value: Any, path: str) -> Any:
        if not isinstance(value, list):
            return errors.add(path, "must be a list")
        if len(value) < self.min_items:
            return errors.add(path, f"must have at least {self.min_items} item(s)")
        if len(value) > self.max_items:
            # Do not look inside: an oversized list would only bury this error under more.
            return errors.add(path, f"must have at most {self.max_items} items")
        return [self.item.check(errors, item, _at(path, index)) for index, item in enumerate(value)]


_Rule = Callable[[_Errors, dict[str, Any], str], None]


class _Object(_Spec):
    """A JSON object with known members. Unknown members are dropped, or reported when ``strict``."""

    def __init__(
        self,
        members: dict[str, _Spec],
        *,
        optional: dict[str, Any] | None = None,
        strict: bool = False,
        rules: Iterable[_Rule] = (),
    ) -> None:
        self.members, self.strict, self.rules = members, strict, tuple(rules)
        # member -> default (_MISSING: leave it out of the result)
        self.optional = optional or {}

    def check(self, errors: _Errors, value: Any, path: str) -> Any:
        if not isinstance(value, dict):
            return errors.add(path, "must be an object")
        result: dict[str, Any] = {}
        for name, spec in self.members.items():
            if name in value:
                result[name] = spec.check(errors, value[name], _key(path, name))
            elif name in self.optional:
                if self.optional[name] is not _MISSING:
                    result[name] = copy.deepcopy(self.optional[name])
            else:
                result[name] = errors.add(_key(path, name), "is required")
        if self.strict:
            for name in value:
                if name not in self.members:
                    errors.add(_key(path, name), "unknown field; expected " + ", ".join(self.members))
        for rule in self.rules:
            rule(errors, result, path)
        return result


def _flag_duplicates(errors: _Errors, entries: Iterable[tuple[str, Any]], reason: str) -> None:
    seen: set[Any] = set()
    for path, value in entries:
        if value is _INVALID:
            continue
        if value in seen:
            errors.add(path, reason)
        seen.add(value)


# -- shop --------------------------------------------------------------------------------


class _MoneyFormat(_Spec):
    def check(self, errors: _Errors, value: Any, path: str) -> Any:
        problem = _text_problem(value, MONEY_FORMAT_MAX)
        if problem:
            return errors.add(path, problem)
        names = PLACEHOLDER.findall(value)
        if not names:
            return errors.add(path, "needs a placeholder such as {{amount}}")
        unknown = [name for name in names if name not in MONEY_PLACEHOLDERS]
        if unknown:
            return errors.add(path, f"unknown placeholder {{{{{unknown[0]}}}}}")
        return value


def _shop_locales(errors: _Errors, shop: dict[str, Any], path: str) -> None:
    locales = shop.get("locales")
    if not isinstance(locales, list):
        return
    _flag_duplicates(errors, ((_at("locales", i), loc) for i, loc in enumerate(locales)), "duplicate locale")
    default = shop.get("default_locale")
    if _ok(default, *locales) and default not in locales:
        errors.add("locales", "must contain default_locale")


_LOCALE_SPEC = _Pattern(_LOCALE, "must be a locale such as en or fr-CA")

_SHOP = _Object(
    {
        "name": _Text(SHOP_NAME_MAX),
        "currency": _Pattern(_CURRENCY, "must be an ISO 4217 code: three upper-case letters"),
        "money_format": _MoneyFormat(),
        "default_locale": _LOCALE_SPEC,
        "locales": _List(_LOCALE_SPEC, min_items=1, max_items=MAX_LOCALES),
    },
    rules=[_shop_locales],
)


def validate_shop(body: object) -> dict[str, Any]:
    """The shop fields of ``PUT /admin/v1/shops/{shop}``; unknown members are ignored."""
    errors = _Errors()
    shop = _SHOP.check(errors, body, "")
    errors.raise_if_any()
    return shop


# -- product -----------------------------------------------------------------------------


def _percentage_at_most_100(errors: _Errors, adjustment: dict[str, Any], path: str) -> None:
    value = adjustment.get("value")
    if adjustment.get("value_type") == "percentage" and _is_number(value) and value > 100:
        errors.add(_key(path, "value"), "a percentage must be at most 100")


def _collection_range(errors: _Errors, collection: dict[str, Any], path: str) -> None:
    low, high = collection.get("min"), collection.get("max")
    if _is_int(low) and _is_int(high) and high < low:
        errors.add(_key(path, "max"), f"must be at least min ({low})")


def _bundle_consistency(errors: _Errors, bundle: dict[str, Any], path: str) -> None:
    collections = bundle.get("collections")
    if not isinstance(collections, list):
        return
    collections_path = _key(path, "collections")
    ids = ((_key(_at(collections_path, i), "id"), c["id"]) for i, c in enumerate(collections) if _ok(c))
    _flag_duplicates(errors, ids, "duplicate collection id")
    items = bundle.get("items_count")
    ranges = [(c["min"], c["max"]) for c in collections if c is not _INVALID]
    readable = len(ranges) == len(collections) and all(_is_int(a) and _is_int(b) for a, b in ranges)
    if not _is_int(items) or not readable:
        return
    # A box nobody can complete: the minimums overfill it, or the maximums never reach it.
    lowest, highest = sum(a for a, _ in ranges), sum(b for _, b in ranges)
    if lowest > items:
        errors.add(_key(path, "items_count"), f"is less than the collections' minimums added up ({lowest})")
    elif highest < items:
        errors.add(_key(path, "items_count"), f"is more than the collections' maximums added up ({highest})")


_ID = _Int(1, MAX_ID)
_AMOUNT = _Int(0, MAX_AMOUNT)
_POSITION = _Int(1, MAX_SMALL_INT)
_NAME = _Text(TEXT_MAX)

_ALLOCATION = _Object(
    {
        "selling_plan_group_id": _Pattern(_GROUP_HASH, "must be 40 lower-case hexadecimal characters"),
        "selling_plan_id": _ID,
        "price": _AMOUNT,
        "compare_at_price": _AMOUNT,
        "per_delivery_price": _AMOUNT,
        "price_adjustments": _List(
            _Object({"position": _POSITION, "price": _AMOUNT}), max_items=MAX_PRICE_ADJUSTMENTS
        ),
    }
)

_VARIANT = _Object(
    {
        "id": _ID,
        "title": _NAME,
        "price": _AMOUNT,
        "compare_at_price": _Nullable(_AMOUNT),
        "available": _Bool(),
        "selling_plan_allocations": _List(_ALLOCATION, max_items=MAX_ALLOCATIONS),
    }
)

_PLAN = _Object(
    {
        "id": _ID,
        "name": _NAME,
        "description": _Text(DESCRIPTION_MAX, allow_empty=True, multiline=True),
        "options": _List(
            _Object({"name": _NAME, "position": _POSITION, "value": _NAME}), max_items=MAX_OPTIONS
        ),
        "recurring_deliveries": _Bool(),
        "price_adjustments": _List(
            _Object(
                {
                    "order_count": _Nullable(_Int(0, MAX_SMALL_INT)),
                    "position": _POSITION,
                    "value_type": _Enum(VALUE_TYPES),
                    "value": _Number(0, MAX_AMOUNT),
                },
                rules=[_percentage_at_most_100],
            ),
            max_items=MAX_PRICE_ADJUSTMENTS,
        ),
    }
)

_GROUP = _Object(
    {
        "id": _NAME,
        "name": _NAME,
        "app_id": _Nullable(_NAME),
        "options": _List(
            _Object(
                {
                    "name": _NAME,
                    "position": _POSITION,
                    "values": _List(_NAME, min_items=1, max_items=MAX_OPTION_VALUES),
                }
            ),
            max_items=MAX_OPTIONS,
        ),
        "selling_plans": _List(_PLAN, max_items=MAX_PLANS_PER_GROUP),
    }
)

_BUNDLE = _Object(
    {
        "items_count": _Int(1, MAX_BUNDLE_ITEMS),
        "discount_percentage": _Number(0, 100),
        "collections": _List(
            _Object(
                {
                    "id": _ID,
                    "title": _NAME,
                    "min": _Int(0, MAX_BUNDLE_ITEMS),
                    "max": _Int(0, MAX_BUNDLE_ITEMS),
                    "products": _List(
                        _Object(
                            {
                                "id": _ID,
                                "variant_id": _ID,
                                "title": _NAME,
                                "price": _AMOUNT,
                                "image_url": _HttpsUrl(),
                            }
                        ),
                        max_items=MAX_COLLECTION_PRODUCTS,
                    ),
                },
                rules=[_collection_range],
            ),
            min_items=1,
            max_items=MAX_COLLECTIONS,
        ),
    },
    rules=[_bundle_consistency],
)

_PRODUCT = _Object(
    {
        "id": _ID,
        "title": _NAME,
        "handle": _Text(TEXT_MAX, pattern=_HANDLE, pattern_reason="must not contain spaces, /, ? or #"),
        "requires_selling_plan": _Bool(),
        "variants": _List(_VARIANT, min_items=1, max_items=MAX_VARIANTS),
        "selling_plan_groups": _List(_GROUP, max_items=MAX_GROUPS),
        "bundle": _Nullable(_BUNDLE),
    },
    optional={"bundle": _MISSING},
)


def _defined_plans(errors: _Errors, groups: Any) -> dict[str, set[int]] | None:
    """Group id -> its plan ids; None when some id is unreadable, so references cannot be judged."""
    if not isinstance(groups, list):
        return None
    plans_by_group: dict[str, set[int]] = {}
    complete = True
    group_ids: list[tuple[str, Any]] = []
    plan_ids: list[tuple[str, Any]] = []
    for g, group in enumerate(groups):
        if group is _INVALID or group["id"] is _INVALID or group["selling_plans"] is _INVALID:
            complete = False
            continue
        group_path = _at("selling_plan_groups", g)
        group_ids.append((_key(group_path, "id"), group["id"]))
        plans = plans_by_group.setdefault(group["id"], set())
        for p, plan in enumerate(group["selling_plans"]):
            if plan is _INVALID or plan["id"] is _INVALID:
                complete = False
                continue
            plan_ids.append((_key(_at(_key(group_path, "selling_plans"), p), "id"), plan["id"]))
            plans.add(plan["id"])
    _flag_duplicates(errors, group_ids, "duplicate selling plan group id")
    # Allocations name a plan by id alone, so plan ids must be unique across groups too.
    _flag_duplicates(errors, plan_ids, "duplicate selling plan id")
    return plans_by_group if complete else None


def _check_allocations(errors: _Errors, variants: Any, plans_by_group: dict[str, set[int]] | None) -> None:
    if not isinstance(variants, list):
        return
    all_plans = set().union(*plans_by_group.values()) if plans_by_group else set()
    for v, variant in enumerate(variants):
        if variant is _INVALID or not isinstance(variant["selling_plan_allocations"], list):
            continue
        allocations_path = _key(_at("variants", v), "selling_plan_allocations")
        seen: set[int] = set()
        for a, allocation in enumerate(variant["selling_plan_allocations"]):
            if allocation is _INVALID:
                continue
            path = _at(allocations_path, a)
            group_id, plan_id = allocation["selling_plan_group_id"], allocation["selling_plan_id"]
            if plan_id is not _INVALID:
                if plan_id in seen:
                    errors.add(_key(path, "selling_plan_id"), "this plan is allocated twice for the variant")
                seen.add(plan_id)
            if plans_by_group is None:
                continue
            if group_id is not _INVALID and group_id not in plans_by_group:
                errors.add(_key(path, "selling_plan_group_id"), "no selling plan group has this id")
            elif plan_id is not _INVALID and plan_id not in all_plans:
                errors.add(_key(path, "selling_plan_id"), "no selling plan has this id")
            elif _ok(group_id, plan_id) and plan_id not in plans_by_group[group_id]:
                errors.add(_key(path, "selling_plan_id"), "this plan belongs to another selling plan group")


def _check_variant_ids(errors: _Errors, variants: Any) -> None:
    if isinstance(variants, list):
        ids = ((_key(_at("variants", i), "id"), v["id"]) for i, v in enumerate(variants) if v is not _INVALID)
        _flag_duplicates(errors, ids, "duplicate variant id")


def validate_product(body: object, product_id: int) -> dict[str, Any]:
    """The Shopify storefront product document of ``PUT .../products/{product_id}``.

    Returns a fresh copy holding only the known members (a ``bundle`` of null is left out).
    """
    errors = _Errors()
    product = _PRODUCT.check(errors, body, "")
    if product is not _INVALID:
        if product["id"] is not _INVALID and product["id"] != product_id:
            errors.add("id", f"must equal the product id in the URL ({product_id})")
        _check_variant_ids(errors, product["variants"])
        plans_by_group = _defined_plans(errors, product["selling_plan_groups"])
        _check_allocations(errors, product["variants"], plans_by_group)
    errors.raise_if_any()
    if product.get("bundle", _MISSING) is None:
        del product["bundle"]
    return product


# -- widget settings ---------------------------------------------------------------------


class _LabelMap(_Spec):
    """{label key: text} for one kind; any subset of the kind's keys."""

    def __init__(self, kind: str) -> None:
        self.labels = {
            key: _Label(placeholders, LONG_LABELS.get(key, LABEL_MAX))
            for key, (_, placeholders) in LABELS[kind].items()
        }

    def check(self, errors: _Errors, value: Any, path: str) -> Any:
        if not isinstance(value, dict):
            return errors.add(path, "must be an object")
        for key in value:
            if key not in self.labels:
                errors.add(_key(path, key), "unknown label; expected " + ", ".join(self.labels))
        # Known keys in a stable order, whatever order the body used.
        return {
            key: spec.check(errors, value[key], _key(path, key))
            for key, spec in self.labels.items()
            if key in value
        }


class _Translations(_Spec):
    def __init__(self, kind: str) -> None:
        self.labels = _LabelMap(kind)

    def check(self, errors: _Errors, value: Any, path: str) -> Any:
        if not isinstance(value, dict):
            return errors.add(path, "must be an object")
        if len(value) > MAX_TRANSLATION_LOCALES:
            return errors.add(path, f"must have at most {MAX_TRANSLATION_LOCALES} locales")
        result = {}
        for locale, labels in value.items():
            if not valid_locale(locale):
                errors.add(_key(path, locale), "must be a locale such as fr or fr-CA")
                continue
            result[locale] = self.labels.check(errors, labels, _key(path, locale))
        return result


def _tiers_increasing(errors: _Errors, settings: dict[str, Any], path: str) -> None:
    tiers = settings.get("tiers")
    if not isinstance(tiers, list):
        return
    previous = None
    for index, tier in enumerate(tiers):
        points = tier["min_points"] if tier is not _INVALID else _INVALID
        if points is _INVALID:
            previous = None
            continue
        if previous is not None and points <= previous:
            errors.add(
                _key(_at(_key(path, "tiers"), index), "min_points"),
                f"must be greater than the previous tier's min_points ({previous})",
            )
        previous = points


def _settings_spec(kind: str) -> _Object:
    members: dict[str, _Spec] = {
        "enabled": _Bool(),
        "colors": _Object(
            {
                name: _Pattern(_COLOR, "must be a hex colour such as #1a1a1a or #fff")
                for name in COMMON_DEFAULTS["colors"]
            },
            strict=True,
        ),
        "translations": _Translations(kind),
    }
    rules: list[_Rule] = []
    if kind == "subscription":
        members.update(
            template=_Enum(TEMPLATES),
            first_option=_Enum(PURCHASE_OPTIONS),
            default_selection=_Enum(PURCHASE_OPTIONS),
            show_details=_Bool(),
            learn_more_url=_Nullable(_HttpsUrl()),
        )
    elif kind == "loyalty":
        text = _Label(frozenset(), LABEL_MAX)
        members.update(
            points_per_unit=_Number(0, MAX_POINTS_PER_UNIT, low_exclusive=True),
            signup_bonus=_Int(0, MAX_SIGNUP_BONUS),
            join_url=_Nullable(_HttpsUrl()),
            tiers=_List(
                _Object(
                    {
                        "name": text,
                        "min_points": _Int(0, MAX_AMOUNT),
                        "perks": _List(text, max_items=MAX_PERKS),
                    },
                    optional={"perks": []},
                    strict=True,
                ),
                max_items=MAX_TIERS,
            ),
        )
        rules.append(_tiers_increasing)
    members["labels"] = _LabelMap(kind)
    return _Object(members, strict=True, rules=rules)


_SETTINGS_SPECS = {kind: _settings_spec(kind) for kind in LABELS}


def _merge_patch(target: Any, patch: Any) -> Any:
    """RFC 7396: objects merge by key, null removes a key, anything else replaces."""
    if not isinstance(patch, dict):
        return patch
    result = dict(target) if isinstance(target, dict) else {}
    for key, value in patch.items():
        if value is None:
            result.pop(key, None)
        else:
            result[key] = _merge_patch(result.get(key), value)
    return result


def _start_from(kind: str, base: dict[str, Any] | None) -> dict[str, Any]:
    """Defaults, overlaid with what ``base`` holds that this release still knows."""
    settings = default_settings(kind)
    if base is None:
        return settings
    if not isinstance(base, dict):
        raise TypeError("base must be a settings dict or None")
    # A draft saved by an older release may carry keys since removed; the merchant could not
    # delete them through a merge, so they are dropped here rather than reported.
    labels = LABELS[kind]
    for key, value in base.items():
        if key not in settings:
            continue
        if key in ("colors", "labels") and isinstance(value, dict):
            settings[key].update((k, v) for k, v in value.items() if k in settings[key])
        elif key == "translations" and isinstance(value, dict):
            settings[key] = {
                locale: {k: v for k, v in texts.items() if k in labels} if isinstance(texts, dict) else texts
                for locale, texts in value.items()
            }
        else:
            settings[key] = value
    return settings


def validate_widget_settings(kind: str, body: object, base: dict[str, Any] | None = None) -> dict[str, Any]:
    """``{"settings": {...}}`` merged onto ``base`` (the draft) or the kind's defaults, then checked.

    colors and labels merge by key; translations merge as an RFC 7396 patch (null removes a
    locale or one of its texts); everything else, lists included, replaces. Returns the complete
    settings, a fresh copy sharing nothing with ``body`` or ``base``.
    """
    if kind not in LABELS:
        raise ValueError(f"unknown widget kind: {kind!r}")
    if not isinstance(body, dict):
        raise ValidationFailed({ROOT_PATH: "must be an object"})
    if not isinstance(body.get("settings"), dict):
        raise ValidationFailed({"settings": "is required" if "settings" not in body else "must be an object"})

    errors = _Errors()
    merged = _start_from(kind, base)
    for key, value in body["settings"].items():
        if key not in merged:
            errors.add(_key("settings", key), "unknown setting; expected " + ", ".join(merged))
        elif key in ("colors", "labels") and isinstance(value, dict) and isinstance(merged[key], dict):
            merged[key] = {**merged[key], **value}
        elif key == "translations" and isinstance(value, dict):
            merged[key] = _merge_patch(merged[key], value)
        else:
            merged[key] = value
    # The whole result is checked, not only the patch: a stale draft must not slip through.
    settings = _SETTINGS_SPECS[kind].check(errors, merged, "settings")
    errors.raise_if_any()
    return settings


# -- rollback ----------------------------------------------------------------------------

_ROLLBACK = _Object({"version": _Int(1, MAX_ID)})


def validate_rollback(body: object) -> int:
    """The version number of ``POST .../rollback`` ``{"version": n}``."""
    errors = _Errors()
    result = _ROLLBACK.check(errors, body, "")
    errors.raise_if_any()
    return result["version"]
