"""gunicorn's worker answers hits (in-process or Redis) before building the WSGI environ, as WSGI would.

Real gunicorn with the project's gunicorn.conf.py (and a hook that notes, per request, whether it
went through WSGI): the same bytes with and without the shortcut, keep-alive, max_requests and
the access-log opt-out all behave as gthread's own request handling does.
"""

from __future__ import annotations

import http.client
import socket
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.conftest import ADMIN_TOKEN, SECRET, SHOPIFY_SECRET
from tests.services import REDIS_URL, GunicornServer, delete_redis_keys, reachable, unavailable, unique_name

pytestmark = pytest.mark.slow

SHOP = "demo-coffee.myshopify.com"
WIDGET = f"/v1/shops/{SHOP}/widgets/subscription.js?product=7001000000001"
OBSERVED_CONF = str(Path(__file__).with_name("observed_gunicorn.conf.py"))
VOLATILE = {"date", "x-request-id", "server-timing"}  # server-timing: the first (a miss) only


def start(tmp_path: Path, name: str, **env: str) -> tuple[GunicornServer, Path]:
    notes = tmp_path / f"{name}.notes"
    server = GunicornServer({
        "STOREFRONT_ENV": "production", "STOREFRONT_DATABASE_URL": f"sqlite:///{tmp_path / name}.db",
        "STOREFRONT_ADMIN_TOKENS": ADMIN_TOKEN, "STOREFRONT_SECRET_KEY": SECRET,
        "STOREFRONT_SHOPIFY_API_SECRET": SHOPIFY_SECRET,
        "STOREFRONT_PUBLIC_BASE_URL": "https://widgets.example.test",
        "OBSERVED_REQUESTS": str(notes), **env,
    }, workers=1, threads=4, extra_args=("-c", OBSERVED_CONF))
    return server, notes


def widget_notes(notes: Path, count: int) -> list[str]:
    """How the widget's requests were answered, once ``count`` of them are noted (the hook runs
    after the answer is sent)."""
    deadline = time.monotonic() + 10
    while True:
        noted = [line.split(" ", 1)[0] for line in notes.read_text().splitlines() if line.endswith(WIDGET)]
        if len(noted) >= count or time.monotonic() > deadline:
            return noted
        time.sleep(0.02)


def widget_notes_after_three_gets(server: GunicornServer, notes: Path) -> list[str]:
    """The widget three times on one keep-alive connection (a miss, then what would be two hits)."""
    connection = http.client.HTTPConnection("127.0.0.1", server.port, timeout=10)
    for _ in range(3):
        connection.request("GET", WIDGET)
        assert connection.getresponse().read()
    connection.close()
    return widget_notes(notes, 3)


REQUESTS = [
    ("GET", {"Accept-Encoding": "gzip"}),
    ("GET", {"Accept-Encoding": "gzip"}),
    ("GET", {"Accept-Encoding": "br"}),
    ("GET", {}),
    ("HEAD", {"Accept-Encoding": "gzip"}),
    ("GET", {"If-None-Match": "ETAG", "X-Request-ID": "kept-id-1"}),
    ("GET", {"If-None-Match": '"not-it"'}),
]


Answer = tuple[int, list[tuple[str, str]], bytes]


def answers(server: GunicornServer) -> tuple[list[Answer], set[tuple[str, int]]]:
    """REQUESTS on one keep-alive connection: each answer, and the local addresses used."""
    connection = http.client.HTTPConnection("127.0.0.1", server.port, timeout=10)
    got, addresses = [], set()
    etag = None
    for method, headers in REQUESTS:
        headers = {k: (etag if v == "ETAG" else v) for k, v in headers.items()}
        connection.request(method, WIDGET, headers=headers)
        addresses.add(connection.sock.getsockname())
        response = connection.getresponse()
        body = response.read()
        etag = etag or response.getheader("ETag")
        got.append((response.status, [(k.lower(), v) for k, v in response.getheaders()], body))
    connection.close()
    return got, addresses


@pytest.fixture(scope="module", params=["in-process", "redis"])
def both(request: pytest.FixtureRequest,
         tmp_path_factory: pytest.TempPathFactory) -> Iterator[dict[str, tuple[GunicornServer, Path]]]:
    """The shortcut's server and one answering through WSGI only; their hits from the in-process
    tier, or (``redis``: no in-process tier) every hit a Redis GET."""
    tmp_path = tmp_path_factory.mktemp("hot-answers")
    tiers: dict[str, str] = {}
    if request.param == "redis":
        if not reachable(REDIS_URL):
            unavailable(f"Redis is not reachable at {REDIS_URL}")
        tiers = {"STOREFRONT_REDIS_URL": REDIS_URL, "STOREFRONT_LOCAL_CACHE_BYTES": "0",
                 "STOREFRONT_REDIS_TIMEOUT_MS": "1000"}
    prefix = unique_name("sfparsed")
    servers = {"shortcut": start(tmp_path, "shortcut", **tiers, STOREFRONT_REDIS_KEY_PREFIX=f"{prefix}a:"),
               "wsgi": start(tmp_path, "wsgi", **tiers, STOREFRONT_REDIS_KEY_PREFIX=f"{prefix}b:",
                             GUNICORN_HOT_ANSWERS_BEFORE_WSGI="0")}
    yield servers
    for server, _ in servers.values():
        server.stop()
    if tiers:
        delete_redis_keys(prefix)


def test_hits_answered_before_wsgi_are_byte_for_byte_the_wsgi_answers(both) -> None:  # type: ignore[no-untyped-def]
    shortcut, shortcut_notes = both["shortcut"]
    wsgi, wsgi_notes = both["wsgi"]
    got, addresses = answers(shortcut)
    expected, _ = answers(wsgi)
    assert len(addresses) == 1, "every answer kept the connection open"
    # The first request is a miss (through WSGI, which notes the URL); the rest are hits.
    assert widget_notes(shortcut_notes, len(REQUESTS)) == ["wsgi"] + ["parsed"] * (len(REQUESTS) - 1)
    assert widget_notes(wsgi_notes, len(REQUESTS)) == ["wsgi"] * len(REQUESTS)
    assert [status for status, _, _ in got] == [200, 200, 200, 200, 200, 304, 200]
    for (status, headers, body), (want_status, want_headers, want_body) in zip(got, expected, strict=True):
        assert status == want_status and body == want_body
        assert [h for h in headers if h[0] not in VOLATILE] == \
            [h for h in want_headers if h[0] not in VOLATILE]
        assert [h[0] for h in headers] == [h[0] for h in want_headers]
    assert dict(got[5][1])["x-request-id"] == "kept-id-1"
    assert dict(got[4][1])["content-length"] == dict(got[0][1])["content-length"] and got[4][2] == b""


def test_max_requests_counts_hits_answered_before_wsgi(tmp_path: Path) -> None:
    server, notes = start(tmp_path, "max", GUNICORN_MAX_REQUESTS="6", GUNICORN_MAX_REQUESTS_JITTER="0")
    try:
        connection = http.client.HTTPConnection("127.0.0.1", server.port, timeout=10)
        closed_after = None
        for sent in range(1, 9):
            connection.request("GET", WIDGET)
            response = connection.getresponse()
            assert response.status == 200 and response.read()
            if response.getheader("Connection") == "close":
                closed_after = sent
                break
        connection.close()
        assert closed_after is not None, "max_requests never closed the connection"
        noted = widget_notes(notes, closed_after)
        # The sixth request the worker answered (start-up health checks count too) was a hit
        # answered before WSGI, and it closed the connection and retired the worker.
        assert noted == ["wsgi"] + ["parsed"] * (closed_after - 1) and closed_after >= 2
        assert len(notes.read_text().splitlines()) == 6
        assert "Autorestarting worker after current request." in server.stop()
    finally:
        server.stop()


def test_gunicorns_own_access_log_sees_every_request_through_wsgi(tmp_path: Path) -> None:
    server, notes = start(tmp_path, "accesslog", GUNICORN_ACCESSLOG="-")
    try:
        assert widget_notes_after_three_gets(server, notes) == ["wsgi"] * 3
        output = server.stop()
        assert output.count(f'"GET {WIDGET} HTTP/1.1" 200') == 3
    finally:
        server.stop()


def test_gunicorns_statsd_metrics_count_every_request_through_wsgi(tmp_path: Path) -> None:
    # A real UDP socket standing in for the statsd daemon: gunicorn sends it one packet per metric.
    statsd = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    statsd.bind(("127.0.0.1", 0))
    statsd.settimeout(0.2)
    server, notes = start(tmp_path, "statsd",
                          GUNICORN_CMD_ARGS=f"--statsd-host=127.0.0.1:{statsd.getsockname()[1]}")
    try:
        assert widget_notes_after_three_gets(server, notes) == ["wsgi"] * 3
        counted = 0
        deadline = time.monotonic() + 5
        while counted < 3 and time.monotonic() < deadline:
            try:
                packet = statsd.recv(4096)
            except TimeoutError:
                continue
            counted += packet.count(b"gunicorn.requests:1|c")
        # Start-up health checks count too: at least the widget's three.
        assert counted >= 3
    finally:
        server.stop()
        statsd.close()


def raw_answer(server: GunicornServer, request: bytes) -> bytes:
    """Send ``request`` (which asks the server to close), read the answer to the end; without
    the lines that differ between any two answers (Date, X-Request-ID)."""
    with socket.create_connection(("127.0.0.1", server.port), timeout=10) as sock:
        sock.sendall(request)
        chunks = []
        while chunk := sock.recv(65536):
            chunks.append(chunk)
    head, _, body = b"".join(chunks).partition(b"\r\n\r\n")
    skipped = (b"date:", b"x-request-id:")
    lines = [line for line in head.split(b"\r\n") if not line.lower().startswith(skipped)]
    return b"\r\n".join(lines) + b"\r\n\r\n" + body


def test_http_10_close_and_repeated_headers_answer_alike(both) -> None:  # type: ignore[no-untyped-def]
    shortcut, shortcut_notes = both["shortcut"]
    wsgi, _ = both["wsgi"]
    for server in (shortcut, wsgi):  # noted, and held in-process, by each
        assert raw_answer(server, f"GET {WIDGET} HTTP/1.0\r\n\r\n".encode()).startswith(b"HTTP/1.0 200")
    etag = http_etag(shortcut)
    assert etag == http_etag(wsgi)
    requests = [
        f"GET {WIDGET} HTTP/1.0\r\nAccept-Encoding: gzip\r\n\r\n",
        f"HEAD {WIDGET} HTTP/1.0\r\nAccept-Encoding: br\r\n\r\n",
        f"GET {WIDGET} HTTP/1.1\r\nHost: x\r\nConnection: close\r\nAccept-Encoding: identity;q=0\r\n"
        "Accept-Encoding: br\r\n\r\n",
        f"GET {WIDGET} HTTP/1.1\r\nHost: x\r\nConnection: close\r\nIf-None-Match: \"other\"\r\n"
        f"If-None-Match: {etag}\r\n\r\n",
    ]
    before = len(widget_notes(shortcut_notes, 0))
    for request in requests:
        got, expected = raw_answer(shortcut, request.encode()), raw_answer(wsgi, request.encode())
        assert got == expected, request
    assert raw_answer(shortcut, requests[3].encode()).split(b" ")[1] == b"304"
    assert b"Content-Encoding: br" in raw_answer(shortcut, requests[2].encode())
    assert widget_notes(shortcut_notes, before + 6)[before:] == ["parsed"] * 6


def http_etag(server: GunicornServer) -> str:
    connection = http.client.HTTPConnection("127.0.0.1", server.port, timeout=10)
    connection.request("GET", WIDGET)
    response = connection.getresponse()
    response.read()
    connection.close()
    return response.getheader("ETag")


def test_a_fault_of_the_shortcut_is_logged_and_the_request_answered_through_wsgi(tmp_path: Path) -> None:
    server, notes = start(tmp_path, "broken", BREAK_ANSWERS_BEFORE_WSGI="1")
    try:
        assert widget_notes_after_three_gets(server, notes) == ["wsgi"] * 3
        output = server.stop()
        assert "Error answering before WSGI; answering through WSGI" in output
        assert "RuntimeError: broken shortcut" in output
    finally:
        server.stop()
