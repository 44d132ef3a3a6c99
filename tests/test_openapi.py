"""openapi.yaml: valid OpenAPI 3.1, in step with the app's routes and with storefront.validation."""

from __future__ import annotations

import copy
import json
import re
from pathlib import Path
from typing import Any

import jsonschema
import pytest
from openapi_spec_validator import OpenAPIV31SpecValidator

from storefront import validation
from storefront.web import openapi
from storefront.widget_settings import (
    LABEL_MAX,
    LABELS,
    LONG_LABELS,
    MAX_TRANSLATION_LOCALES,
    default_settings,
)
from tests.conftest import FIXTURES, load_fixture
from tests.fuzz.live_app import build_app

SPEC = openapi.load_spec()
COMPONENTS = SPEC["components"]["schemas"]
HTTP_METHODS = {"get", "put", "post", "delete", "patch", "head", "options", "trace"}
# The contract names the public widget's last segment {kind}.{format}; Flask calls it filename.
RENAMED_PARAMETERS = {("/v1/shops/{}/widgets/{}", "filename"): "file"}
# Paths the contract serves as `GET|HEAD`: the spec must say HEAD there, not leave it implied.
HEAD_IN_CONTRACT = {"/v1/shops/{}/widgets/{}"}
KIND_SCHEMAS = {"subscription": "Subscription", "bundle": "Bundle", "loyalty": "Loyalty"}


@pytest.fixture
def routed_app(sqlite_url: str):  # type: ignore[no-untyped-def]
    application = build_app(sqlite_url, seeded=False)
    yield application
    application.extensions["storefront"].store.close()


def _shape(path: str) -> str:
    """``/a/<int:x>/b.<y>`` and ``/a/{x}/b.{y}`` -> ``/a/{}/b.{}``."""
    return re.sub(r"<(?:[^<>:]+:)?[^<>]+>|\{[^{}]+\}", "{}", path)


def _validator(component: str) -> jsonschema.Draft202012Validator:
    # The components ride along at the root, so the spec's own "#/components/..." refs resolve.
    return jsonschema.Draft202012Validator({"$ref": f"#/components/schemas/{component}",
                                            "components": SPEC["components"]})


# -- the document --------------------------------------------------------------------------------


def test_the_spec_is_valid_openapi_3_1():
    assert SPEC["openapi"].startswith("3.1.")
    errors = [error.message for error in OpenAPIV31SpecValidator(SPEC).iter_errors()]
    assert errors == []


def test_every_operation_has_an_id_and_documents_its_errors_with_the_error_schema():
    operation_ids = []
    for path, item in SPEC["paths"].items():
        for method in HTTP_METHODS & set(item):
            operation = item[method]
            operation_ids.append(operation["operationId"])
            for status, response in operation["responses"].items():
                if "$ref" in response:
                    response = SPEC["components"]["responses"][response["$ref"].rsplit("/", 1)[1]]
                # /readyz answers 503 with its readiness report, not an error.
                if int(status) >= 400 and path != "/readyz":
                    schema = response["content"]["application/json"]["schema"]
                    assert schema == {"$ref": "#/components/schemas/Error"}, (method, path, status)
    assert len(operation_ids) == len(set(operation_ids))
    assert set(COMPONENTS["Error"]["required"]) == {"error", "message", "fields"}


def test_admin_operations_require_the_bearer_token_and_nothing_else_does():
    assert SPEC["components"]["securitySchemes"]["bearerAuth"] == {
        **SPEC["components"]["securitySchemes"]["bearerAuth"], "type": "http", "scheme": "bearer"}
    for path, item in SPEC["paths"].items():
        for method in HTTP_METHODS & set(item):
            security = item[method].get("security", SPEC.get("security"))
            if path.startswith("/admin/v1/"):
                assert security == [{"bearerAuth": []}], (method, path)
                assert {"401", "400"} <= set(item[method]["responses"]), (method, path)
            else:
                assert not security, (method, path)


# -- routes --------------------------------------------------------------------------------------


def test_every_route_is_documented_and_every_documented_path_is_routed(routed_app):
    routed: dict[str, set[str]] = {}
    arguments: dict[str, set[str]] = {}
    for rule in routed_app.url_map.iter_rules():
        shape = _shape(rule.rule)
        # OPTIONS is answered by Flask for every route; it is not part of the API.
        routed.setdefault(shape, set()).update(set(rule.methods or ()) - {"OPTIONS"})
        arguments[shape] = {RENAMED_PARAMETERS.get((shape, name), name) for name in rule.arguments}
    documented = {_shape(path): {m.upper() for m in HTTP_METHODS & set(item)}
                  for path, item in SPEC["paths"].items()}
    spec_arguments = {_shape(path): set(re.findall(r"\{([^{}]+)\}", path)) for path in SPEC["paths"]}

    assert sorted(set(routed) - set(documented)) == [], "routes missing from openapi.yaml"
    assert sorted(set(documented) - set(routed)) == [], "documented paths the app does not route"
    for shape, methods in routed.items():
        # Werkzeug answers HEAD on every GET route; the spec lists it only where the contract does.
        assert methods - {"HEAD"} == documented[shape] - {"HEAD"}, shape
        assert documented[shape] <= methods, shape
        assert arguments[shape] == spec_arguments[shape], shape
    for shape in HEAD_IN_CONTRACT:
        assert "HEAD" in documented[shape]


def test_the_comparison_would_notice_an_undocumented_route(routed_app):
    # Guards the test above against comparing two empty sets.
    assert len({_shape(rule.rule) for rule in routed_app.url_map.iter_rules()}) >= 15
    assert _shape("/v1/shops/<shop>/widgets/<filename>") == _shape("/v1/shops/{shop}/widgets/{file}")
    assert _shape("/static/<path:filename>") == "/static/{}"


# -- /openapi.json -------------------------------------------------------------------------------


def test_openapi_json_serves_the_yaml_as_cacheable_json(routed_app):
    client = routed_app.test_client()
    response = client.get("/openapi.json")
    assert response.status_code == 200
    assert response.mimetype == "application/json"
    assert response.headers["Cache-Control"] == "public, max-age=300"
    assert json.loads(response.get_data()) == SPEC
    etag = response.headers["ETag"]
    again = client.get("/openapi.json", headers={"If-None-Match": etag})
    assert again.status_code == 304
    assert again.get_data() == b""
    head = client.head("/openapi.json")
    assert head.status_code == 200 and head.get_data() == b""
    assert "Set-Cookie" not in response.headers


def test_the_yaml_is_parsed_once_not_per_request(routed_app, monkeypatch):
    calls = []
    real = openapi.load_spec

    def counting(path: Path = openapi.SPEC_PATH) -> dict[str, Any]:
        calls.append(path)
        return real(path)

    openapi._served.cache_clear()
    monkeypatch.setattr(openapi, "load_spec", counting)
    try:
        client = routed_app.test_client()
        bodies = {client.get("/openapi.json").get_data() for _ in range(3)}
    finally:
        openapi._served.cache_clear()
    assert len(calls) == 1
    assert len(bodies) == 1


# -- schemas against storefront.validation -------------------------------------------------------


def _resolve(schema: dict[str, Any]) -> dict[str, Any]:
    while "$ref" in schema:
        schema = COMPONENTS[schema["$ref"].rsplit("/", 1)[1]]
    return schema


def _json_types(schema: dict[str, Any]) -> set[str]:
    """The JSON types a (sub)schema admits, following $ref, oneOf/anyOf and allOf's first part."""
    schema = _resolve(schema)
    if "const" in schema:
        return {_type_of(schema["const"])}
    if "oneOf" in schema or "anyOf" in schema:
        return set().union(*(_json_types(part) for part in schema.get("oneOf", schema.get("anyOf"))))
    if "allOf" in schema:
        return _json_types(schema["allOf"][0])
    declared = schema.get("type")
    if declared is None:
        return {"string"} if "enum" in schema and all(isinstance(v, str) for v in schema["enum"]) else set()
    return {declared} if isinstance(declared, str) else set(declared)


def _type_of(value: object) -> str:
    return {bool: "boolean", int: "integer", float: "number", str: "string", list: "array",
            dict: "object", type(None): "null"}[type(value)]


def _wrong_values(types: set[str]) -> list[object]:
    """JSON values of types the schema does not admit (1.5 for an integer-only member)."""
    samples = {"object": {"unexpected": 1}, "array": ["x"], "string": "x", "integer": 7, "boolean": True,
               "null": None}
    admitted = types | ({"integer"} if "number" in types else set())
    wrong = [value for name, value in samples.items() if name not in admitted]
    if "integer" in types and "number" not in types:
        wrong.append(1.5)
    return wrong


def _path(prefix: str, member: str) -> str:
    return f"{prefix}.{member}" if prefix else member


PRODUCT_PARTS = [
    # (component, fixture, JSON path of the part, how to reach it)
    ("ProductDocument", "coffee-three-plans.json", "", lambda d: d),
    ("Variant", "coffee-three-plans.json", "variants[0]", lambda d: d["variants"][0]),
    ("SellingPlanAllocation", "coffee-three-plans.json", "variants[0].selling_plan_allocations[0]",
     lambda d: d["variants"][0]["selling_plan_allocations"][0]),
    ("SellingPlanGroup", "coffee-three-plans.json", "selling_plan_groups[0]",
     lambda d: d["selling_plan_groups"][0]),
    ("SellingPlan", "coffee-three-plans.json", "selling_plan_groups[0].selling_plans[0]",
     lambda d: d["selling_plan_groups"][0]["selling_plans"][0]),
    ("Bundle", "snack-box-bundle.json", "bundle", lambda d: d["bundle"]),
]


@pytest.mark.parametrize(("component", "fixture", "prefix", "reach"), PRODUCT_PARTS,
                         ids=[part[0] for part in PRODUCT_PARTS])
def test_product_schema_members_are_required_and_typed_as_validation_requires(component, fixture, prefix,
                                                                               reach):
    document = load_fixture(f"products/{fixture}")
    validation.validate_product(document, document["id"])  # the fixture itself is valid
    schema = COMPONENTS[component]
    assert set(schema["required"]) <= set(schema["properties"])
    for member, member_schema in schema["properties"].items():
        missing = copy.deepcopy(document)
        reach(missing).pop(member, None)
        if member in schema["required"]:
            with pytest.raises(validation.ValidationFailed) as failure:
                validation.validate_product(missing, document["id"])
            assert _path(prefix, member) in failure.value.fields, (component, member)
        else:
            validation.validate_product(missing, document["id"])
        for wrong in _wrong_values(_json_types(member_schema)):
            mistyped = copy.deepcopy(document)
            reach(mistyped)[member] = wrong
            with pytest.raises(validation.ValidationFailed) as failure:
                validation.validate_product(mistyped, document["id"])
            assert _path(prefix, member) in failure.value.fields, (component, member, wrong)


def test_shop_schema_members_are_required_and_typed_as_validation_requires():
    shop = {"name": "Demo", "currency": "USD", "money_format": "${{amount}}", "default_locale": "en",
            "locales": ["en", "fr"]}
    validation.validate_shop(shop)
    schema = COMPONENTS["ShopInput"]
    assert set(schema["required"]) == set(schema["properties"]) == set(shop)
    for member, member_schema in schema["properties"].items():
        with pytest.raises(validation.ValidationFailed) as failure:
            validation.validate_shop({k: v for k, v in shop.items() if k != member})
        assert member in failure.value.fields
        for wrong in _wrong_values(_json_types(member_schema)):
            with pytest.raises(validation.ValidationFailed) as failure:
                validation.validate_shop({**shop, member: wrong})
            assert member in failure.value.fields, (member, wrong)


@pytest.mark.parametrize("path", sorted((FIXTURES / "products").glob("*.json")), ids=lambda p: p.stem)
def test_every_fixture_product_matches_the_product_schema_before_and_after_validation(path):
    document = json.loads(path.read_text(encoding="utf-8"))
    _validator("ProductDocument").validate(document)
    _validator("ProductDocument").validate(validation.validate_product(document, document["id"]))


@pytest.mark.parametrize("kind", sorted(KIND_SCHEMAS))
def test_settings_schemas_name_exactly_the_kinds_settings_and_labels(kind):
    name = KIND_SCHEMAS[kind]
    defaults = default_settings(kind)
    patch = COMPONENTS[f"{name}SettingsPatch"]
    assert patch["additionalProperties"] is False
    assert set(patch["properties"]) == set(defaults)
    complete = COMPONENTS[f"{name}Settings"]["allOf"][1]
    assert set(complete["required"]) == set(defaults)
    labels = COMPONENTS[f"{name}Labels"]
    assert set(labels["properties"]) == set(LABELS[kind])
    assert set(complete["properties"]["labels"]["required"]) == set(LABELS[kind])
    for key, label in labels["properties"].items():
        limit = LONG_LABELS.get(key, LABEL_MAX)
        assert _resolve(label)["maxLength"] == limit, key
    assert patch["properties"]["translations"]["maxProperties"] == MAX_TRANSLATION_LOCALES
    # What the app stores for an empty draft is what the spec calls complete settings.
    stored = validation.validate_widget_settings(kind, {"settings": {}})
    _validator(f"{name}Settings").validate(stored)
    _validator("WidgetSettings").validate(stored)


@pytest.mark.parametrize("kind", sorted(KIND_SCHEMAS))
def test_settings_members_are_typed_as_validation_requires(kind):
    patch = COMPONENTS[f"{KIND_SCHEMAS[kind]}SettingsPatch"]
    for member, member_schema in patch["properties"].items():
        for wrong in _wrong_values(_json_types(member_schema)):
            if wrong is None:
                continue  # null in a settings patch is a merge instruction, not a value
            with pytest.raises(validation.ValidationFailed) as failure:
                validation.validate_widget_settings(kind, {"settings": {member: wrong}})
            assert f"settings.{member}" in failure.value.fields, (member, wrong)


def test_settings_patches_the_spec_accepts_are_accepted_by_the_app():
    for kind in KIND_SCHEMAS:
        for example in ({"enabled": False, "colors": {"accent": "#abc"}},
                        {"labels": dict.fromkeys(LABELS[kind], "Plain text")},
                        {"translations": {"fr": dict.fromkeys(LABELS[kind], "Texte")}}):
            _validator(f"{KIND_SCHEMAS[kind]}SettingsPatch").validate(example)
            validation.validate_widget_settings(kind, {"settings": example})
