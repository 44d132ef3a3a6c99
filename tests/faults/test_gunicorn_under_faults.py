"""The app as production runs it (gunicorn, 2 workers x 4 threads) while MariaDB and Redis fail and return."""

from __future__ import annotations

import threading
import time
import urllib.error
import urllib.request
from collections.abc import Callable
from dataclasses import dataclass

import pytest

from tests.conftest import ADMIN_TOKEN, BASE_URL, SECRET, SHOPIFY_SECRET
from tests.faults.deployment import (
    CACHED,
    DB_TIMEOUT_S,
    REDIS_TIMEOUT_MS,
    UNCACHED,
    MariaDBUnderTest,
    ReferenceBodies,
    request_bound_s,
)
from tests.faults.toolkit import PrivateMariaDB
from tests.services import GunicornServer, PrivateRedis, unique_name

pytestmark = [pytest.mark.slow, pytest.mark.mysql, pytest.mark.redis]

# What the HTTP round trip and gunicorn's queueing add on top of the app's own time.
HTTP_SLACK_S = 0.5


@dataclass
class Answer:
    path: str
    status: int
    headers: dict[str, str]
    body: bytes
    seconds: float


def fetch(base: str, path: str) -> Answer:
    started = time.monotonic()
    request = urllib.request.Request(base + path, headers={"Accept-Encoding": "identity"})
    try:
        with urllib.request.urlopen(request, timeout=30) as response:
            status, headers, body = response.status, dict(response.headers), response.read()
    except urllib.error.HTTPError as error:
        status, headers, body = error.code, dict(error.headers), error.read()
        error.close()
    return Answer(path, status, headers, body, time.monotonic() - started)


def test_gunicorn_workers_ride_out_mariadb_and_redis_faults(
    mariadb: PrivateMariaDB, private_redis: PrivateRedis, reference: ReferenceBodies
) -> None:
    database = MariaDBUnderTest(mariadb)
    server = GunicornServer({
        "STOREFRONT_DATABASE_URL": database.url,
        "STOREFRONT_REDIS_URL": private_redis.url,
        "STOREFRONT_REDIS_KEY_PREFIX": unique_name("sffault") + ":",
        "STOREFRONT_ADMIN_TOKENS": ADMIN_TOKEN,
        "STOREFRONT_SECRET_KEY": SECRET,
        "STOREFRONT_SHOPIFY_API_SECRET": SHOPIFY_SECRET,
        "STOREFRONT_PUBLIC_BASE_URL": BASE_URL,
        "STOREFRONT_DB_TIMEOUT_S": str(DB_TIMEOUT_S),
        "STOREFRONT_REDIS_TIMEOUT_MS": str(REDIS_TIMEOUT_MS),
        "STOREFRONT_REDIS_CONNECT_TIMEOUT_MS": str(REDIS_TIMEOUT_MS),
        "STOREFRONT_BREAKER_RESET_S": "1",
        "STOREFRONT_LOCAL_CACHE_TTL_S": "0",  # every request asks the database
    }, workers=2, threads=4)
    log = ""
    try:
        right = {CACHED: reference(CACHED), UNCACHED: reference(UNCACHED)}
        # Both workers have imported the app (they do it after the fork) and CACHED has a last good
        # copy in Redis (and in whichever worker rendered it); UNCACHED has none anywhere.
        for _ in range(6):
            assert fetch(server.url, CACHED).status == 200

        steps: list[tuple[float, Callable[[], None]]] = [
            (0.5, mariadb.kill), (0.4, private_redis.pause), (1.2, mariadb.start),
            (0.4, private_redis.resume), (0.4, mariadb.pause), (1.5, mariadb.resume),
            (0.4, mariadb.stop), (0.3, mariadb.start),
        ]
        answers: list[Answer] = []
        done = threading.Event()
        faulted = threading.Event()
        started = threading.Event()
        started.set()

        def client(path: str, gate: threading.Event) -> None:
            gate.wait(30)
            while not done.is_set():
                answers.append(fetch(server.url, path))

        # UNCACHED only from the first fault on, so nothing renders it before.
        paths = [(CACHED, started), (CACHED, started), ("/readyz", started), (UNCACHED, faulted)]
        clients = [threading.Thread(target=client, args=pair, daemon=True) for pair in paths]
        for thread in clients:
            thread.start()
        try:
            for delay, action in steps:
                time.sleep(delay)
                action()
                faulted.set()
            time.sleep(0.3)
        finally:
            done.set()
            faulted.set()
            for thread in clients:
                thread.join(30)
            private_redis.resume()

        bound = request_bound_s(database) + HTTP_SLACK_S
        outcomes: set[tuple[str, int, str]] = set()
        for answer in answers:
            assert answer.seconds <= bound, (answer.path, answer.status, answer.seconds)
            if answer.path == "/readyz":
                assert answer.status in (200, 503), answer
                continue
            if answer.status == 200:
                assert answer.body == right[answer.path], answer
                outcomes.add((answer.path, 200, answer.headers["X-Cache"]))
            else:
                assert answer.status == 503, answer
                assert answer.headers["Cache-Control"] == "no-store", answer
                assert int(answer.headers["Retry-After"]) > 0, answer
                outcomes.add((answer.path, 503, ""))
        # The faults were felt: stale copies and 503s both happened.
        assert (CACHED, 200, "STALE") in outcomes
        assert (UNCACHED, 503, "") in outcomes

        # Without restarting anything: fresh answers from both workers, and ready again.
        deadline = time.monotonic() + 5
        while True:
            tail = [fetch(server.url, path) for path in (CACHED, UNCACHED, "/readyz") * 4]
            healthy = all(a.status == 200 and a.headers.get("X-Cache") != "STALE" for a in tail)
            if healthy or time.monotonic() > deadline:
                break
            time.sleep(0.2)
        assert healthy, [(a.path, a.status, a.headers.get("X-Cache")) for a in tail]
    finally:
        log = server.stop()
        database.close()
    assert "unhandled error" not in log and "Traceback" not in log, log[-3000:]
    # No worker died or was replaced on the way (gunicorn boots each one once).
    assert log.count("Booting worker") == 2, log[-3000:]
