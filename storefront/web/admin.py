"""The admin API (/admin/v1): bearer-token auth, JSON in and out, validation before any write."""

from __future__ import annotations

import hashlib
import hmac
import json
from typing import Any
from urllib.parse import urlencode

from flask import Blueprint, Response, current_app, jsonify, request

from storefront import validation
from storefront.preview_links import PreviewGrant
from storefront.services import Services
from storefront.store import WIDGET_KINDS, Conflict, NotFound, Store
from storefront.web.errors import ApiError, read_body_limited

blueprint = Blueprint("admin", __name__, url_prefix="/admin/v1")


def _services() -> Services:
    return current_app.extensions["storefront"]


def _store() -> Store:
    # The primary, never a read replica: the admin reads what it just wrote, and writes go there anyway.
    return _services().store.primary


def _digest(token: str) -> bytes:
    # Comparing fixed-length digests keeps the comparison constant-time whatever the lengths.
    return hashlib.sha256(token.encode("utf-8", "surrogatepass")).digest()


@blueprint.before_request
def _authenticate() -> None:
    header = request.headers.get("Authorization", "")
    scheme, _, token = header.partition(" ")
    presented = _digest(token.strip()) if scheme.lower() == "bearer" and token.strip() else None
    matched = False
    for valid in _services().settings.admin_tokens:
        # Compare against every token (no early exit) so timing says nothing about which one.
        if presented is not None and hmac.compare_digest(presented, _digest(valid)):
            matched = True
    if not matched:
        raise ApiError(401, "a valid bearer token is required", code="unauthorized")


@blueprint.after_request
def _no_store(response: Response) -> Response:
    response.headers["Cache-Control"] = "no-store"
    return response


def _shop_domain(shop: str) -> str:
    if not validation.valid_shop_domain(shop):
        raise ApiError(400, "shop must be a lower-case *.myshopify.com domain",
                       {"shop": "must match ^[a-z0-9][a-z0-9-]{0,60}\\.myshopify\\.com$"})
    return shop


def _kind(kind: str) -> str:
    if kind not in WIDGET_KINDS:
        raise ApiError(404, f"unknown widget kind; one of {', '.join(WIDGET_KINDS)}", {"kind": "unknown"})
    return kind


def _product_id(text: str) -> int:
    try:
        product_id = validation.parse_product_id(text)
    except ValueError:
        product_id = 0
    if not 1 <= product_id <= validation.MAX_ID:
        raise ApiError(400, "product_id must be a Shopify product id (1-20 digits)",
                       {"product_id": "must be 1-20 digits, at most 2^63-1"})
    return product_id


def _json_body(required: bool = True) -> Any:
    """The request's JSON, after the size, media type and syntax checks, in that order."""
    raw = read_body_limited()
    if not raw and not required:
        return None
    if request.mimetype != "application/json":
        raise ApiError(415, "the body must be JSON (Content-Type: application/json)",
                       {"Content-Type": "must be application/json"})
    try:
        return json.loads(raw.decode("utf-8"), parse_constant=_reject_constant)
    except (UnicodeDecodeError, ValueError) as error:
        raise ApiError(400, "the body is not valid UTF-8 JSON", {"body": str(error)[:200]},
                       code="malformed_json") from None
    except RecursionError:
        raise ApiError(400, "the body is nested too deeply", {"body": "nested too deeply"},
                       code="malformed_json") from None


def _reject_constant(name: str) -> None:
    # NaN and Infinity are not JSON; Python's parser accepts them unless told otherwise.
    raise ValueError(f"{name} is not valid JSON")


def _optional_object_body() -> dict[str, Any]:
    body = _json_body(required=False)
    if body is None:
        return {}
    if not isinstance(body, dict):
        raise ApiError(422, "the body must be a JSON object", {"$": "must be an object"})
    return body


def _optional_product_id(body: dict[str, Any], fields: dict[str, str]) -> int | None:
    product_id = body.get("product_id")
    if product_id is not None and (isinstance(product_id, bool) or not isinstance(product_id, int)
                                   or not 1 <= product_id <= validation.MAX_ID):
        fields["product_id"] = "must be a product id (a positive integer)"
    return product_id


def _validated(check, *args: Any) -> Any:  # type: ignore[no-untyped-def]
    try:
        return check(*args)
    except validation.ValidationFailed as error:
        raise ApiError(422, "the request did not pass validation", error.fields) from None


def _existing_shop(shop: str):  # type: ignore[no-untyped-def]
    record = _store().get_shop(shop)
    if record is None:
        raise ApiError(404, "no such shop", {"shop": "not found"})
    return record


# -- shops -------------------------------------------------------------------------------------
@blueprint.put("/shops/<shop>")
def put_shop(shop: str) -> tuple[Response, int]:
    shop = _shop_domain(shop)
    fields = _validated(validation.validate_shop, _json_body())
    record, created = _store().put_shop(shop, fields)
    _services().changed(shop)
    return jsonify(record.to_json()), 201 if created else 200


@blueprint.get("/shops/<shop>")
def get_shop(shop: str) -> Response:
    return jsonify(_existing_shop(_shop_domain(shop)).to_json())


@blueprint.delete("/shops/<shop>")
def delete_shop(shop: str) -> tuple[str, int]:
    shop = _shop_domain(shop)
    if not _store().delete_shop(shop):
        raise ApiError(404, "no such shop", {"shop": "not found"})
    _services().deleted(shop)
    return "", 204


# -- products ----------------------------------------------------------------------------------
@blueprint.put("/shops/<shop>/products/<product_id>")
def put_product(shop: str, product_id: str) -> tuple[Response, int]:
    shop, pid = _shop_domain(shop), _product_id(product_id)
    document = _validated(validation.validate_product, _json_body(), pid)
    try:
        record, created = _store().put_product(shop, pid, document)
    except NotFound:
        raise ApiError(404, "no such shop", {"shop": "not found"}) from None
    _services().changed(shop, product_id=pid)
    return jsonify(_product_json(record)), 201 if created else 200


@blueprint.get("/shops/<shop>/products/<product_id>")
def get_product(shop: str, product_id: str) -> Response:
    shop, pid = _shop_domain(shop), _product_id(product_id)
    record = _store().get_product(shop, pid)
    if record is None:
        raise ApiError(404, "no such product", {"product_id": "not found"})
    return jsonify(_product_json(record))


@blueprint.delete("/shops/<shop>/products/<product_id>")
def delete_product(shop: str, product_id: str) -> tuple[str, int]:
    shop, pid = _shop_domain(shop), _product_id(product_id)
    if not _store().delete_product(shop, pid):
        raise ApiError(404, "no such product", {"product_id": "not found"})
    _services().deleted(shop, product_id=pid)
    return "", 204


def _product_json(record) -> dict[str, Any]:  # type: ignore[no-untyped-def]
    return {"shop": record.shop, "product_id": record.product_id, "version": record.version,
            "updated_at": record.updated_at, "product": record.document}


# -- widgets -----------------------------------------------------------------------------------
@blueprint.get("/shops/<shop>/widgets/<kind>")
def get_widget(shop: str, kind: str) -> Response:
    shop, kind = _shop_domain(shop), _kind(kind)
    _existing_shop(shop)
    state = _store().get_widget(shop, kind)
    published = state.published
    return jsonify({
        "published": None if published is None else {
            "version": published.version, "settings": published.settings,
            "published_at": published.published_at},
        "draft": state.draft,
    })


@blueprint.put("/shops/<shop>/widgets/<kind>")
def put_widget_draft(shop: str, kind: str) -> Response:
    shop, kind = _shop_domain(shop), _kind(kind)
    body = _json_body()
    _existing_shop(shop)
    state = _store().get_widget(shop, kind)
    # A partial update merges onto the draft, else onto what is live, else onto the defaults.
    base = state.draft if state.draft is not None else (
        state.published.settings if state.published is not None else None)
    settings = _validated(validation.validate_widget_settings, kind, body, base)
    try:
        stored = _store().put_draft(shop, kind, settings)
    except NotFound:
        raise ApiError(404, "no such shop", {"shop": "not found"}) from None
    return jsonify({"settings": stored.draft, "updated_at": stored.draft_updated_at})


@blueprint.post("/shops/<shop>/widgets/<kind>/publish")
def publish_widget(shop: str, kind: str) -> Response:
    shop, kind = _shop_domain(shop), _kind(kind)
    _existing_shop(shop)
    try:
        version = _store().publish(shop, kind)
    except Conflict:
        raise ApiError(409, "there is no draft to publish; PUT the settings first",
                       {"draft": "missing"}) from None
    _services().changed(shop, kind=kind)
    _services().warmer.warm(shop, kind)
    return jsonify({"version": version})


@blueprint.post("/shops/<shop>/widgets/<kind>/rollback")
def rollback_widget(shop: str, kind: str) -> Response:
    shop, kind = _shop_domain(shop), _kind(kind)
    target = _validated(validation.validate_rollback, _json_body())
    _existing_shop(shop)
    try:
        version = _store().rollback(shop, kind, target)
    except NotFound:
        raise ApiError(404, f"version {target} was never published", {"version": "not found"}) from None
    _services().changed(shop, kind=kind)
    _services().warmer.warm(shop, kind)
    return jsonify({"version": version})


@blueprint.get("/shops/<shop>/widgets/<kind>/versions")
def list_widget_versions(shop: str, kind: str) -> Response:
    shop, kind = _shop_domain(shop), _kind(kind)
    _existing_shop(shop)
    versions = _store().list_versions(shop, kind)
    return jsonify([{"version": v.version, "published_at": v.published_at} for v in versions])


@blueprint.post("/shops/<shop>/widgets/<kind>/preview-links")
def create_preview_link(shop: str, kind: str) -> tuple[Response, int]:
    shop, kind = _shop_domain(shop), _kind(kind)
    body = _optional_object_body()
    fields: dict[str, str] = {}
    product_id = _optional_product_id(body, fields)
    locale = body.get("locale")
    if locale is not None and not validation.valid_locale(locale):
        fields["locale"] = "must look like en or en-US"
    draft = body.get("draft", False)
    if not isinstance(draft, bool):
        fields["draft"] = "must be true or false"
    if fields:
        raise ApiError(422, "the request did not pass validation", fields)
    services = _services()
    _existing_shop(shop)
    if product_id is not None and services.store.primary.get_product(shop, product_id) is None:
        raise ApiError(404, "no such product", {"product_id": "not found"})
    if draft and services.store.primary.get_widget(shop, kind).draft is None:
        raise ApiError(409, "there is no draft to preview", {"draft": "missing"})
    token, expires_at = services.preview_signer.sign(PreviewGrant(
        shop=shop, kind=kind, product_id=product_id, locale=locale, draft=draft))
    url = f"{services.settings.public_base_url}/preview/{shop}/{kind}?{urlencode({'token': token})}"
    return jsonify({"url": url, "expires_at": expires_at}), 201


@blueprint.post("/shops/<shop>/purge")
def purge_shop(shop: str) -> tuple[Response, int]:
    shop = _shop_domain(shop)
    body = _optional_object_body()
    fields: dict[str, str] = {}
    kind = body.get("kind")
    if kind is not None and kind not in WIDGET_KINDS:
        fields["kind"] = f"must be one of {', '.join(WIDGET_KINDS)}"
    product_id = _optional_product_id(body, fields)
    if fields:
        raise ApiError(422, "the request did not pass validation", fields)
    _existing_shop(shop)
    deleted = _services().purge(shop, kind=kind, product_id=product_id)
    scope = {"shop": shop, "kind": kind, "product_id": product_id}
    return jsonify({"purged": scope, "origin_keys_deleted": deleted}), 202
