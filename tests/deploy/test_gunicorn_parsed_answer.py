"""gunicorn.conf.py's ParsedAnswer writes an answer made before WSGI as gunicorn's Response would."""

from __future__ import annotations

import re
import runpy
import socket
from types import SimpleNamespace
from typing import Any

import pytest
from gunicorn.config import Config
from gunicorn.http import wsgi as gunicorn_wsgi

from tests.deploy.deploy_files import GUNICORN_CONF

CONF = runpy.run_path(str(GUNICORN_CONF))
ParsedAnswer = CONF["ParsedAnswer"]
BODY = b"console.log('widget');"
HEADERS = [("Cache-Control", "public, max-age=60"), ("Vary", "Accept-Encoding"), ("ETag", '"abc"'),
           ("X-Cache", "HIT"), ("Content-Type", "text/javascript; charset=utf-8"),
           ("Content-Length", str(len(BODY))), ("X-Request-ID", "r-1")]


def request(method: str = "GET", version: tuple[int, int] = (1, 1), close: bool = False) -> Any:
    return SimpleNamespace(method=method, version=version, should_close=lambda: close)


def by_gunicorn(req: Any, status: str, headers: list[tuple[str, str]], body: list[bytes],
                close: bool) -> bytes:
    """What gunicorn's own Response writes for the same answer."""
    ours, theirs = socket.socketpair()
    with ours, theirs:
        response = gunicorn_wsgi.Response(req, ours, Config())
        if close:
            response.force_close()
        response.start_response(status, headers)
        for item in body:
            response.write(item)
        response.close()
        ours.shutdown(socket.SHUT_WR)
        data = b""
        while chunk := theirs.recv(65536):
            data += chunk
    return data


def without_date(data: bytes) -> bytes:
    return re.sub(rb"\r\nDate: [^\r]*\r\n", b"\r\nDate: -\r\n", data)


@pytest.mark.parametrize(("method", "status", "version", "close"), [
    ("GET", "200 OK", (1, 1), False),
    ("GET", "200 OK", (1, 1), True),
    ("GET", "200 OK", (1, 0), True),
    ("HEAD", "200 OK", (1, 1), False),
    ("GET", "304 NOT MODIFIED", (1, 1), False),
])
def test_the_bytes_are_gunicorns(method: str, status: str, version: tuple[int, int], close: bool) -> None:
    req = request(method, version, close=version == (1, 0))
    headers = HEADERS if status.startswith("200") else [h for h in HEADERS if h[0] != "Content-Length"]
    body = [] if method == "HEAD" or status.startswith("304") else [BODY]
    answer = ParsedAnswer(req, (status, headers, body))
    expected = by_gunicorn(req, status, headers, body, close)
    assert without_date(answer.bytes(close or version == (1, 0))) == without_date(expected)


@pytest.mark.parametrize("headers", [
    [("X-Request-ID", "a\r\nSet-Cookie: x=1"), ("Content-Length", "0")],
    [("X-Request-ID", "a\nb"), ("Content-Length", "0")],
    [("X-Request-ID", "a\rb"), ("Content-Length", "0")],
    [("Connection", "close"), ("Content-Length", "0")],
    [("Bad Name", "x"), ("Content-Length", "0")],
    [("Content-Type", "text/plain")],  # a body without Content-Length
])
def test_what_gunicorn_would_refuse_or_reframe_raises(headers: list[tuple[str, str]]) -> None:
    with pytest.raises(ValueError):
        ParsedAnswer(request(), ("200 OK", headers, [b"x"]))
