"""PurgeQueue against a real local server speaking Fastly: off the request path, coalesced, retried."""

from __future__ import annotations

import logging
import subprocess
import sys
import textwrap
import threading
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

from storefront.cdn import NoPurger, PurgeQueue, create_purger
from tests.cdn.conftest import FASTLY_SERVICE, TOKEN, fastly_reply
from tests.cdn.recording_server import RecordingServer, Reply

ROOT = Path(__file__).resolve().parents[2]


class Events:
    """The queue's on_event hook, recorded."""

    def __init__(self) -> None:
        self.seen: list[tuple[str, dict[str, Any]]] = []

    def __call__(self, name: str, **labels: Any) -> None:
        self.seen.append((name, labels))

    def results(self) -> list[str]:
        return [labels["result"] for name, labels in self.seen if name == "purge"]


@pytest.fixture
def api(server: RecordingServer) -> RecordingServer:
    server.default = fastly_reply
    return server


MakeQueue = Callable[..., PurgeQueue]


@pytest.fixture
def events() -> Events:
    return Events()


@pytest.fixture
def make_queue(api: RecordingServer, events: Events) -> Iterator[MakeQueue]:
    queues: list[PurgeQueue] = []

    def make(timeout_s: float = 2.0, **options: Any) -> PurgeQueue:
        purger = create_purger(f"fastly+http://:{TOKEN}@{api.address}/{FASTLY_SERVICE}?timeout={timeout_s}")
        queue = PurgeQueue(purger, **{"backoff_s": 0.02, "on_event": events, **options})
        queues.append(queue)
        return queue

    yield make
    api.release()
    for queue in queues:
        queue.close(1.0)


def keys(call: Any) -> list[str]:
    return call.headers["surrogate-key"].split(" ")


def test_no_thread_starts_until_the_first_submit(make_queue: MakeQueue, events: Events,
                                                 api: RecordingServer) -> None:
    before = set(threading.enumerate())
    queue = make_queue()
    assert not set(threading.enumerate()) - before and queue._thread is None
    queue.submit(["shop:a.myshopify.com"])
    assert queue._thread is not None and queue._thread.daemon
    assert queue._thread.name == "storefront-purge-fastly"
    assert queue.flush(5)
    assert [keys(call) for call in api.calls] == [["shop:a.myshopify.com"]]
    assert events.seen == [("purge", {"result": "ok", "cdn": "fastly", "tags": 1})]


def test_submit_returns_at_once_while_the_cdn_hangs(make_queue: MakeQueue,
                                                     api: RecordingServer) -> None:
    api.hang()
    queue = make_queue(timeout_s=5.0)
    slowest = 0.0
    for n in range(200):
        started = time.perf_counter()
        queue.submit([f"product:a.myshopify.com:{n}"])
        slowest = max(slowest, time.perf_counter() - started)
    api.wait_for_calls(1)
    started = time.perf_counter()
    queue.submit(["shop:a.myshopify.com"])  # the worker is stuck in a request right now
    assert time.perf_counter() - started < 0.05
    assert slowest < 0.05
    assert not queue.flush(0.2)  # nothing got through yet
    api.release()
    assert queue.flush(5)
    sent = [tag for call in api.calls for tag in keys(call)]
    expected = [f"product:a.myshopify.com:{n}" for n in range(200)] + ["shop:a.myshopify.com"]
    assert sorted(sent) == sorted(expected)


def test_tags_pending_together_go_out_in_one_call(make_queue: MakeQueue, events: Events,
                                                  api: RecordingServer) -> None:
    api.hang()
    queue = make_queue()
    queue.submit(["shop:a"])
    api.wait_for_calls(1)  # in flight: what comes now waits, and coalesces
    queue.submit(["widget:a:bundle", "product:a:1"])
    queue.submit(["product:a:1", "product:a:2", "widget:a:bundle"])
    queue.submit(["shop:a"])
    api.release()
    assert queue.flush(5)
    assert [keys(call) for call in api.calls] == [
        ["shop:a"], ["widget:a:bundle", "product:a:1", "product:a:2", "shop:a"]]
    assert events.results() == ["ok", "ok"]


def test_server_errors_are_retried_with_growing_backoff(make_queue: MakeQueue, events: Events,
                                                         api: RecordingServer,
                                                         caplog: pytest.LogCaptureFixture) -> None:
    api.script(Reply(503), Reply(502))
    queue = make_queue(backoff_s=0.2, max_attempts=5)
    queue.submit(["shop:a", "shop:b"])
    assert queue.flush(5)
    calls = api.calls
    assert [keys(call) for call in calls] == [["shop:a", "shop:b"]] * 3
    first_wait, second_wait = calls[1].at - calls[0].at, calls[2].at - calls[1].at
    # Each wait is drawn from the upper half of 0.2 s, then of 0.4 s (plus scheduling slack on a busy box).
    assert 0.1 <= first_wait < 0.2 + 0.5
    assert 0.2 <= second_wait < 0.4 + 0.5
    assert events.results() == ["retry", "retry", "ok"]
    warnings = [record for record in caplog.records if record.name == "storefront.cdn.queue"]
    assert [record.levelname for record in warnings] == ["WARNING", "WARNING"]
    assert "attempt 1 of 5" in warnings[0].getMessage() and "HTTP 503" in warnings[0].getMessage()


def test_a_refusal_is_not_retried(make_queue: MakeQueue, events: Events, api: RecordingServer,
                                  caplog: pytest.LogCaptureFixture) -> None:
    api.script(Reply(403, b'{"msg": "Provided credentials are missing or invalid"}'))
    queue = make_queue()
    queue.submit(["shop:a"])
    assert queue.flush(5)
    time.sleep(0.2)  # more than any backoff this queue would wait
    assert len(api.calls) == 1
    assert events.results() == ["failed"]
    assert "not retryable" in caplog.text and "HTTP 403" in caplog.text


def test_a_purge_that_keeps_failing_is_given_up_and_counted(make_queue: MakeQueue, events: Events,
                                                           api: RecordingServer,
                                                           caplog: pytest.LogCaptureFixture) -> None:
    api.default = lambda call: Reply(500, b"oops")
    queue = make_queue(max_attempts=3)
    queue.submit(["shop:a"])
    assert queue.flush(5)
    time.sleep(0.2)
    assert len(api.calls) == 3
    assert events.results() == ["retry", "retry", "failed"]
    errors = [record for record in caplog.records if record.levelno == logging.ERROR]
    assert len(errors) == 1 and "after 3 attempts" in errors[0].getMessage()


def test_rate_limiting_waits_as_long_as_the_cdn_asks(make_queue: MakeQueue, events: Events,
                                                     api: RecordingServer) -> None:
    api.script(Reply(429, b"", (("Retry-After", "0.5"),)))
    queue = make_queue(backoff_s=0.01)
    queue.submit(["shop:a"])
    assert queue.flush(5)
    first, second = api.calls
    assert second.at - first.at >= 0.5
    assert events.results() == ["retry", "ok"]


def test_a_full_queue_drops_the_oldest_and_says_so(make_queue: MakeQueue, events: Events,
                                                   api: RecordingServer,
                                                   caplog: pytest.LogCaptureFixture) -> None:
    api.hang()
    queue = make_queue(max_pending=3)
    queue.submit(["t0"])
    api.wait_for_calls(1)
    queue.submit(["t1", "t2", "t3"])
    queue.submit(["t4", "t5"])
    assert events.seen == [
        ("purge", {"result": "dropped", "cdn": "fastly", "tags": 2})]
    assert "dropped the 2 oldest" in caplog.text
    api.release()
    assert queue.flush(5)
    assert [keys(call) for call in api.calls] == [["t0"], ["t3", "t4", "t5"]]


def test_large_backlogs_go_out_in_batches_of_max_batch(make_queue: MakeQueue,
                                                       api: RecordingServer) -> None:
    api.hang()
    queue = make_queue(max_batch=300)
    queue.submit(["first"])
    api.wait_for_calls(1)
    queue.submit([f"product:a:{n}" for n in range(700)])
    api.release()
    assert queue.flush(5)
    # 300 a batch from the queue; the Fastly purger splits each into calls of at most 256 keys.
    assert [len(keys(call)) for call in api.calls] == [1, 256, 44, 256, 44, 100]


def test_the_token_never_reaches_the_logs(make_queue: MakeQueue, api: RecordingServer,
                                          caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.DEBUG)
    # A misbehaving API that echoes the credential back in its error bodies.
    api.script(Reply(503, f"Fastly-Key: {TOKEN} rejected".encode()),
               Reply(401, f"bad key {TOKEN}".encode()))
    queue = make_queue(max_attempts=3)
    queue.submit(["shop:a"])
    assert queue.flush(5)
    assert len(api.calls) == 2
    assert "rejected" in caplog.text and "***" in caplog.text
    assert TOKEN not in caplog.text
    assert TOKEN not in repr(queue)


def test_submit_never_raises(make_queue: MakeQueue, api: RecordingServer,
                             caplog: pytest.LogCaptureFixture) -> None:
    def broken_hook(name: str, **labels: Any) -> None:
        raise RuntimeError("metrics are down")

    queue = make_queue(on_event=broken_hook)
    queue.submit(None)  # type: ignore[arg-type]
    queue.submit(["good:1", "two words", "", 42])  # type: ignore[list-item]
    queue.submit("good:2")
    assert queue.flush(5)
    assert sorted(tag for call in api.calls for tag in keys(call)) == ["good:1", "good:2"]
    assert "could not queue a CDN purge" in caplog.text
    assert "refused 3 malformed surrogate keys" in caplog.text
    assert "the purge event hook failed" in caplog.text


def test_malformed_tags_are_counted(make_queue: MakeQueue, events: Events) -> None:
    queue = make_queue()
    queue.submit(["a b", "c,d"])
    assert events.seen == [("purge", {"result": "invalid", "cdn": "fastly", "tags": 2})]
    assert queue._thread is None


def test_close_flushes_then_stops_the_worker(make_queue: MakeQueue, api: RecordingServer) -> None:
    queue = make_queue()
    queue.submit(["shop:a"])
    assert queue.close(5)
    assert queue._thread is not None and not queue._thread.is_alive()
    assert len(api.calls) == 1
    queue.submit(["shop:b"])  # a later submit starts a worker again
    assert queue.flush(5) and len(api.calls) == 2


def test_close_gives_up_a_purge_waiting_to_retry(make_queue: MakeQueue, events: Events,
                                                 api: RecordingServer) -> None:
    api.default = lambda call: Reply(503)
    queue = make_queue(backoff_s=10.0, max_backoff_s=10.0)
    queue.submit(["shop:a"])
    api.wait_for_calls(1)
    started = time.monotonic()
    assert not queue.close(0.3)
    assert time.monotonic() - started < 2.0
    assert queue._thread is not None and not queue._thread.is_alive()
    assert events.results() == ["retry", "failed"]


def test_no_purger_needs_no_thread() -> None:
    events = Events()
    queue = PurgeQueue(NoPurger(), on_event=events)
    queue.submit(["shop:a"])
    assert queue._thread is None and queue.flush(0.1) and events.seen == []


def test_a_forked_child_purges_through_its_own_worker(api: RecordingServer) -> None:
    # A separate interpreter, so the fork happens in a process whose only other thread is the worker.
    script = textwrap.dedent("""
        import os, sys
        from storefront.cdn import PurgeQueue, create_purger
        queue = PurgeQueue(create_purger(sys.argv[1]), backoff_s=0.01)
        queue.submit(["parent:before"])
        assert queue.flush(5)
        pid = os.fork()
        if pid == 0:
            queue.submit(["child:after"])
            os._exit(0 if queue.flush(5) else 3)
        queue.submit(["parent:after"])
        ok = queue.flush(5)
        _, status = os.waitpid(pid, 0)
        sys.exit(os.waitstatus_to_exitcode(status) or (0 if ok else 4))
    """)
    url = f"fastly+http://:{TOKEN}@{api.address}/{FASTLY_SERVICE}"
    done = subprocess.run([sys.executable, "-c", script, url], cwd=ROOT, capture_output=True, text=True,
                          timeout=30)
    assert done.returncode == 0, done.stderr
    assert sorted(tag for call in api.calls for tag in keys(call)) == [
        "child:after", "parent:after", "parent:before"]


def test_each_tag_is_purged_again_after_repeat_after_s(make_queue: MakeQueue, events: Events,
                                                       api: RecordingServer) -> None:
    queue = make_queue(repeat_after_s=0.3)
    queue.submit(["shop:a", "shop:b"])
    api.wait_for_calls(1)
    assert not queue.flush(0.1)  # the repeat is still owed
    assert queue.flush(5)
    time.sleep(0.4)  # a repeat is not repeated again
    first, second = api.calls
    assert keys(first) == keys(second) == ["shop:a", "shop:b"]
    assert second.at - first.at >= 0.3
    assert events.results() == ["ok", "ok"]


def test_a_tag_changed_again_gets_its_repeat_after_the_later_purge(make_queue: MakeQueue,
                                                                   api: RecordingServer) -> None:
    queue = make_queue(repeat_after_s=0.4)
    queue.submit(["shop:a"])
    api.wait_for_calls(1)
    time.sleep(0.2)
    queue.submit(["shop:a", "shop:b"])
    api.wait_for_calls(2)
    assert queue.flush(5)
    time.sleep(0.5)
    calls = api.calls
    assert [keys(call) for call in calls] == [["shop:a"], ["shop:a", "shop:b"], ["shop:a", "shop:b"]]
    assert calls[2].at - calls[1].at >= 0.4


def test_a_failed_purge_owes_no_repeat(make_queue: MakeQueue, events: Events, api: RecordingServer) -> None:
    api.script(Reply(403))
    queue = make_queue(repeat_after_s=0.2)
    queue.submit(["shop:a"])
    assert queue.flush(5)
    time.sleep(0.3)
    assert len(api.calls) == 1 and events.results() == ["failed"]
