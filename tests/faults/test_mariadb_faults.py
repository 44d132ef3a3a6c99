"""MariaDB faults in the middle of a request: connections cut, the server frozen mid-query, restarts."""

from __future__ import annotations

import contextlib
import threading
from collections.abc import Callable, Iterator

import pymysql
import pytest

from tests.faults.deployment import (
    AUTH,
    CACHED,
    IDENTITY,
    REDIS_BUDGET_S,
    SHOP,
    SLACK_S,
    Deployment,
    MariaDBUnderTest,
    ReferenceBodies,
    Timed,
    assert_fresh,
    assert_stale,
    assert_within,
    product_document,
    timed,
)
from tests.faults.toolkit import PrivateMariaDB
from tests.services import PrivateRedis

pytestmark = [pytest.mark.slow, pytest.mark.mysql, pytest.mark.redis]

PRODUCT = 7001000000003
PRODUCT_PATH = f"/admin/v1/shops/{SHOP}/products/{PRODUCT}"


@pytest.fixture
def deployment(mariadb: PrivateMariaDB, private_redis: PrivateRedis) -> Iterator[Deployment]:
    database = MariaDBUnderTest(mariadb)
    built = Deployment(database, private_redis)
    yield built
    built.close()
    database.close()


def in_background(call: Callable[[], Timed]) -> tuple[threading.Thread, dict[str, Timed]]:
    outcome: dict[str, Timed] = {}
    thread = threading.Thread(target=lambda: outcome.update(result=call()), daemon=True)
    thread.start()
    return thread, outcome


def product_version(deployment: Deployment) -> int:
    (row,) = deployment.database.query(
        "SELECT version FROM products WHERE shop = ? AND product_id = ?", SHOP, PRODUCT)
    return int(row[0])


@contextlib.contextmanager
def held_lock(server: PrivateMariaDB, database: str, statement: str) -> Iterator[None]:
    """Another client holding a lock the app's next statement will wait for."""
    holder = server.connect(database)
    holder.autocommit(False)
    with holder.cursor() as cursor:
        cursor.execute(statement)
    try:
        yield
    finally:
        with contextlib.suppress(pymysql.err.MySQLError):
            holder.close()


def retried_after_lost_connection(caplog: pytest.LogCaptureFixture) -> bool:
    """Whether the store logged a lost connection (2013) and ran the transaction again."""
    return any("retrying once" in record.getMessage() and "2013" in record.getMessage()
               for record in caplog.records if record.name == "storefront.store.sql")


def test_connection_cut_mid_write_is_retried_and_applied_once(
    deployment: Deployment, mariadb: PrivateMariaDB, caplog: pytest.LogCaptureFixture
) -> None:
    # Lock waits give up a second before the 3 s socket timeout: time to see the write waiting.
    app = deployment.app(DB_TIMEOUT_S=3)
    before = product_version(deployment)
    with held_lock(mariadb, deployment.database.database,
                   f"SELECT version FROM products WHERE product_id = {PRODUCT} FOR UPDATE"):
        thread, outcome = in_background(lambda: timed(
            app, "PUT", PRODUCT_PATH, headers=AUTH, json=product_document(PRODUCT, "Across a cut")))
        mariadb.wait_for_statement("INSERT INTO products")
        # The app's connection and the lock holder's (and any other) are cut.
        assert mariadb.drop_connections() >= 2
        thread.join(15)
    write = outcome["result"]
    # Cut before COMMIT was sent: the transaction was rolled back, so the store ran it once more.
    assert write.response.status_code == 200, write
    assert retried_after_lost_connection(caplog)
    assert write.response.get_json()["version"] == before + 1
    assert product_version(deployment) == before + 1
    assert_within(write, 2 * 3 + SLACK_S)
    following = timed(app, "GET", PRODUCT_PATH, headers=AUTH)
    assert following.response.status_code == 200
    assert following.response.get_json()["product"]["title"] == "Across a cut"


def test_connection_cut_mid_read_is_retried(
    deployment: Deployment, mariadb: PrivateMariaDB, reference: ReferenceBodies,
    caplog: pytest.LogCaptureFixture,
) -> None:
    app = deployment.app(DB_TIMEOUT_S=3)
    right = reference(CACHED)
    with held_lock(mariadb, deployment.database.database, "LOCK TABLES shops WRITE"):
        thread, outcome = in_background(lambda: timed(app, "GET", CACHED, headers=IDENTITY))
        mariadb.wait_for_statement("FROM shops")
        assert mariadb.drop_connections() >= 2
        thread.join(15)
    read = outcome["result"]
    assert_fresh(read, right)
    assert retried_after_lost_connection(caplog)
    assert read.response.headers["X-Cache"] == "MISS"  # read from the database, not served stale
    assert_within(read, 2 * 3 + SLACK_S)
    assert_fresh(timed(app, "GET", CACHED, headers=IDENTITY), right)


def test_server_frozen_mid_query_times_out(
    deployment: Deployment, mariadb: PrivateMariaDB, reference
) -> None:
    db_timeout_s = 2  # lock waits give up after 1 s, socket reads after 2 s
    app = deployment.app(DB_TIMEOUT_S=db_timeout_s)
    right = reference(CACHED)
    assert_fresh(timed(app, "GET", CACHED, headers=IDENTITY), right)
    with held_lock(mariadb, deployment.database.database, "LOCK TABLES shops WRITE"):
        thread, outcome = in_background(lambda: timed(app, "GET", CACHED, headers=IDENTITY))
        mariadb.wait_for_statement("FROM shops")
        # Frozen while the app waits for an answer to a statement it already sent.
        mariadb.pause()
        try:
            thread.join(30)
        finally:
            mariadb.resume()
    read = outcome["result"]
    assert_stale(read, right)
    # It waited for the socket timeout (not the lock wait, which a frozen server never reports),
    # then one reconnect to the frozen server, and no longer.
    assert read.seconds >= db_timeout_s, read
    assert_within(read, 2 * db_timeout_s + REDIS_BUDGET_S + SLACK_S)
    assert_fresh(timed(app, "GET", CACHED, headers=IDENTITY), right)


@pytest.mark.parametrize("hard", [False, True], ids=["graceful_restart", "killed_and_started"])
def test_restart_recovers_without_app_restart(
    deployment: Deployment, mariadb: PrivateMariaDB, reference: ReferenceBodies, hard: bool
) -> None:
    app = deployment.app(DB_TIMEOUT_S=1)
    right = reference(CACHED)
    assert_fresh(timed(app, "GET", CACHED, headers=IDENTITY), right)
    written = timed(app, "PUT", PRODUCT_PATH, headers=AUTH, json=product_document(PRODUCT, "Before"))
    assert written.response.status_code == 200
    mariadb.restart(hard=hard)
    # The very next requests, on the same app: fresh reads (from the database, not STALE), writes.
    assert_fresh(timed(app, "GET", CACHED, headers=IDENTITY), right)
    assert timed(app, "GET", "/readyz").response.get_json() == {"database": "ok", "cache": "ok"}
    again = timed(app, "PUT", PRODUCT_PATH, headers=AUTH, json=product_document(PRODUCT, "After"))
    assert again.response.status_code == 200, again
    # The write acknowledged before the restart (or the kill) is still there.
    assert again.response.get_json()["version"] == written.response.get_json()["version"] + 1
