"""CircuitBreaker state machine, on a clock the test moves."""

from __future__ import annotations

import threading

import pytest

from storefront.cache.breaker import CLOSED, HALF_OPEN, OPEN, CircuitBreaker


class FakeClock:
    def __init__(self) -> None:
        self.now = 100.0

    def __call__(self) -> float:
        return self.now


@pytest.fixture
def clock() -> FakeClock:
    return FakeClock()


@pytest.fixture
def changes() -> list[str]:
    return []


@pytest.fixture
def breaker(clock: FakeClock, changes: list[str]) -> CircuitBreaker:
    return CircuitBreaker(3, 5.0, clock=clock, on_change=changes.append)


def fail(breaker: CircuitBreaker, times: int) -> None:
    for _ in range(times):
        assert breaker.allow()
        breaker.record_failure()


def test_opens_after_n_consecutive_failures(breaker: CircuitBreaker, changes: list[str]) -> None:
    fail(breaker, 2)
    assert breaker.state == CLOSED
    fail(breaker, 1)
    assert breaker.state == OPEN
    assert not breaker.allow()
    assert changes == [OPEN]


def test_a_success_resets_the_count(breaker: CircuitBreaker) -> None:
    fail(breaker, 2)
    breaker.record_success()
    fail(breaker, 2)
    assert breaker.state == CLOSED
    assert breaker.consecutive_failures == 2


def test_after_the_reset_time_one_trial_goes_through(breaker: CircuitBreaker, clock: FakeClock) -> None:
    fail(breaker, 3)
    clock.now += 4.9
    assert not breaker.allow()
    clock.now += 0.2
    assert breaker.allow()
    assert breaker.state == HALF_OPEN
    assert not breaker.allow(), "only one trial at a time"


def test_a_successful_trial_closes_it(breaker: CircuitBreaker, clock: FakeClock, changes: list[str]) -> None:
    fail(breaker, 3)
    clock.now += 5
    assert breaker.allow()
    breaker.record_success()
    assert breaker.state == CLOSED
    assert breaker.allow() and breaker.allow()
    assert changes == [OPEN, HALF_OPEN, CLOSED]


def test_a_failed_trial_opens_it_for_another_period(breaker: CircuitBreaker, clock: FakeClock) -> None:
    fail(breaker, 3)
    clock.now += 5
    assert breaker.allow()
    breaker.record_failure()
    assert breaker.state == OPEN
    clock.now += 4.9
    assert not breaker.allow()
    clock.now += 0.1
    assert breaker.allow()


def test_a_trial_that_never_reports_back_does_not_wedge_it(breaker: CircuitBreaker, clock: FakeClock) -> None:
    fail(breaker, 3)
    clock.now += 5
    assert breaker.allow()
    clock.now += 5
    assert breaker.allow()


def test_late_results_of_calls_admitted_before_it_opened_change_nothing(breaker: CircuitBreaker) -> None:
    fail(breaker, 3)
    breaker.record_success()
    breaker.record_failure()
    assert breaker.state == OPEN


def test_a_failing_on_change_hook_is_ignored(clock: FakeClock) -> None:
    def explode(state: str) -> None:
        raise RuntimeError("metrics down")

    breaker = CircuitBreaker(1, 1.0, clock=clock, on_change=explode)
    breaker.record_failure()
    assert breaker.state == OPEN


def test_exactly_one_trial_among_many_threads(breaker: CircuitBreaker, clock: FakeClock) -> None:
    fail(breaker, 3)
    clock.now += 5
    start = threading.Barrier(16)
    allowed: list[bool] = []

    def ask() -> None:
        start.wait()
        allowed.append(breaker.allow())

    threads = [threading.Thread(target=ask) for _ in range(16)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert allowed.count(True) == 1


def test_rejects_a_zero_threshold() -> None:
    with pytest.raises(ValueError):
        CircuitBreaker(0, 1.0)
