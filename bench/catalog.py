"""Benchmark products: the demo coffee (three plans) cloned under new ids, written through the store."""

from __future__ import annotations

import copy
from typing import Any

from storefront import validation
from storefront.demo import demo_products
from storefront.store import create_store

SHOP = "demo-coffee.myshopify.com"
FIXTURE_ID = 7001000000001  # coffee-three-plans.json: the widget the size budget is about
FIRST_ID = 8000000000001
# Variant ids of the clones: distinct per product, so no two products' widgets carry the same ids.
FIRST_VARIANT_ID = 9000000000000


def fixture() -> dict[str, Any]:
    for document in demo_products(SHOP):
        if document["id"] == FIXTURE_ID:
            return validation.validate_product(document, FIXTURE_ID)
    raise RuntimeError(f"the demo catalog no longer holds product {FIXTURE_ID} in {SHOP}")


def clone(template: dict[str, Any], product_id: int, number: int) -> dict[str, Any]:
    document = copy.deepcopy(template)
    document["id"] = product_id
    document["handle"] = f"bench-coffee-{number}"
    document["title"] = f"Bench Coffee No. {number}"
    for position, variant in enumerate(document["variants"]):
        variant["id"] = FIRST_VARIANT_ID + number * 100 + position
    return document


def seed_products(database_url: str, first_id: int, count: int) -> list[int]:
    """Create ``count`` products with ids ``first_id...`` in the demo coffee shop; returns their ids.

    Each is the demo coffee with its own id, handle, title and variant ids, so every one renders
    a widget of the same size as the fixture's but with different bytes (and its own cache keys).
    """
    store = create_store(database_url)
    template = fixture()
    ids = []
    try:
        for offset in range(count):
            product_id = first_id + offset
            store.put_product(SHOP, product_id, clone(template, product_id, product_id - FIRST_ID + 1))
            ids.append(product_id)
    finally:
        store.close()
    return ids
