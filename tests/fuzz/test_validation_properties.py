"""Properties of storefront.validation on arbitrary JSON: only ValidationFailed escapes, and what passes
is stable (validating the output again changes nothing) and matches openapi.yaml's schemas."""

from __future__ import annotations

import copy
import json
from typing import Any

import jsonschema
import pytest
from hypothesis import given
from hypothesis import strategies as st

from storefront import validation
from storefront.web.openapi import load_spec
from storefront.widget_settings import LABELS, default_settings
from tests.conftest import FIXTURES
from tests.fuzz.property_settings import bounded

SPEC = load_spec()
KINDS = tuple(LABELS)
SETTINGS_SCHEMAS = {"subscription": "SubscriptionSettings", "bundle": "BundleSettings",
                    "loyalty": "LoyaltySettings"}
PRODUCTS = [json.loads(path.read_text(encoding="utf-8"))
            for path in sorted((FIXTURES / "products").glob("*.json"))]
SHOP = {"name": "Demo", "currency": "USD", "money_format": "${{amount}}", "default_locale": "en",
        "locales": ["en", "fr"]}


def _schema(component: str) -> jsonschema.Draft202012Validator:
    return jsonschema.Draft202012Validator({"$ref": f"#/components/schemas/{component}",
                                            "components": SPEC["components"]})


PRODUCT_SCHEMA = _schema("ProductDocument")
SHOP_SCHEMA = _schema("ShopInput")
SETTINGS = {kind: _schema(name) for kind, name in SETTINGS_SCHEMAS.items()}

scalars = (st.none() | st.booleans() | st.integers() | st.integers(-3, 3) | st.floats()
           | st.text(max_size=12) | st.sampled_from(["", " ", "#fff", "en", "https://example.com/x", "{x}",
                                                     "USD", "{{amount}}", "\u2028", "\x00", "a" * 300]))
json_values = st.recursive(scalars, lambda children: st.lists(children, max_size=4)
                           | st.dictionaries(st.text(max_size=12), children, max_size=4), max_leaves=15)


@st.composite
def mutated(draw: st.DrawFn, document: Any) -> Any:
    """``document`` with one member somewhere inside it replaced by arbitrary JSON, or removed."""
    document = copy.deepcopy(document)
    parent, key = None, None
    node = document
    while isinstance(node, dict | list) and node and draw(st.integers(0, 3)) > 0:
        keys = sorted(node) if isinstance(node, dict) else range(len(node))
        parent, key = node, draw(st.sampled_from(list(keys)))
        node = node[key]
    replacement = draw(_like(node) | json_values | st.just(_REMOVE))
    if parent is None:
        return document if replacement is _REMOVE else replacement
    if replacement is _REMOVE:
        del parent[key]
    else:
        parent[key] = replacement
    return document


_REMOVE = object()


def _like(value: Any) -> st.SearchStrategy[Any]:
    """Values of the same JSON type as ``value``: these get past the type checks to the finer rules."""
    if isinstance(value, bool):
        return st.booleans()
    if isinstance(value, int):
        return st.integers() | st.integers(-2, 2**53 + 2) | st.integers(0, 100)
    if isinstance(value, float):
        return st.floats()
    if isinstance(value, str):
        return st.text(max_size=30) | st.from_regex(r"\A#[0-9a-fA-F]{3,6}\Z") | st.sampled_from(
            ["{discount}", "{min}-{max}", "{{amount}}", "https://x.example/a", "en-US", "e0" * 20])
    if isinstance(value, list):
        return st.lists(st.sampled_from(value), max_size=len(value) + 2) if value else st.just([])
    if isinstance(value, dict):
        return st.sets(st.sampled_from(sorted(value))).map(
            lambda dropped: {k: v for k, v in value.items() if k not in dropped}) if value else st.just({})
    return st.none()


def _check_failure(error: validation.ValidationFailed) -> None:
    assert error.fields and all(isinstance(k, str) and isinstance(v, str) for k, v in error.fields.items())


@bounded(400)
@given(json_values | mutated(SHOP))
def test_validate_shop_only_raises_validation_failed(body):
    try:
        shop = validation.validate_shop(body)
    except validation.ValidationFailed as error:
        _check_failure(error)
        return
    assert validation.validate_shop(shop) == shop
    SHOP_SCHEMA.validate(shop)


@bounded(300)
@given(st.data())
def test_validate_product_only_raises_validation_failed(data):
    document = data.draw(st.sampled_from(PRODUCTS))
    body = data.draw(json_values | mutated(document) | mutated(document).flatmap(mutated), label="body")
    product_id = data.draw(st.sampled_from([document["id"], 1, validation.MAX_ID]), label="product_id")
    try:
        product = validation.validate_product(body, product_id)
    except validation.ValidationFailed as error:
        _check_failure(error)
        return
    assert validation.validate_product(product, product_id) == product
    # Whatever the app accepts, the spec accepts (the spec is not stricter than the app).
    PRODUCT_SCHEMA.validate(product)


@pytest.mark.parametrize("kind", KINDS)
@bounded(250)
@given(data=st.data())
def test_validate_widget_settings_only_raises_validation_failed(kind, data):
    patch = {key: value for key, value in default_settings(kind).items() if key != "enabled"}
    settings_patch = mutated(patch) | mutated(patch).flatmap(mutated) | json_values
    body = data.draw(st.fixed_dictionaries({"settings": settings_patch}) | json_values, label="body")
    base = data.draw(st.sampled_from([None, default_settings(kind)]), label="base")
    try:
        settings = validation.validate_widget_settings(kind, body, base)
    except validation.ValidationFailed as error:
        _check_failure(error)
        return
    # Saved as the draft, then merged onto by an empty patch: nothing changes.
    assert validation.validate_widget_settings(kind, {"settings": {}}, settings) == settings
    SETTINGS[kind].validate(settings)


@bounded(300)
@given(json_values)
def test_validate_rollback_only_raises_validation_failed(body):
    try:
        version = validation.validate_rollback(body)
    except validation.ValidationFailed as error:
        _check_failure(error)
        return
    assert isinstance(version, int) and not isinstance(version, bool) and 1 <= version <= validation.MAX_ID


@bounded(400)
@given(json_values | st.text(max_size=80))
def test_identifier_checks_answer_for_any_value(value):
    assert validation.valid_shop_domain(value) in (True, False)
    assert validation.valid_locale(value) in (True, False)
    try:
        product_id = validation.parse_product_id(value)
    except ValueError:
        return
    assert isinstance(value, str) and str(product_id).zfill(len(value)) == value
