"""Cache warming: after a publish or rollback the widget's renders are made again before anyone asks."""

from __future__ import annotations

import threading

from tests.conftest import ADMIN_TOKEN

SHOP = "demo-coffee.myshopify.com"
AUTH = {"Authorization": f"Bearer {ADMIN_TOKEN}"}


def test_publish_warms_scripts_and_stylesheet(seeded_app) -> None:  # type: ignore[no-untyped-def]
    services = seeded_app.extensions["storefront"]
    finished = threading.Event()
    warmed: list[int] = []
    services.warmer.on_done = lambda count: (warmed.append(count), finished.set())
    client = seeded_app.test_client()
    client.put(f"/admin/v1/shops/{SHOP}/widgets/subscription",
               json={"settings": {"labels": {"onetime": "Warm once"}}}, headers=AUTH)
    published = client.post(f"/admin/v1/shops/{SHOP}/widgets/subscription/publish", headers=AUTH)
    assert published.status_code == 200
    assert finished.wait(30)
    products = len(services.store.list_product_ids(SHOP))
    assert warmed == [1 + products * 2]  # the stylesheet, then each product's script in en and fr
    for locale in ("en", "fr"):
        first = client.get(f"/v1/shops/{SHOP}/widgets/subscription.js?product=7001000000001&locale={locale}")
        assert first.headers["X-Cache"] == "HIT"
        assert b"Warm once" in first.data or locale == "fr"
    assert client.get(f"/v1/shops/{SHOP}/widgets/subscription.css").headers["X-Cache"] == "HIT"
    # Formats nobody loads first are left to fill on demand.
    assert client.get(f"/v1/shops/{SHOP}/widgets/subscription.json?product=7001000000001").headers[
        "X-Cache"] == "MISS"


def test_warming_is_bounded_and_can_be_off(seeded_app) -> None:  # type: ignore[no-untyped-def]
    services = seeded_app.extensions["storefront"]
    finished = threading.Event()
    warmed: list[int] = []
    services.warmer.on_done = lambda count: (warmed.append(count), finished.set())
    services.warmer.max_renders = 3
    client = seeded_app.test_client()
    client.post(f"/admin/v1/shops/{SHOP}/widgets/bundle/rollback", json={"version": 1}, headers=AUTH)
    assert finished.wait(30)
    assert warmed == [3]
    services.warmer.max_renders = 0
    finished.clear()
    client.post(f"/admin/v1/shops/{SHOP}/widgets/bundle/rollback", json={"version": 1}, headers=AUTH)
    assert not finished.wait(0.5)
