"""Baseline: the bare WSGI callable plus one Redis GET per response, the ceiling of a shared-tier hit.

Any app that answers from Redis makes at least one round trip per response; this one makes exactly
that and nothing else: a pre-packed ``GET`` on a raw socket the thread keeps for itself, the reply
read through a buffered file, then the bare callable's answer (``bench/baselines/bare_wsgi.py``:
the project's captured bytes and headers, 304 for the captured ETag). Its req/s against
Flask-Caching's in the same Zipf rounds is the most any one-GET-per-response app can reach under
these gunicorn settings.

Configured by ``BENCH_CAPTURE`` (as the bare callable), ``BENCH_REDIS_GET_URL`` (``redis://host:port/db``)
and ``BENCH_REDIS_GET_KEY``: a key the runner filled with a copy of the project's Redis entry for the
hot key, so that every GET carries the bytes a project hit carries.
"""

from __future__ import annotations

import os
import socket
import threading
from io import BufferedReader
from urllib.parse import urlsplit

from bench.baselines.bare_wsgi import app as bare_app

_url = urlsplit(os.environ["BENCH_REDIS_GET_URL"])
ADDRESS = (_url.hostname or "127.0.0.1", _url.port or 6379)
DATABASE = int(_url.path.strip("/") or 0)
KEY = os.environ["BENCH_REDIS_GET_KEY"].encode()
# Packed once: per request the only work is the send and the reply.
GET = b"*2\r\n$3\r\nGET\r\n$%d\r\n%s\r\n" % (len(KEY), KEY)

_own = threading.local()


def _connect() -> tuple[socket.socket, BufferedReader]:
    sock = socket.create_connection(ADDRESS, timeout=5)
    # A small command must leave at once, as the project's connections send theirs (redis-py sets it).
    sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
    reader = sock.makefile("rb")
    if DATABASE:
        db = str(DATABASE).encode()
        sock.sendall(b"*2\r\n$6\r\nSELECT\r\n$%d\r\n%s\r\n" % (len(db), db))
        if reader.readline() != b"+OK\r\n":
            raise RuntimeError(f"Redis at {ADDRESS} refused SELECT {DATABASE}")
    return sock, reader


def _get(sock: socket.socket, reader: BufferedReader) -> bytes:
    """One GET of ``KEY``: the value followed by its CRLF, which nothing here needs to strip."""
    sock.sendall(GET)
    header = reader.readline()
    # "$-1" (the key is gone) or an error reply would make this a cheaper request than a hit.
    if header[:1] != b"$" or header[1:2] == b"-":
        raise RuntimeError(f"GET {KEY.decode()} answered {header!r}")
    return reader.read(int(header[1:]) + 2)


def _check_key() -> int:
    # A missing key would measure a round trip without its bytes: refuse to start instead.
    sock, reader = _connect()
    try:
        return len(_get(sock, reader)) - 2
    finally:
        reader.close()
        sock.close()


VALUE_BYTES = _check_key()


def app(environ, start_response):  # type: ignore[no-untyped-def]
    connection = getattr(_own, "connection", None)
    if connection is None:
        # One connection per thread, kept for its life: what the project's hot path does.
        connection = _own.connection = _connect()
    _get(*connection)
    return bare_app(environ, start_response)
