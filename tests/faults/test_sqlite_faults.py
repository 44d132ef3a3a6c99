"""SQLite faults: another process holding the write lock, and the database file gone from under the app."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.faults.deployment import (
    AUTH,
    CACHED,
    DB_TIMEOUT_S,
    IDENTITY,
    REDIS_BUDGET_S,
    SHOP,
    SLACK_S,
    UNCACHED,
    Deployment,
    ReferenceBodies,
    SQLiteUnderTest,
    assert_fresh,
    assert_stale,
    assert_unavailable,
    assert_within,
    product_document,
    request_bound_s,
    timed,
)
from tests.faults.toolkit import sqlite_file_replaced, sqlite_write_lock
from tests.services import PrivateRedis

pytestmark = [pytest.mark.slow, pytest.mark.redis]

PRODUCT = 7001000000003
PRODUCT_PATH = f"/admin/v1/shops/{SHOP}/products/{PRODUCT}"


@pytest.fixture
def deployment(tmp_path: Path, private_redis: PrivateRedis) -> Iterator[Deployment]:
    built = Deployment(SQLiteUnderTest(tmp_path), private_redis)
    yield built
    built.close()


def test_write_lock_held_elsewhere_fails_writes_not_widgets(
    deployment: Deployment, reference: ReferenceBodies
) -> None:
    app = deployment.app()
    database = deployment.database
    assert isinstance(database, SQLiteUnderTest)
    (version_before,), = database.query(
        "SELECT version FROM products WHERE shop = ? AND product_id = ?", SHOP, PRODUCT)
    with sqlite_write_lock(database.path):
        # WAL: readers are not blocked by a writer, so widgets are rendered, not served stale.
        assert_fresh(timed(app, "GET", CACHED, headers=IDENTITY), reference(CACHED))
        never_rendered = timed(app, "GET", UNCACHED, headers=IDENTITY)
        assert_fresh(never_rendered, reference(UNCACHED))
        assert_within(never_rendered, REDIS_BUDGET_S + SLACK_S)
        write = timed(app, "PUT", PRODUCT_PATH, headers=AUTH, json=product_document(PRODUCT, "Locked out"))
        assert_unavailable(write)
        # It queued for the lock for the busy timeout, then gave up.
        assert write.seconds >= 0.9 * DB_TIMEOUT_S, write
        assert_within(write, request_bound_s(database))
        readiness = timed(app, "GET", "/readyz").response
        assert (readiness.status_code, readiness.get_json()) == (200, {"database": "ok", "cache": "ok"})
    (version_after,), = database.query(
        "SELECT version FROM products WHERE shop = ? AND product_id = ?", SHOP, PRODUCT)
    assert version_after == version_before  # the 503 changed nothing
    again = timed(app, "PUT", PRODUCT_PATH, headers=AUTH, json=product_document(PRODUCT, "Let in"))
    assert again.response.status_code == 200, again
    assert again.response.get_json()["version"] == version_before + 1


def test_database_file_gone_serves_stale_or_503(deployment: Deployment, reference: ReferenceBodies) -> None:
    app = deployment.app(LOCAL_CACHE_BYTES=0)  # stale copies from Redis only
    database = deployment.database
    assert isinstance(database, SQLiteUnderTest)
    assert_fresh(timed(app, "GET", CACHED, headers=IDENTITY), reference(CACHED))
    with sqlite_file_replaced(database.path, None):
        stale = timed(app, "GET", CACHED, headers=IDENTITY)
        assert_stale(stale, reference(CACHED))
        never_rendered = timed(app, "GET", UNCACHED, headers=IDENTITY)
        assert_unavailable(never_rendered)
        write = timed(app, "PUT", PRODUCT_PATH, headers=AUTH, json=product_document(PRODUCT, "Into the void"))
        assert_unavailable(write)
        for result in (stale, never_rendered, write):
            assert_within(result, request_bound_s(database))
    # The file is back: the same app serves fresh renders and takes writes.
    assert_fresh(timed(app, "GET", UNCACHED, headers=IDENTITY), reference(UNCACHED))
    assert timed(app, "PUT", PRODUCT_PATH, headers=AUTH,
                 json=product_document(PRODUCT, "Back")).response.status_code == 200


def test_readiness_says_database_down_when_the_file_is_gone(deployment: Deployment) -> None:
    app = deployment.app()
    database = deployment.database
    assert isinstance(database, SQLiteUnderTest)
    with sqlite_file_replaced(database.path, None):
        assert_unavailable(timed(app, "GET", UNCACHED, headers=IDENTITY))
        readiness = timed(app, "GET", "/readyz").response
        assert readiness.get_json() == {"database": "down", "cache": "ok"}
