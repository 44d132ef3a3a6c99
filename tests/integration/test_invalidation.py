"""Every change reaches every worker at once: 3 gunicorn workers, 30 requests after each change."""

from __future__ import annotations

import copy
import json
from pathlib import Path

import pytest
import redis
import requests

from tests.services import REDIS_URL, GunicornServer, reachable, unavailable, unique_name

SHOP = "demo-coffee.myshopify.com"
TOKEN = "invalidation-admin-token-012345"
AUTH = {"Authorization": f"Bearer {TOKEN}"}
COFFEE = 7001000000001
FIXTURE = Path(__file__).resolve().parents[1] / "fixtures" / "products" / "coffee-three-plans.json"


@pytest.fixture(scope="module")
def server(tmp_path_factory):  # type: ignore[no-untyped-def]
    if not reachable(REDIS_URL):
        unavailable(f"Redis is not reachable at {REDIS_URL}")
    prefix = unique_name("sfinval") + ":"
    db = tmp_path_factory.mktemp("invalidation") / "db.sqlite"
    running = GunicornServer({
        "STOREFRONT_ENV": "development", "STOREFRONT_DATABASE_URL": f"sqlite:///{db}",
        "STOREFRONT_REDIS_URL": REDIS_URL, "STOREFRONT_REDIS_KEY_PREFIX": prefix,
        "STOREFRONT_ADMIN_TOKENS": TOKEN,
        # A long in-process TTL: only the invalidation message can make the new bytes appear.
        "STOREFRONT_LOCAL_CACHE_TTL_S": "600",
    }, workers=3, threads=2)
    yield running
    running.stop()
    client = redis.Redis.from_url(REDIS_URL)
    keys = list(client.scan_iter(match=f"{prefix}*"))
    if keys:
        client.delete(*keys)
    client.close()


def fetch_30(url: str) -> list[tuple[int, bytes]]:
    # A new connection each time, so the kernel spreads the requests over the workers.
    return [(r.status_code, r.content) for r in
            (requests.get(url, headers={"Accept-Encoding": "identity", "Connection": "close"}, timeout=5)
             for _ in range(30))]


def admin(server, method: str, path: str, body: object = None) -> requests.Response:  # type: ignore[no-untyped-def]
    response = requests.request(method, f"{server.url}/admin/v1/shops/{SHOP}{path}", json=body, headers=AUTH,
                                timeout=10)
    assert response.status_code < 300, response.text
    return response


def widget(server, fmt: str = "json", kind: str = "subscription") -> str:  # type: ignore[no-untyped-def]
    product = "" if kind == "loyalty" else f"?product={COFFEE}"
    return f"{server.url}/v1/shops/{SHOP}/widgets/{kind}.{fmt}{product}"


def assert_all_new(url: str, must_contain: bytes) -> None:
    results = fetch_30(url)
    assert {status for status, _ in results} == {200}
    assert all(must_contain in body for _, body in results), [b[:80] for _, b in results]
    assert len({body for _, body in results}) == 1


def test_publish_reaches_every_worker(server) -> None:  # type: ignore[no-untyped-def]
    fetch_30(widget(server))  # every worker now holds the old render in memory
    admin(server, "PUT", "/widgets/subscription", {"settings": {"labels": {"onetime": "Buy once v2"}}})
    # A draft is never visible to shoppers.
    assert all(b"Buy once v2" not in body for _, body in fetch_30(widget(server)))
    admin(server, "POST", "/widgets/subscription/publish")
    assert_all_new(widget(server), b"Buy once v2")
    assert_all_new(widget(server, "js"), b"Buy once v2")


def test_rollback_reaches_every_worker(server) -> None:  # type: ignore[no-untyped-def]
    versions = admin(server, "GET", "/widgets/subscription/versions").json()
    fetch_30(widget(server))
    admin(server, "POST", "/widgets/subscription/rollback", {"version": versions[0]["version"]})
    assert_all_new(widget(server), b"One-time purchase")


def test_product_update_reaches_every_worker(server) -> None:  # type: ignore[no-untyped-def]
    product = json.loads(FIXTURE.read_text())
    fetch_30(widget(server))
    changed = copy.deepcopy(product)
    changed["title"] = "Coffee (fresh crop)"
    admin(server, "PUT", f"/products/{COFFEE}", changed)
    assert_all_new(widget(server), b"Coffee (fresh crop)")


def test_shop_update_reaches_every_worker(server) -> None:  # type: ignore[no-untyped-def]
    fetch_30(widget(server))
    admin(server, "PUT", "", {"name": "Demo Coffee Co.", "currency": "USD",
                              "money_format": "{{amount}} dollars", "default_locale": "en",
                              "locales": ["en", "fr"]})
    assert_all_new(widget(server), b"dollars")


def test_product_delete_and_shop_delete_reach_every_worker(server) -> None:  # type: ignore[no-untyped-def]
    fetch_30(widget(server))
    admin(server, "DELETE", f"/products/{COFFEE}")
    assert {status for status, _ in fetch_30(widget(server))} == {404}
    fetch_30(widget(server, kind="loyalty"))
    admin(server, "DELETE", "")
    assert {status for status, _ in fetch_30(widget(server, kind="loyalty"))} == {404}
