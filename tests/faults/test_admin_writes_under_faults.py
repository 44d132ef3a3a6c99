"""Admin writes while the database is killed, frozen, cut off or locked: nothing acknowledged is lost.

One admin keeps writing (a product under increasing titles, a loyalty draft, a publish) while a
fault schedule runs against the database (and takes Redis away for part of it). Every answer is
a 2xx or the contract's 503, never a 500. Afterwards every write that answered 2xx is there,
product and widget versions count exactly the writes that were applied (gap-free), and a write
that answered 503 is either wholly there or wholly absent.
"""

from __future__ import annotations

import contextlib
import dataclasses
import json
import threading
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
from flask import Flask

from tests.faults.deployment import (
    AUTH,
    DB_TIMEOUT_S,
    IDENTITY,
    SHOP,
    SLACK_S,
    DatabaseUnderTest,
    Deployment,
    MariaDBUnderTest,
    SQLiteUnderTest,
    Timed,
    assert_unavailable,
    product_document,
    timed,
)
from tests.faults.toolkit import PrivateMariaDB, sqlite_write_lock
from tests.services import PrivateRedis

pytestmark = [pytest.mark.slow, pytest.mark.redis]

PRODUCT = 7001000000003
KIND = "loyalty"
PRODUCT_PATH = f"/admin/v1/shops/{SHOP}/products/{PRODUCT}"
DRAFT_PATH = f"/admin/v1/shops/{SHOP}/widgets/{KIND}"
PUBLISH_PATH = f"{DRAFT_PATH}/publish"
WIDGET_PATH = f"/v1/shops/{SHOP}/widgets/{KIND}.json"
# Writes after the faults are over: all of them must succeed, on the same app.
WRITES_AFTER = 3


@dataclasses.dataclass
class Write:
    op: str  # product, draft or publish
    number: int
    result: Timed

    @property
    def ok(self) -> bool:
        return 200 <= self.result.response.status_code < 300


def write_once(app: Flask, number: int, log: list[Write], widget_statuses: list[Timed]) -> None:
    log.append(Write("product", number, timed(app, "PUT", PRODUCT_PATH, headers=AUTH,
                                              json=product_document(PRODUCT, f"Mug {number}"))))
    log.append(Write("draft", number, timed(app, "PUT", DRAFT_PATH, headers=AUTH,
                                            json={"settings": {"labels": {"title": f"Rewards {number}"}}})))
    log.append(Write("publish", number, timed(app, "POST", PUBLISH_PATH, headers=AUTH)))
    widget_statuses.append(timed(app, "GET", WIDGET_PATH, headers=IDENTITY))


class FaultSchedule:
    """Runs (pause before, action) steps in a thread; re-raises its error in join()."""

    def __init__(self, steps: list[tuple[float, Callable[[], None]]]) -> None:
        self._steps = steps
        self._error: BaseException | None = None
        self._thread = threading.Thread(target=self._run, name="fault-schedule", daemon=True)

    def _run(self) -> None:
        try:
            for delay, action in self._steps:
                time.sleep(delay)
                action()
        except BaseException as error:  # reported by join(), in the test's thread
            self._error = error

    def start(self) -> None:
        self._thread.start()

    @property
    def running(self) -> bool:
        return self._thread.is_alive()

    def join(self) -> None:
        self._thread.join(60)
        if self._error is not None:
            raise self._error


def mariadb_schedule(server: PrivateMariaDB, cache: PrivateRedis) -> list[tuple[float, Callable[[], None]]]:
    return [
        # Both down at once, then the database back first.
        (0.4, server.kill), (0.2, cache.pause), (0.4, server.start), (0.3, cache.resume),
        (0.5, server.pause), (1.5, server.resume),
        (0.5, server.drop_connections), (0.3, server.drop_connections),
        (0.5, server.stop), (0.3, server.start),
        (0.5, server.kill), (0.2, server.start),
    ]


def sqlite_schedule(path: str, cache: PrivateRedis) -> list[tuple[float, Callable[[], None]]]:
    """Another process taking the write lock, for less and for more than the busy timeout.

    (An exclusive-mode lock, which also keeps readers out, cannot be taken while the app keeps
    opening connections: it needs a moment with none open.)
    """
    held: list[contextlib.AbstractContextManager] = []

    def take() -> None:
        lock = sqlite_write_lock(path)
        lock.__enter__()
        held.append(lock)

    def release() -> None:
        held.pop().__exit__(None, None, None)

    return [
        # Shorter than the busy timeout: writers wait, then go through.
        (0.4, take), (0.5, release),
        # Longer: some writers give up (503); Redis goes away meanwhile and comes back empty.
        (0.4, take), (0.3, cache.stop), (1.7, release),
        (0.3, take), (0.3, release), (0.1, cache.restart),
        (0.4, take), (1.6, release),
    ]


def admin_bound_s(database: DatabaseUnderTest) -> float:
    # An endpoint makes up to three store calls; one of them may lose its connection to a frozen
    # server (a read timeout) and succeed on the retry before a later one meets the fault too.
    return 2 * database.attempts * DB_TIMEOUT_S + SLACK_S


@pytest.fixture(params=["sqlite", "mysql"])
def faulty_database(
    request: pytest.FixtureRequest, tmp_path: Path
) -> Iterator[tuple[DatabaseUnderTest, PrivateMariaDB | None]]:
    """The database, and the MariaDB server behind it (None for SQLite)."""
    if request.param == "sqlite":
        database: DatabaseUnderTest = SQLiteUnderTest(tmp_path)
        yield database, None
    else:
        server = request.getfixturevalue("mariadb")
        database = MariaDBUnderTest(server)
        yield database, server
    database.close()


def test_acknowledged_admin_writes_survive_database_faults(
    faulty_database: tuple[DatabaseUnderTest, PrivateMariaDB | None], private_redis: PrivateRedis
) -> None:
    database, server = faulty_database
    deployment = Deployment(database, private_redis)
    try:
        app = deployment.app()
        run_writes_under_faults(app, database, server, private_redis)
    finally:
        deployment.close()


def run_writes_under_faults(app: Flask, database: DatabaseUnderTest, server: PrivateMariaDB | None,
                            cache: PrivateRedis) -> None:
    (product_before,), = database.query("SELECT version FROM products WHERE shop = ? AND product_id = ?",
                                        SHOP, PRODUCT)
    (published_before, draft_before), = database.query(
        "SELECT published_version, draft FROM widgets WHERE shop = ? AND kind = ?", SHOP, KIND)
    if server is not None:
        steps = mariadb_schedule(server, cache)
    else:
        steps = sqlite_schedule(str(database.path), cache)
    schedule = FaultSchedule(steps)
    log: list[Write] = []
    widget_results: list[Timed] = []
    number = 0
    schedule.start()
    while schedule.running:
        number += 1
        write_once(app, number, log, widget_results)
    schedule.join()
    faults_over = len(log)
    for _ in range(WRITES_AFTER):
        number += 1
        write_once(app, number, log, widget_results)

    # -- every answer: a 2xx or the contract's 503, in time -----------------------------------
    bound = admin_bound_s(database)
    for write in log:
        status = write.result.response.status_code
        assert status in (200, 201, 503), write.result
        if status == 503:
            assert_unavailable(write.result)
        assert write.result.seconds <= bound, f"{write.result} took longer than {bound:.2f}s"
    for result in widget_results:
        assert result.response.status_code in (200, 503), result
    assert all(write.ok for write in log[faults_over:]), log[faults_over:]
    failed = [write for write in log if not write.ok]
    # The schedule really got in the way of writes (else this test proves nothing).
    assert failed, "no write failed: the faults never reached the database"
    assert any(write.ok for write in log[:faults_over])

    # -- products: every acknowledged title, versions gap-free ----------------------------------
    products = [write for write in log if write.op == "product"]
    acknowledged = [(write.number, write.result.response.get_json()["version"]) for write in products
                    if write.ok]
    for (earlier, earlier_version), (later, later_version) in zip(acknowledged, acknowledged[1:],
                                                                  strict=False):
        # A gap between two acknowledged versions is a write in between that answered 503 but applied.
        unacknowledged = sum(1 for w in products if earlier < w.number < later and not w.ok)
        assert 1 <= later_version - earlier_version <= 1 + unacknowledged, (earlier, later, acknowledged)
    (version, title, handle, document_text), = database.query(
        "SELECT version, title, handle, document FROM products WHERE shop = ? AND product_id = ?",
        SHOP, PRODUCT)
    document = json.loads(document_text)
    # One transaction per write: the columns copied from the document agree with it.
    assert (title, handle) == (document["title"], document["handle"])
    last_number = int(title.removeprefix("Mug "))
    assert last_number == number  # the last write succeeded, and nothing older overwrote it
    ok_products = sum(1 for w in products if w.ok)
    assert ok_products <= version - product_before <= len(products)
    assert acknowledged[-1][1] == version
    readback = timed(app, "GET", PRODUCT_PATH, headers=AUTH).response
    assert readback.status_code == 200 and readback.get_json()["product"]["title"] == f"Mug {number}"

    # -- widget versions: gap-free, each acknowledged publish there with the draft it followed ----
    versions = database.query(
        "SELECT version, settings FROM widget_versions WHERE shop = ? AND kind = ? ORDER BY version",
        SHOP, KIND)
    numbers = [int(row[0]) for row in versions]
    assert numbers == list(range(1, len(numbers) + 1))
    (published,) = database.query("SELECT published_version FROM widgets WHERE shop = ? AND kind = ?",
                                  SHOP, KIND)
    assert published[0] == numbers[-1]
    titles = {int(row[0]): json.loads(row[1])["labels"]["title"] for row in versions}
    drafts = {write.number: write for write in log if write.op == "draft"}
    publishes = [write for write in log if write.op == "publish"]
    published_numbers = []
    for write in publishes:
        if not write.ok:
            continue
        version_number = write.result.response.get_json()["version"]
        published_numbers.append(version_number)
        assert version_number in titles
        if drafts[write.number].ok:
            # Its draft was acknowledged just before: that is what it published.
            assert titles[version_number] == f"Rewards {write.number}", (version_number, titles)
    assert published_numbers == sorted(set(published_numbers))
    assert published_numbers[-1] == numbers[-1]
    applied = numbers[-1] - published_before
    assert len(published_numbers) <= applied <= len(publishes)
    # Every version holds a draft that was there (a publish after a failed draft PUT may publish
    # the one before), whole.
    sent = {f"Rewards {write.number}" for write in drafts.values()}
    sent.add(json.loads(draft_before)["labels"]["title"])
    assert {titles[v] for v in numbers if v > published_before} <= sent

    # The public widget shows the last publish (the same app: no restart needed).
    widget = timed(app, "GET", WIDGET_PATH, headers=IDENTITY).response
    assert widget.status_code == 200, widget.data
    assert json.loads(widget.data)["labels"]["title"] == f"Rewards {number}"
