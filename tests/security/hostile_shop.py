"""A shop whose every merchant-controlled text holds a hostile string: the fields, the payloads, the planting.

Every text a merchant (or Shopify, on the merchant's behalf) can put into a render is listed in
``FIELDS`` with where it goes in the admin API body and where it must show up once accepted.
``plant`` sets a payload into every field through the real admin API: each field on its own
first (a 422 must name that field and nothing else), then all accepted values at once, and
publishes. The tests then read the renders (HTTP) or mount them in Chromium.

A planted value is the payload followed by a marker naming the field (``<payload>~shop.name~``),
so a test can tell which field reached which place, and a payload that broke out of its context
would no longer be found as one piece of text.
"""

from __future__ import annotations

import copy
import dataclasses
import json
import re
from collections.abc import Iterator
from typing import Any

from flask.testing import FlaskClient
from werkzeug.test import TestResponse

from tests.conftest import ADMIN_TOKEN

SHOP = "xss-lab.myshopify.com"
SUBSCRIPTION_ID = 7009000000001
BUNDLE_ID = 7009000000002
AUTH = {"Authorization": f"Bearer {ADMIN_TOKEN}"}
KINDS = ("subscription", "bundle", "loyalty")
# Images of the bundle; browser tests answer this host locally.
IMAGE_HOST = "https://cdn.example.com/"

# The strings an attacker would try, one context-breaker each, plus Unicode that breaks naive code.
PAYLOADS: dict[str, str] = {
    "script-close": "</script><script>alert(1)</script>",
    "attribute-break": '"><img src=x onerror=alert(1)>',
    "single-quote-break": "'><svg onload=alert(1)>",
    "js-url": "javascript:alert(1)",
    "js-string-break": "'-alert(1)-'",
    "js-dquote-break": '";alert(1);//',
    "style-close": "</style><script>alert(1)</script>",
    "html-comment": "<!--<script>alert(1)//-->",
    "entities": "&lt;img src=x onerror=alert(1)&gt;&#x3C;b&#62;",
    "template": "{{7*7}}",
    "js-template": "${alert(1)}",
    "css-break": "red;}</style><style>*{x:expression(alert(1))}",
    "line-separators": "a\u2028b\u2029c",
    "bidi-and-invisibles": "\u202eevil\u202c\u200d\u200b\ufeff\u2066x\u2069",
    "nul": "a\x00b",
    "lone-surrogate": "a\ud800b",
}
# Payloads no text field may store (not valid Unicode text, or a NUL that ends C strings).
ALWAYS_REJECTED = ("nul", "lone-surrogate")


@dataclasses.dataclass(frozen=True)
class Field:
    """One merchant-controlled text: where it goes in an admin body and where it must appear."""

    key: str
    # shop | product | bundle_product | subscription | bundle | loyalty (the admin resource written)
    target: str
    # The member's path in the body; "*" is every element of a list.
    path: tuple[str, ...]
    # widget (mounted widget DOM and .html), json (the .json model), preview (the preview page)
    shown: frozenset[str] = frozenset()
    # The widget kinds whose renders carry the value.
    kinds: tuple[str, ...] = ()
    # The locale whose render shows it (translations).
    locale: str = "en"
    # Text after the payload that the field needs (a money format needs its placeholder).
    suffix: str = ""
    # An https URL setting: tried raw and as the path of an https URL.
    url: bool = False
    # False when rendering transforms the text (money formats lose anything tag-like).
    exact: bool = True
    # Only shown while this URL field renders (a link's text needs its link).
    needs_url: str | None = None

    @property
    def error_path(self) -> re.Pattern[str]:
        """The JSON paths a 422 may name for this field (``variants[0].title`` for ``variants.*.title``)."""
        pattern = ""
        for segment in self.path:
            if segment == "*":
                pattern += r"\[\d+\]"
            else:
                pattern += (r"\." if pattern else "") + re.escape(segment)
        return re.compile(pattern)

    def marked(self, payload: str) -> str:
        return f"{payload}~{self.key}~{self.suffix}"

    def candidates(self, payload: str) -> list[str]:
        """Values to try, most interesting last: a URL field gets the raw text, then an https URL."""
        raw = self.marked(payload)
        return [raw, IMAGE_HOST + raw] if self.url else [raw]

    @property
    def marker(self) -> str:
        return f"~{self.key}~"


def _fields() -> list[Field]:
    every = ("subscription", "bundle", "loyalty")
    fields = [
        Field("shop.name", "shop", ("name",), frozenset({"preview"})),
        # Prices show in the subscription and bundle widgets whatever the labels say (loyalty's only
        # in its earn label, which a planted label replaces).
        Field("shop.money_format", "shop", ("money_format",), frozenset({"widget", "json", "preview"}),
              ("subscription", "bundle"), suffix=" {{amount}}", exact=False),
        Field("shop.currency", "shop", ("currency",), frozenset({"json"}), every),
        Field("shop.default_locale", "shop", ("default_locale",)),
        Field("shop.locales", "shop", ("locales", "*")),
    ]
    sub = ("subscription",)
    plan = ("selling_plan_groups", "*", "selling_plans", "*")
    fields += [
        Field("product.title", "product", ("title",), frozenset({"json", "preview"}), sub),
        Field("product.handle", "product", ("handle",), frozenset({"json"}), sub),
        Field("product.variant.title", "product", ("variants", "*", "title"), frozenset({"json", "preview"}),
              sub),
        Field("product.group.name", "product", ("selling_plan_groups", "*", "name"),
              frozenset({"widget", "json"}), sub),
        Field("product.group.app_id", "product", ("selling_plan_groups", "*", "app_id")),
        Field("product.group.option.name", "product", ("selling_plan_groups", "*", "options", "*", "name")),
        Field("product.group.option.value", "product",
              ("selling_plan_groups", "*", "options", "*", "values", "*")),
        Field("product.plan.name", "product", (*plan, "name"), frozenset({"widget", "json"}), sub),
        Field("product.plan.description", "product", (*plan, "description"), frozenset({"json"}), sub),
        Field("product.plan.option.name", "product", (*plan, "options", "*", "name")),
        Field("product.plan.option.value", "product", (*plan, "options", "*", "value"),
              frozenset({"widget", "json"}), sub),
    ]
    item = ("bundle", "collections", "*", "products", "*")
    fields += [
        Field("bundle_product.title", "bundle_product", ("title",), frozenset({"json"}), ("bundle",)),
        Field("bundle_product.collection.title", "bundle_product", ("bundle", "collections", "*", "title"),
              frozenset({"widget", "json"}), ("bundle",)),
        Field("bundle_product.item.title", "bundle_product", (*item, "title"), frozenset({"widget", "json"}),
              ("bundle",)),
        Field("bundle_product.item.image_url", "bundle_product", (*item, "image_url"), url=True),
    ]
    labels = {
        "subscription": {"onetime": "widget", "subscribe": "widget", "subscribe_no_discount": "json",
                         "deliver_every": "widget", "details_title": "widget", "details_body": "widget",
                         "learn_more": "widget"},
        "bundle": {"title": "widget", "choose_range": "widget", "add_more": "widget", "full": "json",
                   "add_to_cart": "widget"},
        "loyalty": {"title": "widget", "earn": "widget", "signup": "widget", "join": "widget"},
    }
    link_of = {"learn_more": "subscription.learn_more_url", "join": "loyalty.join_url"}
    for kind, keys in labels.items():
        for key, where in keys.items():
            shown = frozenset({where, "json"})
            needs = link_of.get(key)
            fields.append(Field(f"{kind}.labels.{key}", kind, ("settings", "labels", key), shown, (kind,),
                                needs_url=needs))
            fields.append(Field(f"{kind}.translations.fr.{key}", kind,
                                ("settings", "translations", "fr", key), shown, (kind,), locale="fr",
                                needs_url=needs))
        for color in ("accent", "background", "text", "border"):
            fields.append(Field(f"{kind}.colors.{color}", kind, ("settings", "colors", color)))
    fields += [
        Field("subscription.learn_more_url", "subscription", ("settings", "learn_more_url"), url=True),
        Field("subscription.template", "subscription", ("settings", "template")),
        Field("subscription.first_option", "subscription", ("settings", "first_option")),
        Field("subscription.default_selection", "subscription", ("settings", "default_selection")),
        Field("loyalty.tier.name", "loyalty", ("settings", "tiers", "*", "name"),
              frozenset({"widget", "json"}), ("loyalty",)),
        Field("loyalty.tier.perk", "loyalty", ("settings", "tiers", "*", "perks", "*"),
              frozenset({"widget", "json"}), ("loyalty",)),
        Field("loyalty.join_url", "loyalty", ("settings", "join_url"), url=True),
    ]
    return fields


FIELDS: list[Field] = _fields()
BY_KEY = {field.key: field for field in FIELDS}


# -- clean bodies ---------------------------------------------------------------------------------
def _allocation(group: str, plan: int, price: int) -> dict[str, Any]:
    return {"selling_plan_group_id": group, "selling_plan_id": plan, "price": price, "compare_at_price": 2000,
            "per_delivery_price": price, "price_adjustments": [{"position": 1, "price": price}]}


def _plan(plan_id: int, options: list[dict[str, Any]], percent: int) -> dict[str, Any]:
    return {"id": plan_id, "name": "Plan", "description": "About this plan", "recurring_deliveries": True,
            "options": options, "price_adjustments": [
                {"order_count": None, "position": 1, "value_type": "percentage", "value": percent}]}


GROUP_A, GROUP_B = "a" * 40, "b" * 40


def clean_bodies() -> dict[str, dict[str, Any]]:
    """Valid bodies for every target. Two plan groups (so group names render), one plan with an
    option value and one without (so both option values and plan names render)."""
    allocations = [_allocation(GROUP_A, 690090001, 1800), _allocation(GROUP_B, 690090002, 1700)]
    monthly = [{"name": "Deliver every", "position": 1, "value": "1 month"}]
    subscription_product = {
        "id": SUBSCRIPTION_ID, "title": "Lab coffee", "handle": "lab-coffee", "requires_selling_plan": False,
        "variants": [
            {"id": 42009000000001, "title": "Small", "price": 2000, "compare_at_price": None,
             "available": True, "selling_plan_allocations": copy.deepcopy(allocations)},
            {"id": 42009000000002, "title": "Large", "price": 2000, "compare_at_price": None,
             "available": True, "selling_plan_allocations": copy.deepcopy(allocations)},
        ],
        "selling_plan_groups": [
            {"id": GROUP_A, "name": "Monthly", "app_id": "lab",
             "options": [{"name": "Deliver every", "position": 1, "values": ["1 month"]}],
             "selling_plans": [_plan(690090001, monthly, 10)]},
            {"id": GROUP_B, "name": "Bimonthly", "app_id": "lab",
             "options": [{"name": "Deliver every", "position": 1, "values": ["2 months"]}],
             "selling_plans": [_plan(690090002, [], 15)]},
        ],
    }
    bundle_product = {
        "id": BUNDLE_ID, "title": "Lab box", "handle": "lab-box", "requires_selling_plan": False,
        "variants": [{"id": 42009000000010, "title": "Box", "price": 3000, "compare_at_price": None,
                      "available": True, "selling_plan_allocations": []}],
        "selling_plan_groups": [],
        "bundle": {"items_count": 2, "discount_percentage": 10, "collections": [
            {"id": 300901, "title": "Sweet", "min": 1, "max": 2, "products": [
                {"id": 7009100000001, "variant_id": 42009100000001, "title": "Toffee", "price": 400,
                 "image_url": IMAGE_HOST + "toffee.png"}]},
            {"id": 300902, "title": "Savory", "min": 0, "max": 2, "products": [
                {"id": 7009100000002, "variant_id": 42009100000002, "title": "Crisps", "price": 300,
                 "image_url": IMAGE_HOST + "crisps.png"}]},
        ]},
    }
    colors = {"accent": "#1a1a1a", "background": "#ffffff", "text": "#1a1a1a", "border": "#d4d4d4"}
    return {
        "shop": {"name": "XSS Lab", "currency": "USD", "money_format": "${{amount}}", "default_locale": "en",
                 "locales": ["en", "fr"]},
        "product": subscription_product,
        "bundle_product": bundle_product,
        "subscription": {"settings": {"show_details": True, "learn_more_url": "https://example.com/learn",
                                      "translations": {"fr": {}}, "labels": {}, "colors": colors}},
        "bundle": {"settings": {"translations": {"fr": {}}, "labels": {}, "colors": colors}},
        "loyalty": {"settings": {"points_per_unit": 2, "signup_bonus": 100, "join_url": "https://example.com/join",
                                 "tiers": [{"name": "Bean", "min_points": 0, "perks": ["Birthday treat"]},
                                           {"name": "Roast", "min_points": 500, "perks": ["Free shipping"]}],
                                 "translations": {"fr": {}}, "labels": {}, "colors": colors}},
    }


def _set(document: Any, path: tuple[str, ...], value: str) -> None:
    head, rest = path[0], path[1:]
    if head == "*":
        for index in range(len(document)):
            if rest:
                _set(document[index], rest, value)
            else:
                document[index] = value
    elif rest:
        _set(document[head], rest, value)
    else:
        document[head] = value


def values_at(document: Any, path: tuple[str, ...]) -> Iterator[Any]:
    """Every value at ``path`` ("*" walks each element of a list)."""
    if not path:
        yield document
        return
    head, rest = path[0], path[1:]
    children = document if head == "*" else [document[head]]
    for child in children:
        yield from values_at(child, rest)


def body(target: str, values: dict[Field, str]) -> dict[str, Any]:
    """The clean body of ``target`` with ``values`` set in."""
    document = clean_bodies()[target]
    for field, value in values.items():
        if field.target == target:
            _set(document, field.path, value)
    return document


ENDPOINTS = {
    "shop": f"/admin/v1/shops/{SHOP}",
    "product": f"/admin/v1/shops/{SHOP}/products/{SUBSCRIPTION_ID}",
    "bundle_product": f"/admin/v1/shops/{SHOP}/products/{BUNDLE_ID}",
    "subscription": f"/admin/v1/shops/{SHOP}/widgets/subscription",
    "bundle": f"/admin/v1/shops/{SHOP}/widgets/bundle",
    "loyalty": f"/admin/v1/shops/{SHOP}/widgets/loyalty",
}
TARGETS = tuple(ENDPOINTS)


def put(client: FlaskClient, target: str, document: dict[str, Any]) -> TestResponse:
    # Serialised here with ASCII escapes: a lone surrogate travels as the JSON escape "\ud800".
    return client.put(ENDPOINTS[target], data=json.dumps(document), content_type="application/json",
                      headers=AUTH)


def stored(client: FlaskClient, target: str) -> dict[str, Any]:
    """What the admin API reads back for ``target``, shaped like the body that was PUT."""
    if target in ("subscription", "bundle", "loyalty"):
        published = client.get(ENDPOINTS[target], headers=AUTH).get_json()["published"]
        return {"settings": published["settings"]}
    document = client.get(ENDPOINTS[target], headers=AUTH).get_json()
    return document if target == "shop" else document["product"]


@dataclasses.dataclass
class Planted:
    """The outcome of planting one payload: the value each accepted field now holds."""

    payload: str
    accepted: dict[Field, str]
    rejected: list[Field]

    def shown(self, where: str, kind: str | None = None, locale: str | None = None) -> list[Field]:
        """Accepted fields that must show up in ``where`` (for ``kind`` and ``locale`` when given)."""
        fields = []
        for field in self.accepted:
            if where not in field.shown or (kind is not None and kind not in field.kinds):
                continue
            if locale is not None and field.locale != locale:
                continue
            if field.needs_url is not None and BY_KEY[field.needs_url] in self.accepted:
                continue  # its link now holds the hostile URL, which the render may leave out
            fields.append(field)
        return fields


def _accepted_or_named(response: TestResponse, field: Field) -> bool:
    """True for 200/201; for a 422, every path it names must be this field's. Anything else fails."""
    if response.status_code in (200, 201):
        return True
    assert response.status_code == 422, (field.key, response.status_code, response.get_data(as_text=True))
    named = response.get_json()["fields"]
    assert named, field.key
    foreign = [path for path in named if not field.error_path.fullmatch(path)]
    assert not foreign, f"{field.key}: the 422 names other fields too: {foreign}"
    return False


def _publish(client: FlaskClient) -> None:
    for kind in KINDS:
        response = client.post(f"{ENDPOINTS[kind]}/publish", headers=AUTH)
        assert response.status_code == 200, response.get_data(as_text=True)


def plant(client: FlaskClient, payload: str, *, each_field: bool = True,
          fields: list[Field] | None = None) -> Planted:
    """Set ``payload`` into every field (or those given) through the admin API; publish every widget.

    ``each_field``: try each field on its own first, checking that a 422 names exactly that field.
    Without it (browser tests) the fields a 422 names fall back to their clean values until the
    whole body passes, which takes a few requests instead of one per field.
    """
    for target in TARGETS:
        response = put(client, target, body(target, {}))
        assert response.status_code in (200, 201), (target, response.get_data(as_text=True))
    accepted: dict[Field, str] = {}
    rejected: list[Field] = []
    fields = FIELDS if fields is None else fields
    if each_field:
        for field in fields:
            for value in field.candidates(payload):
                if _accepted_or_named(put(client, field.target, body(field.target, {field: value})), field):
                    accepted[field] = value
            if field not in accepted:
                rejected.append(field)
    else:
        for field in fields:
            accepted[field] = field.candidates(payload)[-1]
    for target in TARGETS:
        while True:  # each round drops at least one field, so it ends
            mine = {field: value for field, value in accepted.items() if field.target == target}
            response = put(client, target, body(target, mine))
            if response.status_code in (200, 201):
                break
            assert response.status_code == 422 and not each_field, (target, response.get_data(as_text=True))
            named = response.get_json()["fields"]
            refused = [field for field in mine if any(field.error_path.fullmatch(path) for path in named)]
            assert refused, f"{target}: a 422 naming no planted field: {named}"
            for field in refused:
                del accepted[field]
                rejected.append(field)
    _publish(client)
    return Planted(payload, accepted, rejected)
