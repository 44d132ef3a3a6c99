"""The hot path answers exactly what Flask would, only for URLs Flask already answered."""

from __future__ import annotations

import gzip

from tests.conftest import ADMIN_TOKEN
from tests.web.parsed_requests import answered_alike

SHOP = "demo-coffee.myshopify.com"
JS = f"/v1/shops/{SHOP}/widgets/subscription.js?product=7001000000001"
AUTH = {"Authorization": f"Bearer {ADMIN_TOKEN}"}
VOLATILE = {"X-Request-ID", "X-Cache", "Server-Timing", "Date"}


def test_hot_answers_equal_the_flask_answer(seeded_app) -> None:  # type: ignore[no-untyped-def]
    client = seeded_app.test_client()
    services = seeded_app.extensions["storefront"]
    hot_path = seeded_app.wsgi_app

    def forget() -> None:
        services.hot_targets.clear()
        services.cache.local.clear()
        services.lookup.clear()

    for encoding in ("gzip", "br", "identity"):
        forget()
        seeded_app.wsgi_app = hot_path.app  # Flask alone: the view renders
        try:
            by_flask = client.get(JS, headers={"Accept-Encoding": encoding})
        finally:
            seeded_app.wsgi_app = hot_path
        assert by_flask.headers["X-Cache"] == "MISS" and services.hot_targets.get(JS) is not None
        forget()
        hot_miss = client.get(JS, headers={"Accept-Encoding": encoding})  # rendered before Flask
        assert hot_miss.headers["X-Cache"] == "MISS"
        assert hot_miss.headers["Server-Timing"].startswith("render;dur=")
        hot = client.get(JS, headers={"Accept-Encoding": encoding})
        assert hot.headers["X-Cache"] == "HIT"
        strip = {k: v for k, v in by_flask.headers.items() if k not in VOLATILE}
        for answer in (hot_miss, hot):
            assert answer.data == by_flask.data
            assert {k: v for k, v in answer.headers.items() if k not in VOLATILE} == strip
        assert set(hot_miss.headers.keys()) == set(by_flask.headers.keys())
    assert gzip.decompress(client.get(JS, headers={"Accept-Encoding": "gzip"}).data)


def test_an_error_met_rendering_on_the_hot_path_is_answered_by_flask_once(seeded_app, monkeypatch) -> None:  # type: ignore[no-untyped-def]
    from storefront.store import StoreUnavailable

    client = seeded_app.test_client()
    services = seeded_app.extensions["storefront"]
    assert client.get(JS).headers["X-Cache"] == "MISS"
    events: list[str] = []
    seeded_app.before_request(lambda: events.append("flask") and None)

    def store_down(shop: str, kind: str, product_id: int | None, versions: str | None = None) -> None:
        events.append("read")
        raise StoreUnavailable("sqlite database unavailable: disk I/O error")

    # The URL and its lookup are known; the render's own read fails and there is no last good copy.
    services.cache.local.clear()
    monkeypatch.setattr(services.lookup, "read", store_down)
    down = client.get(JS, headers={"X-Request-ID": "down-1"})
    assert down.status_code == 503 and down.json["error"] == "unavailable"
    assert down.headers["Retry-After"] and down.headers["X-Request-ID"] == "down-1"
    # Read once, before Flask: the view raised what the hot path met instead of reading again.
    assert events == ["read", "flask"]
    monkeypatch.undo()
    assert client.get(JS).status_code == 200


def test_hot_304_head_and_request_id(seeded_app) -> None:  # type: ignore[no-untyped-def]
    client = seeded_app.test_client()
    etag = client.get(JS).headers["ETag"]
    hot_304 = client.get(JS, headers={"If-None-Match": f'W/{etag}', "X-Request-ID": "hot-1"})
    assert hot_304.status_code == 304 and hot_304.data == b""
    assert hot_304.headers["X-Request-ID"] == "hot-1" and hot_304.headers["ETag"] == etag
    head = client.head(JS, headers={"Accept-Encoding": "br"})
    assert head.status_code == 200 and head.data == b"" and int(head.headers["Content-Length"]) > 0


def test_only_the_exact_raw_url_is_hot(seeded_app) -> None:  # type: ignore[no-untyped-def]
    client = seeded_app.test_client()
    client.get(JS)
    # Same resource after decoding, different raw URL: Flask decides (and refuses).
    assert client.get(JS.replace("demo-coffee", "demo%2Dcoffee")).status_code == 400
    assert client.get(JS + "&utm=1").status_code == 400
    assert client.get(JS, data=b"x", content_type="text/plain").status_code == 400
    assert client.post(JS).status_code == 405


def test_a_change_clears_hot_urls(seeded_app) -> None:  # type: ignore[no-untyped-def]
    client = seeded_app.test_client()
    client.get(JS)
    assert client.get(JS).headers["X-Cache"] == "HIT"
    client.put(f"/admin/v1/shops/{SHOP}/widgets/subscription",
               json={"settings": {"labels": {"onetime": "Changed at once"}}}, headers=AUTH)
    seeded_app.extensions["storefront"].warmer.max_renders = 0
    client.post(f"/admin/v1/shops/{SHOP}/widgets/subscription/publish", headers=AUTH)
    changed = client.get(JS)
    assert b"Changed at once" in changed.data and changed.headers["X-Cache"] == "MISS"


def test_hot_path_metrics_reach_prometheus_as_observe_would(seeded_app) -> None:  # type: ignore[no-untyped-def]
    from prometheus_client import REGISTRY

    from storefront import metrics

    def sample(name: str, **labels: str) -> float:
        return REGISTRY.get_sample_value(name, labels) or 0.0

    bucket = "storefront_request_duration_seconds_bucket"
    client = seeded_app.test_client()
    client.get(JS)
    metrics.HOT_PATH.flush()
    before = {le: sample(bucket, endpoint="widgets", le=le) for le in ("0.0005", "0.001", "+Inf")}
    hits_before = sample("storefront_cache_requests_total", tier="local", result="hit")
    sum_before = sample("storefront_request_duration_seconds_sum", endpoint="widgets")
    for _ in range(3):
        assert client.get(JS).headers["X-Cache"] == "HIT"
    metrics.HOT_PATH.answered(True, 0.0007)  # lands in le=0.001, not le=0.0005
    metrics.HOT_PATH.answered(False, 7.0)  # past the last bound: +Inf only, and no local hit
    metrics.HOT_PATH.flush()
    assert sample("storefront_cache_requests_total", tier="local", result="hit") == hits_before + 4
    assert sample(bucket, endpoint="widgets", le="+Inf") == before["+Inf"] + 5
    assert sample(bucket, endpoint="widgets", le="0.001") - sample(bucket, endpoint="widgets", le="0.0005") \
        >= before["0.001"] - before["0.0005"] + 1
    assert sample("storefront_request_duration_seconds_sum", endpoint="widgets") >= sum_before + 7.0007
    # /metrics flushes what the answering process still holds.
    client.get(JS)
    text = client.get("/metrics").get_data(as_text=True)
    line = next(line for line in text.splitlines()
                if line.startswith('storefront_cache_requests_total{result="hit",tier="local"}'))
    assert float(line.split()[-1]) == hits_before + 5


def test_hot_urls_are_bounded_by_counted_bytes_that_match_memory() -> None:
    import gc
    import tracemalloc

    from storefront.freshness import LocalFreshness
    from storefront.web.hot_path import HotTargets

    class Tiers:
        local = object()
        shared = None

    def remember(targets: HotTargets, number: int) -> None:
        product = 8000000000001 + number
        tags = (f"shop:{SHOP}", f"widget:{SHOP}:subscription", f"product:{SHOP}:{product}")
        headers = {"Cache-Control": "public, max-age=60", "Surrogate-Key": " ".join(tags),
                   "Cache-Tag": ",".join(tags), "Vary": "Accept-Encoding"}
        targets.remember(f"/v1/shops/{SHOP}/widgets/subscription.js?product={product}",
                         f"{{{SHOP}:subscription:{product}}}:js:en:s1.w1.p1:0123456789ab", headers,
                         f"/v1/shops/{SHOP}/widgets/subscription.js",
                         {"shop": SHOP, "kind": "subscription", "format": "js"}, 0)

    unbounded = HotTargets(Tiers(), LocalFreshness(5, 300), max_bytes=1 << 40)  # type: ignore[arg-type]
    remember(unbounded, 0)
    gc.collect()
    tracemalloc.start()
    try:
        before = tracemalloc.get_traced_memory()[0]
        counted_before = unbounded.nbytes
        for number in range(1, 2001):
            remember(unbounded, number)
        gc.collect()
        real = tracemalloc.get_traced_memory()[0] - before
    finally:
        tracemalloc.stop()
    counted = unbounded.nbytes - counted_before
    assert 0.7 * counted <= real <= 1.1 * counted, (real, counted)

    bounded = HotTargets(Tiers(), LocalFreshness(5, 300), max_bytes=200_000)  # type: ignore[arg-type]
    for number in range(3000):
        remember(bounded, number)
        assert bounded.nbytes <= 200_000
        if number > 500:
            # Full, the oldest quarter goes: never a clear that makes every URL a first sight again.
            assert bounded.nbytes >= 0.7 * 200_000

    def noted(number: int) -> bool:
        url = f"/v1/shops/{SHOP}/widgets/subscription.js?product={8000000000001 + number}"
        return bounded.get(url) is not None

    assert all(noted(number) for number in range(2900, 3000))
    assert not noted(0)


def test_a_hot_304_hands_the_server_no_body_item(seeded_app) -> None:  # type: ignore[no-untyped-def]
    from werkzeug.test import EnvironBuilder

    client = seeded_app.test_client()
    etag = client.get(JS).headers["ETag"]
    environ = EnvironBuilder(path=JS.split("?")[0], query_string=JS.split("?")[1],
                             headers={"If-None-Match": etag}).get_environ()
    environ["RAW_URI"] = JS
    statuses: list[str] = []
    body = seeded_app.wsgi_app(environ, lambda status, headers, exc_info=None: statuses.append(status))
    # An empty item would cost gunicorn a write of its own (a system call for nothing).
    assert statuses == ["304 NOT MODIFIED"] and list(body) == []


def test_hot_path_metrics_count_every_answer_of_concurrent_threads() -> None:
    import threading

    from prometheus_client import REGISTRY

    from storefront import metrics

    def hits() -> float:
        return REGISTRY.get_sample_value("storefront_cache_requests_total",
                                         {"tier": "local", "result": "hit"}) or 0.0

    metrics.HOT_PATH.flush()
    before = hits()
    # Appends to the queue take no lock; a flush running meanwhile (the loop's, a scrape's)
    # counts what was queued before it and leaves the rest for the next.
    threads = [threading.Thread(target=lambda: [metrics.HOT_PATH.answered(True, 0.0001) for _ in range(5000)])
               for _ in range(4)]
    flusher = threading.Thread(target=lambda: [metrics.HOT_PATH.flush() for _ in range(50)])
    for thread in [*threads, flusher]:
        thread.start()
    for thread in [*threads, flusher]:
        thread.join()
    metrics.HOT_PATH.flush()
    assert hits() == before + 20_000


def test_answers_to_a_parsed_request_equal_the_wsgi_answers(seeded_app) -> None:  # type: ignore[no-untyped-def]
    """What gunicorn's worker sends without building an environ is what the WSGI path sends."""
    etag = seeded_app.test_client().get(JS).headers["ETag"]
    cases = [
        ("GET", {"Accept-Encoding": "gzip"}),
        ("GET", {"Accept-Encoding": "br;q=1, gzip;q=0.5"}),
        ("GET", {}),
        ("HEAD", {"Accept-Encoding": "br"}),
        ("GET", {"If-None-Match": f'"other", W/{etag}', "X-Request-ID": "parsed-1"}),
        ("GET", {"If-None-Match": '"other"', "X-Request-ID": "not a valid id!"}),
    ]
    for method, headers in cases:
        (_status, answer_headers, _body), by_wsgi = answered_alike(seeded_app, JS, method, headers)
        request_id = dict(answer_headers)["X-Request-ID"]
        if headers.get("X-Request-ID") == "parsed-1":
            assert request_id == by_wsgi.headers["X-Request-ID"] == "parsed-1"
        else:
            assert request_id != by_wsgi.headers["X-Request-ID"] and len(request_id) == 32


def test_a_parsed_request_goes_to_wsgi_unless_it_is_a_hit(seeded_app) -> None:  # type: ignore[no-untyped-def]
    client = seeded_app.test_client()
    services = seeded_app.extensions["storefront"]
    hot_path = seeded_app.wsgi_app
    other = f"/v1/shops/{SHOP}/widgets/subscription.js?product=7001000000002"
    assert client.get(JS).status_code == 200
    assert hot_path.answer_parsed("GET", JS, []) is not None
    assert hot_path.answer_parsed("GET", other, []) is None  # noted now, but in no tier: WSGI renders it
    assert services.hot_targets.get(other) is not None
    assert hot_path.answer_parsed("POST", JS, []) is None
    assert hot_path.answer_parsed("GET", JS, [("CONTENT-LENGTH", "0")]) is None
    assert hot_path.answer_parsed("GET", JS, [("TRANSFER-ENCODING", "chunked")]) is None
    assert hot_path.answer_parsed("GET", JS, [("EXPECT", "100-continue")]) is None  # gunicorn sends the 100
    # A name gunicorn keeps only when told to (header_map): the environ would read it as If-None-Match.
    assert hot_path.answer_parsed("GET", JS, [("IF_NONE_MATCH", '"x"')]) is None
    # Noted but in no tier: WSGI renders it, taking over the parsed request's look (counted once):
    # the tier's misses grow as much as for the WSGI request alone.
    local = services.cache.local
    grown = []
    for ask_parsed_first in (False, True):
        local.clear()
        misses = local.stats()["misses"]
        if ask_parsed_first:
            assert hot_path.answer_parsed("GET", JS, []) is None
        assert client.get(JS).headers["X-Cache"] == "MISS"
        grown.append(local.stats()["misses"] - misses)
    assert grown[0] == grown[1] > 0


def test_a_parsed_request_for_a_remembered_not_found_counts_as_wsgi_alone(seeded_app) -> None:  # type: ignore[no-untyped-def]
    """What the tier holds under a noted URL's key may be another kind of value (a not-found
    marker): the WSGI path answers it with what the parsed request's look found, and the tier
    counts the pair as it counts the WSGI request alone."""
    import time

    from storefront.cache.entry import NotFoundEntry

    client = seeded_app.test_client()
    services = seeded_app.extensions["storefront"]
    assert client.get(JS).status_code == 200
    target = services.hot_targets.get(JS)
    local = services.cache.local
    grown = []
    for ask_parsed_first in (False, True):
        local.set(target.key, NotFoundEntry(message="gone", expires=time.time() + 60), 60)
        counts = local.stats()
        if ask_parsed_first:
            assert seeded_app.wsgi_app.answer_parsed("GET", JS, []) is None
        assert client.get(JS).status_code == 404
        after = local.stats()
        grown.append((after["hits"] - counts["hits"], after["misses"] - counts["misses"]))
    assert grown[0] == grown[1]


def test_a_parsed_request_for_a_url_not_noted_yet_notes_it_and_answers_from_a_tier(seeded_app) -> None:  # type: ignore[no-untyped-def]
    """A URL this worker has not answered yet, whose render a tier holds (another worker made it),
    is noted and answered from the parsed request, as the WSGI path would answer it."""
    services = seeded_app.extensions["storefront"]
    assert seeded_app.test_client().get(JS).status_code == 200  # rendered: the tier holds it
    services.hot_targets.clear()
    answer = seeded_app.wsgi_app.answer_parsed("GET", JS, [])
    assert answer is not None and dict(answer[1])["X-Cache"] == "HIT"
    assert services.hot_targets.get(JS) is not None
    services.hot_targets.clear()
    answered_alike(seeded_app, JS, "GET", {"Accept-Encoding": "gzip"})


def test_a_url_the_parsed_request_cannot_note_is_looked_up_once(seeded_app) -> None:  # type: ignore[no-untyped-def]
    """An unknown product, a malformed query, an encoded or absolute target: answer_parsed leaves
    them to WSGI, which does not look them up a second time (encoded and absolute targets were not
    looked up at all: only the environ says what path they route to)."""
    client = seeded_app.test_client()
    hot_path = seeded_app.wsgi_app
    resolved: list[str] = []
    resolve = hot_path.resolve

    def counting(path: str, query: str, raw_target: str):  # type: ignore[no-untyped-def]
        resolved.append(raw_target)
        return resolve(path, query, raw_target)

    hot_path.resolve = counting
    unknown = f"/v1/shops/{SHOP}/widgets/subscription.js?product=7001999999999"
    malformed = f"/v1/shops/{SHOP}/widgets/subscription.js?product=x"
    for url, status in ((unknown, 404), (malformed, 400)):
        resolved.clear()
        assert hot_path.answer_parsed("GET", url, []) is None
        assert client.get(url).status_code == status
        assert resolved == [url]
    encoded = f"/v1/shops/{SHOP}/widgets/subscription%2Ejs?product=7001000000001"
    absolute = f"http://widgets.example.test/v1/shops/{SHOP}/widgets/subscription.js?product=7001000000001"
    for url in (encoded, absolute):
        resolved.clear()
        assert hot_path.answer_parsed("GET", url, []) is None
        assert resolved == []
    # A request that answer_parsed was not asked about resolves in WSGI as before.
    resolved.clear()
    assert client.get(JS).status_code == 200
    assert resolved == [JS]
