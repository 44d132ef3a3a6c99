"""Webhook HMAC and app proxy signatures: Shopify's published vector, tampering, windows, bad input."""

from __future__ import annotations

import base64

import pytest

from storefront.shopify.signatures import (
    MalformedQuery,
    app_proxy_message,
    app_proxy_signature,
    parse_proxy_query,
    verify_app_proxy,
    verify_webhook,
    webhook_hmac,
)
from tests.conftest import load_fixture
from tests.shopify.shopify_side import encode, proxy_query, sign_webhook

VECTOR = load_fixture("shopify/app-proxy-signature.json")
SECRET = "webhook-secret-for-unit-tests"
BODY = b'{"id": 7001000000001, "title": "Caf\xc3\xa9"}'


# -- webhooks ---------------------------------------------------------------------------------------
def test_webhook_signed_by_shopify_verifies() -> None:
    assert verify_webhook(BODY, sign_webhook(BODY, SECRET), SECRET)
    assert webhook_hmac(BODY, SECRET) == sign_webhook(BODY, SECRET)


@pytest.mark.parametrize("header", [
    None,
    "",
    "   ",
    "not base64 at all!",
    "é" * 44,                                             # non-ASCII
    sign_webhook(BODY, "another-secret"),
    sign_webhook(BODY + b" ", SECRET),                    # signs different bytes
    sign_webhook(BODY, SECRET)[:-4],                      # truncated
    base64.b64encode(b"\x00" * 32).decode(),              # right length, wrong digest
    sign_webhook(BODY, SECRET).encode().hex(),            # hex, not base64
])
def test_webhook_with_missing_or_wrong_hmac_fails(header: str | None) -> None:
    assert not verify_webhook(BODY, header, SECRET)


def test_webhook_hmac_covers_the_raw_bytes_not_the_parsed_json() -> None:
    reformatted = b'{"id":7001000000001,"title":"Caf\xc3\xa9"}'
    assert not verify_webhook(reformatted, sign_webhook(BODY, SECRET), SECRET)


def test_nothing_verifies_without_a_secret() -> None:
    assert not verify_webhook(BODY, sign_webhook(BODY, ""), "")


# -- app proxy: the vector --------------------------------------------------------------------------
def test_app_proxy_vector_message_and_signature_are_reproduced_exactly() -> None:
    pairs = parse_proxy_query(VECTOR["query"])
    assert app_proxy_message(pairs) == VECTOR["message"]
    assert app_proxy_signature(pairs, VECTOR["secret"]) == VECTOR["signature"]


def test_app_proxy_vector_verifies_with_its_signature_inside_its_window() -> None:
    query = VECTOR["query"] + "&signature=" + VECTOR["signature"]
    timestamp = 1317327555
    assert verify_app_proxy(query, VECTOR["secret"], now=timestamp + 90)
    assert verify_app_proxy(query, VECTOR["secret"], now=timestamp - 90)
    # The signature is not part of the message, wherever it stands in the query.
    assert verify_app_proxy("signature=" + VECTOR["signature"] + "&" + VECTOR["query"], VECTOR["secret"],
                            now=timestamp)


def test_our_signature_matches_an_independent_transcription_of_shopifys_code() -> None:
    params = [("shop", "a-shop.myshopify.com"), ("path_prefix", "/apps/sf"), ("a-b", "x y"),
              ("a", "é&="), ("timestamp", "1700000000"), ("a", "2")]
    query = proxy_query(params, SECRET)
    assert verify_app_proxy(query, SECRET, now=1700000000)
    # "a-b=" sorts before "a=" as whole strings, though "a" < "a-b" as names.
    assert app_proxy_message(params).startswith("a-b=x ya=é&=,2")


# -- app proxy: refusals ----------------------------------------------------------------------------
NOW = 1700000000
BASE = [("shop", "a-shop.myshopify.com"), ("logged_in_customer_id", ""), ("path_prefix", "/apps/sf"),
        ("timestamp", str(NOW)), ("product", "7001000000001")]


def test_a_signed_query_verifies_and_keeps_every_pair_in_order() -> None:
    verdict = verify_app_proxy(proxy_query(BASE, SECRET), SECRET, now=NOW)
    assert verdict and verdict.reason == ""
    assert [name for name, _ in verdict.pairs] == [name for name, _ in BASE] + ["signature"]


@pytest.mark.parametrize(("query", "reason"), [
    (encode(BASE), "signature missing"),
    (proxy_query(BASE, SECRET).replace("product=7001000000001", "product=7"), "signature mismatch"),
    (proxy_query(BASE, SECRET) + "&locale=fr", "signature mismatch"),          # a parameter added
    (proxy_query(BASE, SECRET) + "&product=1", "signature mismatch"),           # a repeat added
    (proxy_query(BASE, "another-secret"), "signature mismatch"),
    (encode(BASE) + "&signature=" + proxy_query(BASE, SECRET).rpartition("=")[2].upper(),
     "signature malformed"),
    (proxy_query(BASE, SECRET) + "&signature=" + "0" * 64, "signature malformed"),  # two signatures
    (encode(BASE) + "&signature=abc", "signature malformed"),
    (proxy_query([p for p in BASE if p[0] != "timestamp"], SECRET), "timestamp missing or malformed"),
    (proxy_query(BASE + [("timestamp", str(NOW))], SECRET), "timestamp missing or malformed"),
    (proxy_query([("timestamp", "-5")] + BASE[:3], SECRET), "timestamp missing or malformed"),
    (proxy_query(BASE, SECRET) + "&x=%ff", "a percent-encoded sequence is not UTF-8"),
    (proxy_query(BASE, SECRET) + "&x=é", "the query string holds characters that are not printable ASCII"),
])
def test_app_proxy_refusals_say_why(query: str, reason: str) -> None:
    verdict = verify_app_proxy(query, SECRET, now=NOW)
    assert not verdict
    assert verdict.reason == reason


@pytest.mark.parametrize(("offset", "valid"), [(0, True), (90, True), (-90, True), (91, False), (-91, False),
                                               (90.5, False), (86400, False)])
def test_app_proxy_timestamp_window_is_90_seconds_either_side(offset: float, valid: bool) -> None:
    verdict = verify_app_proxy(proxy_query(BASE, SECRET), SECRET, now=NOW + offset)
    assert bool(verdict) is valid
    if not valid:
        assert verdict.reason == "timestamp outside the allowed window"


def test_app_proxy_window_is_configurable() -> None:
    assert not verify_app_proxy(proxy_query(BASE, SECRET), SECRET, now=NOW + 31, window_s=30)
    assert verify_app_proxy(proxy_query(BASE, SECRET), SECRET, now=NOW + 30, window_s=30)


def test_app_proxy_never_verifies_without_a_secret() -> None:
    assert not verify_app_proxy(proxy_query(BASE, ""), "", now=NOW)


def test_query_decoding_follows_rack() -> None:
    assert parse_proxy_query("a=1+2&&b=%2Fx%20y&c&d=") == [("a", "1 2"), ("b", "/x y"), ("c", ""), ("d", "")]
    with pytest.raises(MalformedQuery):
        parse_proxy_query("a=%C3%28")
