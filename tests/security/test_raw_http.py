"""Raw HTTP against gunicorn as production runs it: malformed requests, header tricks, bodies, logs.

What a test client cannot send: broken request lines, 64 KB headers, invalid bytes, folded or
duplicated headers, absolute-form targets, chunked bodies. Every one gets a 4xx (never a 5xx),
none changes what a widget URL returns, and the server keeps serving. Nothing secret a request
carried ends up in the server's output.
"""

from __future__ import annotations

import json
import os
import socket
import time
import uuid
from collections.abc import Iterator

import pytest

from tests.conftest import ADMIN_TOKEN, SECRET, SHOPIFY_SECRET
from tests.security.conftest import memory_database_url
from tests.services import GunicornServer
from tests.shopify.shopify_side import proxy_query, sign_webhook

pytestmark = pytest.mark.slow

SHOP = "demo-coffee.myshopify.com"
COFFEE = 7001000000001
WIDGET = f"/v1/shops/{SHOP}/widgets/subscription.js?product={COFFEE}"


class Server:
    """The running gunicorn plus raw-socket requests to it."""

    def __init__(self, gunicorn: GunicornServer) -> None:
        self.gunicorn = gunicorn

    def send(self, raw: bytes) -> tuple[int, dict[str, str], bytes]:
        """Send bytes as they are; (status, headers with lower-case names, body) of the answer."""
        with socket.create_connection(("127.0.0.1", self.gunicorn.port), timeout=10) as sock:
            sock.sendall(raw)
            received = b""
            while chunk := sock.recv(65536):
                received += chunk
        head, _, body = received.partition(b"\r\n\r\n")
        lines = head.decode("latin-1").split("\r\n")
        status = int(lines[0].split(" ")[1])
        headers = {}
        for line in lines[1:]:
            name, _, value = line.partition(":")
            headers[name.strip().lower()] = value.strip()
        if "content-length" in headers:
            body = body[: int(headers["content-length"])]
        return status, headers, body

    def request(self, target: str, *headers: str, method: str = "GET", body: bytes = b"") -> tuple[
            int, dict[str, str], bytes]:
        lines = [f"{method} {target} HTTP/1.1", "Host: widgets.example.test", *headers, "Connection: close"]
        return self.send(("\r\n".join(lines) + "\r\n\r\n").encode("latin-1") + body)

    def output(self) -> str:
        """Everything gunicorn and the app wrote so far (read without moving the shared file offset)."""
        fd = self.gunicorn.log.fileno()
        return os.pread(fd, os.fstat(fd).st_size, 0).decode("utf-8", "replace")

    def flushed_output(self) -> str:
        """The output once every request so far is logged: the app writes its lines in batches
        (JsonLineHandler), and a marker request's line comes after all earlier ones (one worker)."""
        marker = uuid.uuid4().hex
        self.request("/healthz", f"X-Request-ID: {marker}")
        deadline = time.monotonic() + 10
        output = self.output()
        while marker not in output and time.monotonic() < deadline:
            time.sleep(0.05)
            output = self.output()
        assert marker in output, "the marker request was never logged"
        return output


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Server]:
    with memory_database_url(tmp_path_factory.mktemp("raw")) as url:
        gunicorn = GunicornServer({
            "STOREFRONT_ENV": "production", "STOREFRONT_DATABASE_URL": url,
            "STOREFRONT_ADMIN_TOKENS": ADMIN_TOKEN, "STOREFRONT_SECRET_KEY": SECRET,
            "STOREFRONT_SHOPIFY_API_SECRET": SHOPIFY_SECRET,
            "STOREFRONT_PUBLIC_BASE_URL": "https://widgets.example.test",
        }, workers=1, threads=4)
        try:
            yield Server(gunicorn)
        finally:
            gunicorn.stop()


@pytest.fixture(scope="module")
def clean_widget(server: Server) -> bytes:
    status, _, body = server.request(WIDGET, "Accept-Encoding: identity")
    assert status == 200
    return body


def get_with(*lines: bytes, target: bytes = WIDGET.encode()) -> bytes:
    """A GET of ``target`` with these header lines after its Host line."""
    headers = b"".join(line + b"\r\n" for line in lines)
    return b"GET " + target + b" HTTP/1.1\r\nHost: x\r\n" + headers + b"\r\n"


def webhook_with(*lines: bytes) -> bytes:
    return b"POST /webhooks/shopify HTTP/1.1\r\nHost: x\r\n" + b"\r\n".join(lines)


PATH = f"/v1/shops/{SHOP}/widgets"
MALFORMED = {
    "two spaces in the request line": b"GET  " + WIDGET.encode() + b" HTTP/1.1\r\nHost: x\r\n\r\n",
    "no HTTP version": b"GET " + WIDGET.encode() + b"\r\n\r\n",
    "HTTP/9.9": b"GET " + WIDGET.encode() + b" HTTP/9.9\r\nHost: x\r\n\r\n",
    "lower-case method": b"get " + WIDGET.encode() + b" HTTP/1.1\r\nHost: x\r\n\r\n",
    "a request line of 9000 bytes": get_with(target=WIDGET.encode() + b"&v=" + b"a" * 9000),
    "a 64 KB header": get_with(b"X-Big: " + b"a" * 65536),
    "300 headers": get_with(*(b"X-H%d: v" % n for n in range(300))),
    "NUL and control bytes in a header": get_with(b"X-Bad: a\x00\x01b"),
    "DEL in a header": get_with(b"X-Bad: a\x7fb"),
    "space before the colon": get_with(b"X-Forwarded-Host : evil"),
    "obsolete line folding": get_with(b"X-A: a", b" folded"),
    "two Host headers": get_with(b"Host: evil.example"),
    "a bare LF line end": b"GET " + WIDGET.encode() + b" HTTP/1.1\nHost: x\n\n",
    "a CR inside a header value": get_with(b"X-A: a\rSet-Cookie: b"),
    "NUL in the path": get_with(target=f"{PATH}/subscription.js\x00.css?product=1".encode()),
    "a tab in the path": get_with(target=f"{PATH}/subscription.js\t?product=1".encode()),
    "raw UTF-8 in the path": get_with(target=f"{PATH}/\uff53ubscription.js".encode()),
    "Content-Length and Transfer-Encoding": webhook_with(b"Content-Length: 4", b"Transfer-Encoding: chunked",
                                                         b"", b"0", b"", b""),
    "two different Content-Lengths": webhook_with(b"Content-Length: 1", b"Content-Length: 2", b"", b"ab"),
    "a negative Content-Length": webhook_with(b"Content-Length: -1", b"", b""),
    "an unknown Transfer-Encoding": webhook_with(b"Transfer-Encoding: gzip, identity", b"", b""),
}


@pytest.mark.parametrize("name", list(MALFORMED))
def test_malformed_requests_get_a_4xx_and_the_server_keeps_serving(server: Server, clean_widget: bytes,
                                                                     name: str) -> None:
    status, headers, _ = server.send(MALFORMED[name])
    assert 400 <= status < 500, (name, status)
    assert "set-cookie" not in headers
    if name in ("a 64 KB header", "300 headers"):
        assert status == 431
    if name == "a request line of 9000 bytes":
        assert status == 414
    again, _, body = server.request(WIDGET, "Accept-Encoding: identity")
    assert (again, body) == (200, clean_widget)


HEADER_TRICKS = {
    "absolute-form target naming another host": (f"http://evil.example{WIDGET}", []),
    "forwarding headers with underscores": (WIDGET, ["X_Forwarded_Host: evil.example",
                                                     "X_Forwarded_Proto: http"]),
    "Script-Name": (WIDGET, ["Script-Name: /evil"]),
    "SCRIPT_NAME naming a prefix of the path": (WIDGET, ["SCRIPT_NAME: /v1"]),
    "trusted-proxy scheme headers": (WIDGET, ["X-Forwarded-Proto: http", "X-Forwarded-Protocol: http",
                                              "X-Forwarded-For: 1.2.3.4", "Forwarded: host=evil.example"]),
    "conflicting scheme headers": (WIDGET, ["X-Forwarded-Proto: https", "X-Forwarded-Ssl: off"]),
    "a fragment in the target": (f"{WIDGET}#x", []),
    "latin-1 bytes in a header value": (WIDGET, ["X-Latin: caf\xe9 \xff"]),
    "an empty header value": (WIDGET, ["X-Forwarded-Host:", "Cookie:"]),
    "a duplicated forwarding header": (WIDGET, ["X-Forwarded-Host: a.example",
                                                "X-Forwarded-Host: evil.example"]),
    # FINDING-4 in SECURITY.md (fixed): gunicorn trusted forwarding headers from 127.0.0.1.
    "SCRIPT_NAME naming another prefix": (WIDGET, ["SCRIPT_NAME: /evil"]),
}


@pytest.mark.parametrize(("path", "headers"), list(HEADER_TRICKS.values()), ids=list(HEADER_TRICKS))
def test_protocol_level_header_tricks_do_not_change_the_widget(server: Server, clean_widget: bytes, path: str,
                                                               headers: list[str]) -> None:
    """The widget unchanged, or refused with a 4xx by gunicorn's parser; never a 5xx or other bytes."""
    status, answer, body = server.request(path, "Accept-Encoding: identity", *headers)
    if status != 200:
        assert 400 <= status < 500, status
    else:
        assert body == clean_widget
    assert "set-cookie" not in answer and "location" not in answer


def test_a_chunked_body_on_get_is_400_and_not_cacheable(server: Server) -> None:
    status, headers, body = server.request(WIDGET, "Transfer-Encoding: chunked",
                                           body=b"3\r\nx=1\r\n0\r\n\r\n")
    assert status == 400
    assert headers["cache-control"] == "no-store"
    assert json.loads(body)["fields"] == {"body": "a GET request takes no body"}


def _chunked(payload: bytes) -> bytes:
    parts = (payload[i:i + 32768] for i in range(0, len(payload), 32768))
    return b"".join(b"%x\r\n%s\r\n" % (len(part), part) for part in parts) + b"0\r\n\r\n"




def framed(payload: bytes, framing: str) -> tuple[list[str], bytes]:
    """(framing header, body) for sending ``payload`` with a Content-Length or chunked."""
    if framing == "chunked":
        return ["Transfer-Encoding: chunked"], _chunked(payload)
    return [f"Content-Length: {len(payload)}"], payload


ADMIN_SHOP = f"/admin/v1/shops/{SHOP}"
BEARER = f"Authorization: Bearer {ADMIN_TOKEN}"
DEMO_SHOP = {"name": "Demo Coffee Co.", "currency": "USD", "money_format": "${{amount}}",
             "default_locale": "en", "locales": ["en", "fr"]}


@pytest.mark.parametrize("framing", ["content-length", "chunked"])
def test_an_oversized_admin_body_is_413_however_it_is_framed(server: Server, framing: str) -> None:
    # Valid JSON in its first 256 KiB: truncating it instead of refusing it would store it (the demo
    # shop's own values, so that a truncation leaves nothing behind for the tests after this one).
    framing_header, body = framed(json.dumps(DEMO_SHOP).encode() + b" " * (300 * 1024), framing)
    status, headers, answer = server.request(ADMIN_SHOP, BEARER, "Content-Type: application/json",
                                             *framing_header, method="PUT", body=body)
    assert status == 413, answer[:200]
    assert headers["cache-control"] == "no-store"


@pytest.mark.parametrize("framing", ["content-length", "chunked"])
def test_an_oversized_webhook_is_413_however_it_is_framed(server: Server, framing: str) -> None:
    # Signed as Shopify would sign its first 256 KiB; for a product nobody has, so that a truncation
    # changes nothing for the tests after this one.
    payload = b'{"id": 7001999999999}' + b" " * (300 * 1024)
    framing_header, body = framed(payload, framing)
    status, _, answer = server.request(
        "/webhooks/shopify", f"X-Shopify-Hmac-Sha256: {sign_webhook(payload[:256 * 1024], SHOPIFY_SECRET)}",
        "X-Shopify-Topic: products/delete", f"X-Shopify-Shop-Domain: {SHOP}",
        f"X-Shopify-Webhook-Id: {uuid.uuid4()}", "Content-Type: application/json", *framing_header,
        method="POST", body=body)
    assert status == 413, answer[:200]


def test_a_chunked_admin_body_within_the_limit_is_read_whole(server: Server) -> None:
    payload = json.dumps(DEMO_SHOP).encode() + b" " * (200 * 1024)
    status, _, answer = server.request(ADMIN_SHOP, BEARER, "Content-Type: application/json",
                                       "Transfer-Encoding: chunked", method="PUT", body=_chunked(payload))
    assert status == 200, answer[:200]
    assert json.loads(answer)["name"] == "Demo Coffee Co."


@pytest.mark.parametrize("order", ["valid first", "valid second"])
def test_two_authorization_headers_are_refused(server: Server, order: str) -> None:
    headers = [BEARER, "Authorization: Bearer not-the-token-at-all"]
    if order == "valid second":
        headers.reverse()
    status, _, _ = server.request(ADMIN_SHOP, *headers)
    assert status == 401


def test_request_log_lines_cannot_be_forged_through_the_path(server: Server) -> None:
    marker = uuid.uuid4().hex
    forged = f'%0A{{"level":"error","message":"{marker}"}}%0D%0Ax'
    status, _, _ = server.request(f"/v1/shops/{SHOP}{forged}/widgets/subscription.js")
    assert status in (400, 404)
    lines = [line for line in server.flushed_output().splitlines() if marker in line]
    assert lines, "the request was not logged"
    for line in lines:
        entry = json.loads(line)  # one JSON object per line: the newline stayed escaped
        assert entry["logger"] == "storefront.access" and marker in entry["path"]


def test_secrets_in_requests_never_reach_the_server_output(server: Server) -> None:
    """Tokens in headers (valid, wrong, malformed ones gunicorn refuses), in query strings, the
    webhook HMAC, preview tokens and app proxy signatures: none is logged, by the app or by gunicorn."""
    wrong = "wrong-token-" + uuid.uuid4().hex
    in_query = "query-token-" + uuid.uuid4().hex
    server.request(ADMIN_SHOP, BEARER)
    server.request(ADMIN_SHOP, f"Authorization: Bearer {wrong}")
    server.request(f"{ADMIN_SHOP}?token={in_query}&access_token={in_query}")
    server.request(ADMIN_SHOP, f"{BEARER}\x01")  # refused by gunicorn's parser
    # A request line gunicorn refuses (it logs those).
    server.send(f"GET {ADMIN_SHOP}?token={wrong} HTTP/9.9\r\nHost: x\r\n\r\n".encode())
    body = b'{"id": 1}'
    hmac_header = sign_webhook(body, SHOPIFY_SECRET)
    server.request("/webhooks/shopify", f"X-Shopify-Hmac-Sha256: {hmac_header}",
                   "X-Shopify-Topic: orders/create", f"X-Shopify-Shop-Domain: {SHOP}",
                   "X-Shopify-Webhook-Id: 1", f"Content-Length: {len(body)}", method="POST", body=body)
    server.request("/webhooks/shopify", f"X-Shopify-Hmac-Sha256: {sign_webhook(body, 'forged')}",
                   f"Content-Length: {len(body)}", method="POST", body=body)
    status, _, link = server.request(f"{ADMIN_SHOP}/widgets/subscription/preview-links", BEARER,
                                     "Content-Type: application/json", "Content-Length: 2", method="POST",
                                     body=b"{}")
    assert status == 201
    preview = json.loads(link)["url"].removeprefix("https://widgets.example.test")
    preview_token = preview.split("token=")[1]
    assert server.request(preview)[0] == 200
    params = [("product", str(COFFEE)), ("shop", SHOP), ("logged_in_customer_id", ""),
              ("path_prefix", "/apps/widgets"), ("timestamp", str(int(time.time())))]
    query = proxy_query(params, SHOPIFY_SECRET)
    assert server.request(f"/proxy/widgets/subscription?{query}")[0] == 200
    signature = query.rsplit("signature=", 1)[1]

    output = server.flushed_output()
    assert "storefront.access" in output  # the app's request log is in there
    secrets = (ADMIN_TOKEN, wrong, in_query, hmac_header, preview_token, signature, SHOPIFY_SECRET, SECRET)
    for secret in secrets:
        assert secret not in output
