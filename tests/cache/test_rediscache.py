"""RedisCache beyond the contract, on the shared real Redis: prefixes, PX TTLs, locks, pub/sub, errors."""

from __future__ import annotations

import socket
import struct
import sys
import threading
import time
from collections.abc import Callable

import pytest
import redis

from storefront.cache import RedisCache
from storefront.cache.breaker import CLOSED
from tests.services import unique_name

pytestmark = pytest.mark.redis

MakeCache = Callable[..., RedisCache]


def wait_until(condition: Callable[[], bool], timeout: float = 3.0) -> bool:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if condition():
            return True
        time.sleep(0.01)
    return condition()


def test_values_live_under_the_prefix_with_a_px_ttl(
    make_redis_cache: MakeCache, raw_redis: redis.Redis, key_prefix: str
) -> None:
    cache = make_redis_cache()
    cache.set("k", b"v", 2.5)
    assert raw_redis.get(key_prefix + "k") == b"v"
    assert 2000 < raw_redis.pttl(key_prefix + "k") <= 2500


def test_set_many_writes_each_with_its_ttl(
    make_redis_cache: MakeCache, raw_redis: redis.Redis, key_prefix: str
) -> None:
    cache = make_redis_cache()
    assert cache.set_many([("a", b"1", 10), ("b", b"2", 100), ("skipped", b"3", 0)])
    assert (cache.get("a"), cache.get("b"), cache.get("skipped")) == (b"1", b"2", None)
    assert 9000 < raw_redis.pttl(key_prefix + "a") <= 10_000
    assert 99_000 < raw_redis.pttl(key_prefix + "b") <= 100_000


def test_clear_touches_no_other_prefix(make_redis_cache: MakeCache, raw_redis: redis.Redis) -> None:
    mine = make_redis_cache()
    other_prefix = unique_name("sftest") + ":"
    other = make_redis_cache(key_prefix=other_prefix)
    try:
        for number in range(1200):  # more than one SCAN/UNLINK batch
            mine.set(f"k{number}", b"v", 30)
        other.set("k1", b"theirs", 30)
        assert mine.clear() == 1200
        assert mine.get("k1") is None
        assert other.get("k1") == b"theirs"
    finally:
        raw_redis.delete(other_prefix + "k1")


def test_a_lock_has_one_owner(make_redis_cache: MakeCache) -> None:
    first, second = make_redis_cache(), make_redis_cache()
    mine = first.acquire_lock("render-1", 5000)
    assert mine.acquired and not mine.held_elsewhere
    theirs = second.acquire_lock("render-1", 5000)
    assert not theirs.acquired and theirs.held_elsewhere
    assert second.acquire_lock("render-2", 5000).acquired, "locks are per name"


def test_only_the_owner_releases_a_lock(make_redis_cache: MakeCache) -> None:
    cache = make_redis_cache()
    mine = cache.acquire_lock("render", 5000)
    assert cache.release_lock("render", "not-the-token") is False
    assert cache.acquire_lock("render", 5000).held_elsewhere
    assert cache.release_lock("render", mine.token) is True
    assert cache.acquire_lock("render", 5000).acquired


def test_a_lock_attempt_reads_a_key_in_the_same_round_trip(make_redis_cache: MakeCache) -> None:
    cache = make_redis_cache()
    cache.set("render", b"stored meanwhile", 10)
    mine = cache.acquire_lock("render", 5000, read="render")
    assert mine.acquired and mine.value == b"stored meanwhile"
    theirs = cache.acquire_lock("render", 5000, read="absent")
    assert theirs.held_elsewhere and theirs.value is None
    assert cache.acquire_lock("other", 5000).value is None  # nothing asked, nothing read


def test_set_many_releases_a_lock_after_its_writes_for_its_owner_only(make_redis_cache: MakeCache) -> None:
    cache = make_redis_cache()
    mine = cache.acquire_lock("render", 5000)
    assert cache.set_many([("render", b"1", 10)], unlock=("render", "not-the-token"))
    assert cache.get("render") == b"1" and cache.acquire_lock("render", 5000).held_elsewhere
    assert cache.set_many([("render", b"2", 10), ("pointer", b"render", 10)], unlock=("render", mine.token))
    assert (cache.get("render"), cache.get("pointer")) == (b"2", b"render")
    again = cache.acquire_lock("render", 5000)
    assert again.acquired
    assert cache.set_many([("skipped", b"3", 0)], unlock=("render", again.token))  # a release alone
    assert cache.acquire_lock("render", 5000).acquired and cache.get("skipped") is None


def test_a_lock_expires_after_its_ttl_and_the_old_owner_cannot_release_the_new_one(
    make_redis_cache: MakeCache,
) -> None:
    cache = make_redis_cache()
    old = cache.acquire_lock("render", 100)
    time.sleep(0.2)
    new = cache.acquire_lock("render", 5000)
    assert new.acquired
    assert cache.release_lock("render", old.token) is False
    assert cache.acquire_lock("render", 5000).held_elsewhere


def test_publish_reaches_a_listener_until_it_stops(make_redis_cache: MakeCache) -> None:
    cache = make_redis_cache()
    received: list[bytes] = []
    subscription = cache.listen("invalidate", received.append)
    try:
        assert subscription.subscribed.wait(3)
        assert cache.publish("invalidate", b"shop:a") == 1
        assert cache.publish("invalidate", "shop:b") == 1
        assert wait_until(lambda: len(received) == 2)
        assert received == [b"shop:a", b"shop:b"]
    finally:
        subscription.stop()
    assert not subscription.alive
    assert cache.publish("invalidate", b"shop:c") == 0


def test_channels_are_prefixed(make_redis_cache: MakeCache) -> None:
    received: list[bytes] = []
    subscription = make_redis_cache().listen("invalidate", received.append)
    other = make_redis_cache(key_prefix=unique_name("sftest") + ":")
    try:
        assert subscription.subscribed.wait(3)
        assert other.publish("invalidate", b"not for you") == 0
    finally:
        subscription.stop()
    assert received == []


def test_a_failing_callback_does_not_end_the_subscription(make_redis_cache: MakeCache) -> None:
    cache = make_redis_cache()
    received: list[bytes] = []

    def callback(data: bytes) -> None:
        received.append(data)
        if data == b"boom":
            raise RuntimeError("handler bug")

    subscription = cache.listen("invalidate", callback)
    try:
        assert subscription.subscribed.wait(3)
        cache.publish("invalidate", b"boom")
        cache.publish("invalidate", b"after")
        assert wait_until(lambda: received == [b"boom", b"after"])
        assert subscription.alive
    finally:
        subscription.stop()


def test_the_subscription_pings_a_quiet_server_and_stays_up(make_redis_cache: MakeCache) -> None:
    cache = make_redis_cache()
    subscription = cache.listen("invalidate", lambda data: None, ping_interval_s=0.1)
    try:
        assert subscription.subscribed.wait(3)
        time.sleep(0.8)
        assert subscription.subscriptions == 1, "pongs keep it alive: no resubscription"
        assert cache.stats()["errors"] == {}
    finally:
        subscription.stop()


def test_a_server_error_is_a_miss_counted_and_does_not_trip_the_breaker(
    make_redis_cache: MakeCache, raw_redis: redis.Redis, key_prefix: str
) -> None:
    errors: list[tuple[str, BaseException]] = []
    cache = make_redis_cache(on_error=lambda backend, exc: errors.append((backend, exc)))
    raw_redis.rpush(key_prefix + "a-list", b"x")  # GET on a list: -WRONGTYPE
    for _ in range(5):
        assert cache.get("a-list") is None
    assert cache.breaker.state == CLOSED
    assert len(errors) == 5
    assert {backend for backend, _ in errors} == {"redis"}
    assert all(isinstance(exc, redis.ResponseError) for _, exc in errors)
    assert cache.stats()["errors"] == {"ResponseError": 5}


def test_a_failing_error_hook_is_contained(
    make_redis_cache: MakeCache, raw_redis: redis.Redis, key_prefix: str
) -> None:
    def hook(backend: str, exc: BaseException) -> None:
        raise RuntimeError("metrics down")

    cache = make_redis_cache(on_error=hook)
    raw_redis.rpush(key_prefix + "a-list", b"x")
    assert cache.get("a-list") is None


def test_errors_are_logged_once_per_interval_per_kind(
    make_redis_cache: MakeCache, raw_redis: redis.Redis, key_prefix: str, caplog: pytest.LogCaptureFixture
) -> None:
    cache = make_redis_cache(log_interval_s=60)
    raw_redis.rpush(key_prefix + "a-list", b"x")
    with caplog.at_level("WARNING", logger="storefront.cache.rediscache"):
        for _ in range(10):
            cache.get("a-list")
    assert len([record for record in caplog.records if "ResponseError" in record.getMessage()]) == 1


def test_many_threads_share_one_client(make_redis_cache: MakeCache) -> None:
    cache = make_redis_cache()
    start = threading.Barrier(20)
    wrong: list[int] = []

    def work(number: int) -> None:
        start.wait()
        for round_ in range(50):
            value = f"{number}-{round_}".encode()
            cache.set(f"t{number}", value, 10)
            if cache.get(f"t{number}") != value:
                wrong.append(number)

    threads = [threading.Thread(target=work, args=(number,)) for number in range(20)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert wrong == []


def test_get_keeps_one_connection_per_thread_and_recovers(private_redis) -> None:  # type: ignore[no-untyped-def]
    cache = RedisCache(private_redis.url, key_prefix="own:", timeout_ms=500, connect_timeout_ms=500)
    try:
        assert cache.set("k", b"v", 60)
        answers = set()
        raw = redis.Redis.from_url(private_redis.url)
        for _ in range(5):
            assert cache.get("k") == b"v"
        # GETs from one thread share one connection: the server sees it as one client.
        before = {c["id"] for c in raw.client_list()}
        for _ in range(20):
            assert cache.get("k") == b"v"
        assert {c["id"] for c in raw.client_list()} == before

        def other_thread() -> None:
            answers.add(cache.get("k"))

        thread = threading.Thread(target=other_thread)
        thread.start()
        thread.join()
        assert answers == {b"v"}
        # The server drops every client: the next GET fails like any error (a miss), then reconnects.
        errors_before = sum(cache.stats()["errors"].values())
        raw.client_kill_filter(_type="normal", skipme=True)
        assert cache.get("k") is None
        assert sum(cache.stats()["errors"].values()) == errors_before + 1
        assert cache.get("k") == b"v"
        raw.close()
    finally:
        cache.close()


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="kernel-kept timeouts are used on Linux")
def test_a_threads_own_connection_waits_in_the_kernel_with_the_timeout(make_redis_cache: MakeCache) -> None:
    # Python's own socket timeout polls before every send and receive; the GET of every shared-tier
    # hit instead blocks in the receive, bounded by SO_RCVTIMEO (tests/cache/test_faults.py checks
    # that a paused Redis still costs one timeout, reported as a TimeoutError).
    cache = make_redis_cache()
    cache.set("k", b"v", 10)
    assert cache.get("k") == b"v"
    sock = cache._own.connection._sock
    assert sock.gettimeout() is None
    seconds, microseconds = struct.unpack("ll", sock.getsockopt(socket.SOL_SOCKET, socket.SO_RCVTIMEO, 16))
    assert seconds + microseconds / 1e6 == pytest.approx(cache.timeout_s, abs=0.005)
    seconds, microseconds = struct.unpack("ll", sock.getsockopt(socket.SOL_SOCKET, socket.SO_SNDTIMEO, 16))
    assert seconds + microseconds / 1e6 == pytest.approx(cache.timeout_s, abs=0.005)


@pytest.mark.parametrize("key", ["sf:{shop.myshopify.com:subscription:7001}:js:en:s1.w1.p1:abc",
                                 "sf:café:ünïcode", "k" * 5000, ""])
def test_a_get_is_sent_as_redis_py_would_pack_it(key: str) -> None:
    from storefront.cache.rediscache import packed_get

    assert packed_get(key) == b"".join(redis.Connection().pack_command("GET", key))


@pytest.mark.parametrize("size", [0, 1, 65_530, 200_000, 3_000_000])
def test_get_reads_any_size_exactly_and_leaves_the_connection_clean(
    make_redis_cache: MakeCache, size: int, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A hit's reply is read straight off the socket (``read_get_reply``): whatever its size, the
    bytes come back exactly, and the next command on the thread's connection finds nothing left."""
    from storefront.cache.rediscache import _KernelTimeoutConnection

    replies: list[bytes | None] = []
    real_read = _KernelTimeoutConnection.read_get_reply
    # Counts the replies the socket reader gave (the real Redis sends them), so this test cannot
    # pass on redis-py's own reader alone.
    monkeypatch.setattr(_KernelTimeoutConnection, "read_get_reply",
                        lambda connection: replies.append(real_read(connection)) or replies[-1])
    cache = make_redis_cache()
    # Exactly ``size`` bytes, with RESP's own markers inside the value.
    value = (b"\r\n$-1\r\n" + bytes(range(256)) * (size // 256 + 1))[:size]
    assert cache.set("sized", value, 60)
    for _ in range(3):
        assert cache.get("sized") == value
    assert cache.get("absent") is None
    if sys.platform.startswith("linux"):
        assert replies == [value] * 3 + [None]
    attempt = cache.acquire_lock("sized", 5000, read="sized")  # redis-py's own reader, same connection
    assert attempt.acquired and attempt.value == value
    assert cache.stats()["errors"] == {}


def test_a_reply_read_in_pieces_is_whole_and_a_broken_one_an_error() -> None:
    """The reader on a socket that delivers a reply in two parts, split at every position."""
    from redis._parsers import _RESP2Parser

    from storefront.cache.rediscache import _read_bulk

    parser = _RESP2Parser(socket_read_size=65536)
    reply = b"$12\r\nhello\r\nworld\r\n"
    for cut in range(1, len(reply)):
        ours, theirs = socket.socketpair()
        try:
            def send(peer: socket.socket = theirs, first: bytes = reply[:cut],
                     rest: bytes = reply[cut:]) -> None:
                peer.sendall(first)
                time.sleep(0.005)
                peer.sendall(rest)

            sender = threading.Thread(target=send)
            sender.start()
            assert _read_bulk(ours, parser) == b"hello\r\nworld", cut
            sender.join()
        finally:
            ours.close()
            theirs.close()
    for broken, error in [(b"$11\r\nhello", redis.ConnectionError),  # closed mid-value
                          (b"$2\r\nok\r\n+PONG\r\n", redis.ConnectionError),  # more than one reply
                          (b"+OK\r\n", redis.ConnectionError),  # not a bulk string
                          (b"-WRONGTYPE Operation against a key\r\n", redis.ResponseError)]:
        ours, theirs = socket.socketpair()
        theirs.sendall(broken)
        theirs.close()
        with pytest.raises(error):
            _read_bulk(ours, parser)
        ours.close()
    ours, theirs = socket.socketpair()
    theirs.sendall(b"$-1\r\n")
    assert _read_bulk(ours, parser) is None
    ours.close()
    theirs.close()
