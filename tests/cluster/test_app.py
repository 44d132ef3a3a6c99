"""The app with STOREFRONT_REDIS_CLUSTER: shared renders, invalidation and a lost master, end to end."""

from __future__ import annotations

import time
from collections.abc import Callable, Iterator
from typing import Any

import pytest
from flask import Flask
from flask.testing import FlaskClient

from tests.cluster.private_cluster import PrivateCluster, close_cluster_client, cluster_client
from tests.conftest import ADMIN_TOKEN, make_app, seed
from tests.services import unique_name

pytestmark = [pytest.mark.redis, pytest.mark.slow]

SHOP = "demo-coffee.myshopify.com"
COFFEE = 7001000000001
WIDGET = f"/v1/shops/{SHOP}/widgets/subscription.js?product={COFFEE}"
# Widgets of other shops and kinds: their keys carry other hash tags, so some live on other masters.
OTHER_WIDGETS = [
    f"/v1/shops/{SHOP}/widgets/loyalty.js",
    "/v1/shops/kaffee-haus.myshopify.com/widgets/loyalty.js",
    "/v1/shops/sakagura.myshopify.com/widgets/loyalty.js",
    f"/v1/shops/{SHOP}/widgets/subscription.js?product=7001000000004",
    f"/v1/shops/{SHOP}/widgets/bundle.js?product={COFFEE}",
]
AUTH = {"Authorization": f"Bearer {ADMIN_TOKEN}"}
NEW_LABEL = b"Buy once, served by a cluster"


def wait_until(condition: Callable[[], bool], timeout: float = 5.0) -> bool:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if condition():
            return True
        time.sleep(0.02)
    return condition()


@pytest.fixture
def prefix() -> str:
    return unique_name("sfapp") + ":"


@pytest.fixture
def make_cluster_app(
    private_cluster: PrivateCluster, sqlite_url: str, prefix: str
) -> Iterator[Callable[..., Flask]]:
    """``make(seed_port, **settings)``: one more worker of the deployment (one database, cluster, prefix)."""
    apps: list[Flask] = []

    def make(seed_port: int | None = None, **settings: object) -> Flask:
        app = make_app(
            sqlite_url,
            REDIS_URL=private_cluster.url(seed_port or private_cluster.ports[0]),
            REDIS_CLUSTER="true",
            REDIS_KEY_PREFIX=prefix,
            # Roomy for a busy test machine; a dead master answers at once anyway.
            REDIS_TIMEOUT_MS=500,
            REDIS_CONNECT_TIMEOUT_MS=500,
            # Only the invalidation message can make another worker drop what it holds in memory.
            LOCAL_CACHE_TTL_S=600,
            **settings,
        )
        if not apps:
            seed(app)
        apps.append(app)
        return app

    yield make
    for app in apps:
        services = app.extensions["storefront"]
        if services._listener is not None:
            services._listener.stop()
        services.cache.shared.close()
        services.store.close()


def get(client: FlaskClient, path: str) -> Any:
    return client.get(path, headers={"Accept-Encoding": "identity"})


def test_shared_renders_invalidation_and_a_lost_master(
    private_cluster: PrivateCluster, make_cluster_app: Callable[..., Flask], prefix: str
) -> None:
    first, second = make_cluster_app().test_client(), make_cluster_app().test_client()
    raw = cluster_client(private_cluster.seed_url)
    try:
        def keys() -> set[bytes]:
            return set(raw.scan_iter(match=prefix + "*", count=1000))

        miss = get(first, WIDGET)
        assert (miss.status_code, miss.headers["X-Cache"]) == (200, "MISS")
        assert get(first, WIDGET).headers["X-Cache"] == "HIT"
        # The other worker never rendered it: its HIT comes from the cluster.
        hit = get(second, WIDGET)
        assert (hit.status_code, hit.headers["X-Cache"], hit.data) == (200, "HIT", miss.data)

        # The render's value and last-good pointer (its lock is gone) share one slot on the server.
        widget_keys = keys()
        assert len(widget_keys) == 2 and any(b"last-good:" in key for key in widget_keys), widget_keys
        assert len({raw.cluster_keyslot(key) for key in widget_keys}) == 1
        widget_master = private_cluster.owner_of(next(iter(widget_keys)))
        elsewhere = None
        for path in OTHER_WIDGETS:
            before = keys()
            assert get(first, path).status_code == 200
            owners = set(private_cluster.owners_of(list(keys() - before)))
            if owners and widget_master not in owners:
                elsewhere = path
                break
        assert elsewhere is not None, "no other widget lands on another master"

        # A change published through the admin API: new bytes here, and in the other worker once the
        # message (published on one node, heard on another perhaps) arrives.
        listener = second.application.extensions["storefront"]._listener
        assert listener is not None and listener.subscribed.wait(5)
        put = first.put(f"/admin/v1/shops/{SHOP}/widgets/subscription", headers=AUTH,
                        json={"settings": {"labels": {"onetime": NEW_LABEL.decode()}}})
        assert put.status_code == 200, put.data
        publish = first.post(f"/admin/v1/shops/{SHOP}/widgets/subscription/publish", headers=AUTH)
        assert publish.status_code == 200, publish.data
        changed = get(first, WIDGET)
        assert (changed.status_code, changed.headers["X-Cache"]) == (200, "MISS")
        assert NEW_LABEL in changed.data and changed.data != miss.data
        assert wait_until(lambda: get(second, WIDGET).data == changed.data)

        # A worker without memory of its own asks the cluster every time.
        third = make_cluster_app(LOCAL_CACHE_BYTES=0).test_client()
        assert get(third, WIDGET).headers["X-Cache"] == "HIT"

        # The widget's master dies: every worker still answers with the right bytes, new ones too.
        private_cluster.kill(widget_master)
        for client in (first, second):
            assert (get(client, WIDGET).status_code, get(client, WIDGET).data) == (200, changed.data)
        started = time.monotonic()
        fresh = get(third, WIDGET)
        assert time.monotonic() - started < 1.0, "the dead master costs no waiting"
        assert (fresh.status_code, fresh.headers["X-Cache"], fresh.data) == (200, "MISS", changed.data)
        other = get(third, elsewhere)
        assert (other.status_code, other.headers["X-Cache"]) == (200, "HIT"), "from a surviving master"
        survivor = next(port for port in private_cluster.ports if port != widget_master)
        fourth = make_cluster_app(survivor).test_client()
        assert (get(fourth, WIDGET).status_code, get(fourth, WIDGET).data) == (200, changed.data)
        ready = fourth.get("/readyz")
        assert (ready.status_code, ready.json) == (200, {"database": "ok", "cache": "ok"})
    finally:
        close_cluster_client(raw)
