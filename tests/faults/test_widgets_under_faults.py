"""The database down or hung, with every Redis fault, on SQLite and MariaDB, at the HTTP surface.

Widgets answer 200 with the right bytes, STALE with the last good bytes, or 503 with Retry-After
and no-store: never 500, and never later than the timeouts allow. /readyz says which backend is
down. Once the faults are gone the same apps serve fresh bytes and take writes again.
"""

from __future__ import annotations

import time
from concurrent.futures import ThreadPoolExecutor

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
    Timed,
    assert_fresh,
    assert_stale,
    assert_unavailable,
    assert_within,
    product_document,
    request_bound_s,
    timed,
)
from tests.faults.toolkit import REDIS_FAULTS, redis_fault, redis_keys

pytestmark = [pytest.mark.slow, pytest.mark.redis]

WRITTEN_PRODUCT = 7001000000003
# The breaker skips Redis for BREAKER_RESET_S (1 s) after it opened.
RECOVERY_WAIT_S = 3.0

# The database down meets every Redis fault; a hung database costs a timeout or two a case, so it
# meets the Redis faults that change what can be served (a full or read-only Redis still serves
# reads, like a healthy one). A healthy database with a faulty Redis: tests/integration/test_faults.py.
CASES = [
    *[("down", redis) for redis in ("healthy", *REDIS_FAULTS)],
    *[("hung", redis) for redis in ("healthy", "stopped", "paused")],
]


def run_together(calls: dict[str, tuple]) -> dict[str, Timed]:
    """The requests at once, as a worker's threads would receive them: a hung database costs the
    suite one timeout, not one per request."""
    with ThreadPoolExecutor(max_workers=len(calls)) as pool:
        futures = {label: pool.submit(timed, *args, label=label, **kwargs) for label, (args, kwargs) in
                   calls.items()}
        return {label: future.result() for label, future in futures.items()}


@pytest.mark.parametrize(("db_fault", "redis_fault_kind"), CASES,
                         ids=[f"db_{db}-redis_{redis}" for db, redis in CASES])
def test_widgets_readiness_and_writes_under_faults(
    deployment: Deployment, reference: ReferenceBodies, db_fault: str, redis_fault_kind: str
) -> None:
    database = deployment.database
    worker = deployment.app()
    # Another worker with no in-process tier: whatever it serves stale comes from Redis.
    bare_worker = deployment.app(LOCAL_CACHE_BYTES=0)
    right, right_uncached = reference(CACHED), reference(UNCACHED)
    (version_before,), = database.query(
        "SELECT version FROM products WHERE shop = ? AND product_id = ?", SHOP, WRITTEN_PRODUCT)
    warm = timed(worker, "GET", CACHED, headers=IDENTITY)
    assert_fresh(warm, right)
    assert warm.response.headers["X-Cache"] == "MISS"

    redis_readable = redis_fault_kind in ("healthy", "full", "read_only")
    cache_status = "ok" if redis_readable else "down"
    product = product_document(WRITTEN_PRODUCT, "Written during the fault")
    calls = {
        "cached": ((worker, "GET", CACHED), {"headers": IDENTITY}),
        "cached, other worker": ((bare_worker, "GET", CACHED), {"headers": IDENTITY}),
        "never rendered": ((worker, "GET", UNCACHED), {"headers": IDENTITY}),
        "readyz": ((worker, "GET", "/readyz"), {}),
        "admin write": ((worker, "PUT", f"/admin/v1/shops/{SHOP}/products/{WRITTEN_PRODUCT}"),
                        {"json": product, "headers": AUTH}),
    }

    with redis_fault(deployment.redis, redis_fault_kind):
        with database.down() if db_fault == "down" else database.hung():
            results = run_together(calls)
        bound = request_bound_s(database)
        for result in results.values():
            assert_within(result, bound)
            if db_fault == "hung":
                # It waited for the database (the fault was real) and then gave up on time.
                assert result.seconds >= 0.9 * DB_TIMEOUT_S, result
        # The last good copy kept in this worker's process...
        assert_stale(results["cached"], right)
        # ... or in Redis, if Redis can still be read.
        if redis_readable:
            assert_stale(results["cached, other worker"], right)
        else:
            assert_unavailable(results["cached, other worker"])
        assert_unavailable(results["never rendered"])
        readiness = results["readyz"].response
        assert readiness.get_json() == {"database": "down", "cache": cache_status}
        assert readiness.status_code == (200 if redis_readable else 503)
        assert readiness.headers["Cache-Control"] == "no-store"
        assert_unavailable(results["admin write"])
        (version_after,), = database.query(
            "SELECT version FROM products WHERE shop = ? AND product_id = ?", SHOP, WRITTEN_PRODUCT)
        assert version_after == version_before  # the 503 changed nothing

        # The database is back (Redis may still be faulty): the same workers serve fresh and write.
        again = timed(worker, "GET", CACHED, headers=IDENTITY)
        assert_fresh(again, right)
        assert_within(again, REDIS_BUDGET_S + SLACK_S)
        assert_fresh(timed(bare_worker, "GET", UNCACHED, headers=IDENTITY), right_uncached)
        if redis_fault_kind in ("full", "read_only"):
            # Served although Redis refused to keep it (the fault is real).
            stored = redis_keys(deployment.redis, deployment.key_prefix)
            assert not [key for key in stored if b":bundle:" in key], stored
        written = timed(worker, "PUT", f"/admin/v1/shops/{SHOP}/products/{WRITTEN_PRODUCT}",
                        json=product_document(WRITTEN_PRODUCT, "Written after the fault"), headers=AUTH)
        assert written.response.status_code == 200, written
        assert written.response.get_json()["product"]["title"] == "Written after the fault"
        assert timed(worker, "GET", "/readyz").response.get_json()["database"] == "ok"

    # Redis is healthy again: within the breaker's reset time both workers see it.
    deadline = time.monotonic() + RECOVERY_WAIT_S
    while True:
        states = [timed(app, "GET", "/readyz").response.get_json() for app in (worker, bare_worker)]
        if all(state == {"database": "ok", "cache": "ok"} for state in states) or time.monotonic() > deadline:
            break
        time.sleep(0.1)
    assert states == [{"database": "ok", "cache": "ok"}] * 2
