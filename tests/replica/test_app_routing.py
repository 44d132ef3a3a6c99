"""The app on a primary and a "replica": widgets read the replica, admin the primary, changes read back."""

from __future__ import annotations

import json
import logging
import time
from collections.abc import Callable, Iterator

import pytest
import redis

from storefront.demo import seed_demo
from tests.conftest import ADMIN_TOKEN, make_app
from tests.replica.conftest import Databases
from tests.services import REDIS_URL, free_port, reachable, unavailable, unique_name

pytestmark = pytest.mark.mysql

SHOP = "demo-coffee.myshopify.com"
OTHER = "kaffee-haus.myshopify.com"
AUTH = {"Authorization": f"Bearer {ADMIN_TOKEN}"}
LOYALTY = f"/v1/shops/{SHOP}/widgets/loyalty.json"
# What the loyalty widget says with each copy of the shop's money format.
PRIMARY_TEXT = "Earn 2 points for every $1.00 spent"
REPLICA_TEXT = "Earn 2 points for every R$1.00 spent"
CHANGED_TEXT = "Earn 2 points for every P$1.00 spent"
PIN_S = 1
# No in-process tiers and no negative caching: every widget request reads the store, so what it
# answers shows which database the read went to.
UNCACHED = {"LOCAL_CACHE_TTL_S": 0, "LOCAL_CACHE_BYTES": 0, "NEGATIVE_TTL_S": 0, "REPLICA_PIN_S": PIN_S}
LOGGER = "storefront.store.replicated"


@pytest.fixture
def seeded(databases: Databases) -> Databases:
    """The demo data in the primary, copied to the replica, whose copy of SHOP then differs."""
    store = databases.primary.new_store()
    seed_demo(store)
    store.close()
    databases.replicate()
    databases.diverge(SHOP, "Replica Copy", "R${{amount}}")
    return databases


@pytest.fixture
def apps() -> Iterator[Callable[..., object]]:
    """make_app, with every app's listener and connections closed at the end."""
    made: list = []

    def build(databases: Databases, **overrides: object):  # type: ignore[no-untyped-def]
        settings = {"DATABASE_REPLICA_URL": databases.replica.url, **UNCACHED, **overrides}
        app = make_app(databases.primary.url, **settings)
        made.append(app)
        return app

    yield build
    for app in made:
        services = app.extensions["storefront"]
        if services._listener is not None:
            services._listener.stop()
        if services.cache.shared is not None:
            services.cache.shared.close()
        services.store.close()


def earn_text(client) -> str:  # type: ignore[no-untyped-def]
    response = client.get(LOYALTY)
    assert response.status_code == 200, response.get_data(as_text=True)
    return response.get_json()["earn_text"]


def change_money_format(client, shop: str = SHOP) -> None:  # type: ignore[no-untyped-def]
    shop_body = client.get(f"/admin/v1/shops/{shop}", headers=AUTH).get_json()
    body = {key: shop_body[key] for key in ("name", "currency", "default_locale", "locales")}
    response = client.put(f"/admin/v1/shops/{shop}", json={**body, "money_format": "P${{amount}}"},
                          headers=AUTH)
    assert response.status_code == 200, response.get_data(as_text=True)


def wait_for_text(client, wanted: str, limit_s: float) -> float:  # type: ignore[no-untyped-def]
    started = time.monotonic()
    while (text := earn_text(client)) != wanted:
        assert time.monotonic() - started < limit_s, f"still {text!r} after {limit_s}s"
        time.sleep(0.02)
    return time.monotonic() - started


def test_public_widgets_read_the_replica_and_the_admin_api_the_primary(seeded: Databases, apps) -> None:
    client = apps(seeded).test_client()
    assert earn_text(client) == REPLICA_TEXT

    shop = client.get(f"/admin/v1/shops/{SHOP}", headers=AUTH).get_json()
    assert (shop["name"], shop["money_format"], shop["version"]) == ("Demo Coffee Co.", "${{amount}}", 1)

    # Admin reads of data only the primary has: the replica has never seen this draft or version.
    draft = client.put(f"/admin/v1/shops/{SHOP}/widgets/loyalty", json={"settings": {"points_per_unit": 3}},
                       headers=AUTH)
    assert draft.status_code == 200, draft.get_data(as_text=True)
    assert client.get(f"/admin/v1/shops/{SHOP}/widgets/loyalty", headers=AUTH).get_json()["draft"] is not None
    assert client.post(f"/admin/v1/shops/{SHOP}/widgets/loyalty/publish", headers=AUTH).get_json() == {
        "version": 2}
    versions = client.get(f"/admin/v1/shops/{SHOP}/widgets/loyalty/versions", headers=AUTH).get_json()
    assert [v["version"] for v in versions] == [1, 2]
    assert seeded.replica.query(
        "SELECT COUNT(*) FROM widget_versions WHERE shop = ? AND kind = 'loyalty'", SHOP) == [(1,)]

    rename = client.put(f"/admin/v1/shops/{OTHER}", json={
        "name": "Renamed", "currency": "EUR", "money_format": "{{amount}} €", "default_locale": "de",
        "locales": ["de", "en"]}, headers=AUTH)
    assert rename.status_code == 200
    assert seeded.shop_names(OTHER) == ("Renamed", "Kaffee Haus")


def test_after_an_admin_change_widgets_read_the_primary_until_the_pin_runs_out(
    seeded: Databases, apps
) -> None:
    client = apps(seeded).test_client()
    assert earn_text(client) == REPLICA_TEXT

    started = time.monotonic()
    change_money_format(client)
    assert earn_text(client) == CHANGED_TEXT  # read-your-writes, though the replica never saw it
    # Only the changed shop is pinned.
    other = client.get(f"/v1/shops/{OTHER}/widgets/loyalty.json").get_json()["earn_text"]
    assert "P$" not in other

    wait_for_text(client, REPLICA_TEXT, limit_s=PIN_S + 3)
    assert time.monotonic() - started >= PIN_S


def test_a_deleted_shop_is_gone_at_once_though_the_replica_still_has_it(seeded: Databases, apps) -> None:
    client = apps(seeded).test_client()
    assert earn_text(client) == REPLICA_TEXT
    assert client.delete(f"/admin/v1/shops/{SHOP}", headers=AUTH).status_code == 204
    assert seeded.shop_names(SHOP) == (None, "Replica Copy")
    assert client.get(LOYALTY).status_code == 404


def test_a_replica_outage_sends_widget_reads_to_the_primary(
    seeded: Databases, apps, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.WARNING, logger=LOGGER)
    app = apps(seeded, DATABASE_REPLICA_URL=f"mysql://root@127.0.0.1:{free_port()}/{seeded.replica.database}")
    client = app.test_client()
    for _ in range(3):
        assert earn_text(client) == PRIMARY_TEXT
    faults = [r for r in caplog.records if r.name == LOGGER and "unavailable" in r.getMessage()]
    assert len(faults) == 1

    ready = client.get("/readyz")
    assert ready.status_code == 200 and ready.get_json()["database"] == "ok"
    change_money_format(client)
    assert earn_text(client) == CHANGED_TEXT


def test_an_invalidation_message_from_another_worker_pins_the_shop(seeded: Databases, apps) -> None:
    app = apps(seeded)
    client = app.test_client()
    services = app.extensions["storefront"]
    assert earn_text(client) == REPLICA_TEXT

    services._on_message(b"not json")
    services._on_message(json.dumps({"shop": SHOP}).encode())  # no tags: malformed too
    assert earn_text(client) == REPLICA_TEXT

    services._on_message(json.dumps({"shop": SHOP, "tags": [f"shop:{SHOP}"]}).encode())
    assert earn_text(client) == PRIMARY_TEXT
    assert not services.store.pinned(OTHER)
    wait_for_text(client, REPLICA_TEXT, limit_s=PIN_S + 3)


@pytest.mark.redis
def test_a_change_in_one_app_pins_the_shop_in_another_through_redis(seeded: Databases, apps) -> None:
    if not reachable(REDIS_URL):
        unavailable(f"Redis is not reachable at {REDIS_URL}")
    prefix = unique_name("sftest") + ":"
    writer = apps(seeded, REDIS_URL=REDIS_URL, REDIS_KEY_PREFIX=prefix).test_client()
    reader = apps(seeded, REDIS_URL=REDIS_URL, REDIS_KEY_PREFIX=prefix).test_client()
    watcher = redis.Redis.from_url(REDIS_URL)
    try:
        assert earn_text(reader) == REPLICA_TEXT  # its first request starts its listener
        deadline = time.monotonic() + 5
        while watcher.pubsub_numsub(prefix + "invalidate")[0][1] < 1:
            assert time.monotonic() < deadline, "the reader never subscribed"
            time.sleep(0.02)

        change_money_format(writer)
        # The reader's own state said nothing about the change; only the message can pin it.
        wait_for_text(reader, CHANGED_TEXT, limit_s=PIN_S)
        wait_for_text(reader, REPLICA_TEXT, limit_s=PIN_S + 3)
    finally:
        keys = list(watcher.scan_iter(match=f"{prefix}*", count=1000))
        if keys:
            watcher.delete(*keys)
        watcher.close()
