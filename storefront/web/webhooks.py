"""Shopify webhooks (POST /webhooks/shopify): verify the HMAC, dedupe by webhook id, apply, invalidate.

Shopify delivers at least once and retries anything but a 2xx, so a delivery must be safe to
see twice. The store keeps a set of ids (``record_webhook`` inserts and says whether the id was
new) and has no transaction spanning it and a product write, so every delivery that changes
something records two markers around its single write::

    received = record("received:<id>")             # first time we see this id?
    if not received and not record("applied:<id>"):
        -> 200 duplicate                            # an earlier delivery completed: skip
    write()                                         # put_product / delete_product / put_shop / ...
    if received: record("applied:<id>")

A replay of a completed delivery finds both markers and changes nothing, even if the data has
been edited since. A delivery that failed or crashed after ``received`` but before ``applied``
left only the first marker, so Shopify's retry applies it again: the same payload on the same
document gives the same result. One id recorded before the write would lose the update for good
when the write fails (the retry looks like a duplicate); one id recorded after it would let a
replay overwrite later edits. What remains: a retry that records ``applied`` and then fails to
write is lost, which takes two failures of the same delivery at that exact point. Everything
that can fail for a reason other than the database (payload checks, the merge, validation) runs
before the first marker, so a 400 never marks a delivery as seen.
"""

from __future__ import annotations

import json
import logging
import re
from collections.abc import Callable
from typing import Any

from flask import Blueprint, Response, current_app, jsonify, request

from storefront import validation
from storefront.services import Services
from storefront.shopify.products import apply_products_update
from storefront.shopify.signatures import verify_webhook
from storefront.store import NotFound
from storefront.web.errors import ApiError, read_body_limited

log = logging.getLogger(__name__)

blueprint = Blueprint("webhooks", __name__)

# Shopify's ids are UUIDs; the pattern also keeps marker keys printable and within the column.
_WEBHOOK_ID = re.compile(r"[A-Za-z0-9._:-]{1,200}")
# Loose on purpose: a topic we do not know is acknowledged, whatever Shopify names it next.
_TOPIC = re.compile(r"[A-Za-z0-9_./-]{1,100}")
# shop/update fields we keep (Shopify's shop resource uses our names for them).
SHOP_FIELDS = ("name", "currency", "money_format")


def dedupe_keys(webhook_id: str) -> tuple[str, str]:
    """The ``received`` and ``applied`` markers recorded for one delivery (see the module docstring)."""
    return f"shopify:received:{webhook_id}", f"shopify:applied:{webhook_id}"


def _services() -> Services:
    return current_app.extensions["storefront"]


@blueprint.after_request
def _no_store(response: Response) -> Response:
    response.headers["Cache-Control"] = "no-store"
    return response


def _outcome(status: str, topic: str, reason: str = "") -> Response:
    body: dict[str, Any] = {"status": status, "topic": topic}
    if reason:
        body["reason"] = reason
    return jsonify(body)


def _bad(field: str, why: str) -> ApiError:
    return ApiError(400, f"{field}: {why}", {field: why})


@blueprint.post("/webhooks/shopify")
def receive() -> Response:
    raw = read_body_limited()
    secret = _services().settings.shopify_api_secret
    # Nothing about the request is trusted, or even parsed, before its signature checks out.
    if not verify_webhook(raw, request.headers.get("X-Shopify-Hmac-Sha256"), secret):
        raise ApiError(401, "X-Shopify-Hmac-Sha256 is missing or does not sign this body",
                       {"X-Shopify-Hmac-Sha256": "invalid"}, code="unauthorized")
    shop = request.headers.get("X-Shopify-Shop-Domain", "")
    if not validation.valid_shop_domain(shop):
        raise _bad("X-Shopify-Shop-Domain", "must be a lower-case *.myshopify.com domain")
    topic = request.headers.get("X-Shopify-Topic", "")
    if not _TOPIC.fullmatch(topic):
        raise _bad("X-Shopify-Topic", "must be a topic such as products/update")
    webhook_id = request.headers.get("X-Shopify-Webhook-Id", "")
    if not _WEBHOOK_ID.fullmatch(webhook_id):
        raise _bad("X-Shopify-Webhook-Id", "required: up to 200 of A-Z a-z 0-9 . _ : -")
    handler = _HANDLERS.get(topic)
    if handler is None:
        return _outcome("ignored", topic, "topic not handled")
    try:
        payload = json.loads(raw.decode("utf-8"))
    except (UnicodeDecodeError, ValueError, RecursionError):
        raise ApiError(400, "the body is not valid UTF-8 JSON", {"body": "not JSON"},
                       code="malformed_json") from None
    if not isinstance(payload, dict):
        raise _bad(validation.ROOT_PATH, "must be a JSON object")
    return handler(shop, topic, webhook_id, payload)


def _once(webhook_id: str, write: Callable[[], object]) -> bool:
    """Run ``write`` unless an earlier delivery of ``webhook_id`` completed; True if it ran."""
    store = _services().store.primary
    received_key, applied_key = dedupe_keys(webhook_id)
    received = store.record_webhook(received_key)
    if not received and not store.record_webhook(applied_key):
        return False
    write()
    if received:
        store.record_webhook(applied_key)
    return True


def _payload_id(payload: dict[str, Any]) -> int:
    product_id = payload.get("id")
    is_int = isinstance(product_id, int) and not isinstance(product_id, bool)
    if not is_int or not 1 <= product_id <= validation.MAX_ID:
        raise _bad("id", "must be a positive integer id")
    return product_id


def _products_update(shop: str, topic: str, webhook_id: str, payload: dict[str, Any]) -> Response:
    store = _services().store.primary
    product_id = _payload_id(payload)
    shop_record = store.get_shop(shop)
    if shop_record is None:
        return _outcome("ignored", topic, "unknown shop")
    stored = store.get_product(shop, product_id)
    if stored is None:
        # Only products registered through the admin API (which sets their plans) are served.
        return _outcome("ignored", topic, "unknown product")
    try:
        document = apply_products_update(stored.document, payload, currency=shop_record.currency)
    except validation.ValidationFailed as error:
        raise ApiError(400, "the products/update payload is not usable", error.fields) from None
    # Shopify sends products/update for fields we do not keep (images, tags, ...): such a
    # delivery is still recorded, but writes nothing and leaves every cached render in place.
    changed = document != stored.document

    def write() -> None:
        if changed:
            store.put_product(shop, product_id, document)

    try:
        applied = _once(webhook_id, write)
    except NotFound:
        return _outcome("ignored", topic, "unknown shop")
    if not applied:
        return _outcome("duplicate", topic)
    if not changed:
        return _outcome("unchanged", topic)
    _services().changed(shop, product_id=product_id)
    return _outcome("applied", topic)


def _products_delete(shop: str, topic: str, webhook_id: str, payload: dict[str, Any]) -> Response:
    store = _services().store.primary
    product_id = _payload_id(payload)
    deleted: list[bool] = []
    if not _once(webhook_id, lambda: deleted.append(store.delete_product(shop, product_id))):
        return _outcome("duplicate", topic)
    if not deleted[0]:
        return _outcome("ignored", topic, "unknown product")
    _services().deleted(shop, product_id=product_id)
    return _outcome("applied", topic)


def _shop_update(shop: str, topic: str, webhook_id: str, payload: dict[str, Any]) -> Response:
    store = _services().store.primary
    current = store.get_shop(shop)
    if current is None:
        return _outcome("ignored", topic, "unknown shop")
    fields = {name: getattr(current, name) for name in ("name", "currency", "money_format", "default_locale")}
    fields["locales"] = list(current.locales)
    fields.update((name, payload[name]) for name in SHOP_FIELDS if name in payload)
    try:
        fields = validation.validate_shop(fields)
    except validation.ValidationFailed as error:
        raise ApiError(400, "the shop/update payload is not usable", error.fields) from None
    # Most shop/update deliveries are about fields we do not keep: no write, no invalidation.
    changed = any(fields[name] != getattr(current, name) for name in SHOP_FIELDS)

    def write() -> None:
        if changed:
            store.put_shop(shop, fields)

    if not _once(webhook_id, write):
        return _outcome("duplicate", topic)
    if not changed:
        return _outcome("unchanged", topic)
    _services().changed(shop)
    return _outcome("applied", topic)


def _app_uninstalled(shop: str, topic: str, webhook_id: str, payload: dict[str, Any]) -> Response:
    store = _services().store.primary
    deleted: list[bool] = []
    if not _once(webhook_id, lambda: deleted.append(store.delete_shop(shop))):
        return _outcome("duplicate", topic)
    if not deleted[0]:
        return _outcome("ignored", topic, "unknown shop")
    _services().deleted(shop)
    log.info("shop %s uninstalled the app: its data is deleted", shop)
    return _outcome("applied", topic)


_HANDLERS: dict[str, Callable[[str, str, str, dict[str, Any]], Response]] = {
    "products/update": _products_update,
    "products/delete": _products_delete,
    "shop/update": _shop_update,
    "app/uninstalled": _app_uninstalled,
}
