"""Properties of Shopify signature checks: any input gets a verdict (never an exception), and only a
correct signature over exactly the data sent, within the time window, is accepted."""

from __future__ import annotations

import base64
import hashlib
import hmac
from urllib.parse import quote_plus

from hypothesis import given
from hypothesis import strategies as st

from storefront.shopify.signatures import (
    PROXY_WINDOW_S,
    MalformedQuery,
    ProxyVerification,
    app_proxy_signature,
    parse_proxy_query,
    verify_app_proxy,
    verify_webhook,
    webhook_hmac,
)
from tests.fuzz.property_settings import bounded

# Secrets come from configuration (text); an empty one must verify nothing.
secrets = st.text(max_size=40)
headers = (st.none() | st.text(max_size=60)
           | st.binary(max_size=40).map(lambda raw: base64.b64encode(raw).decode())
           | st.sampled_from(["", " ", "=", "====", "\x00", "é", "YWJj\n", "YWJj ", " YWJj"]))
now = st.floats(allow_nan=True, allow_infinity=True) | st.integers(0, 2**40).map(float)
raw_queries = st.text(max_size=120) | st.lists(
    st.tuples(st.sampled_from(["shop", "timestamp", "signature", "path_prefix", "x", ""]),
              st.text(max_size=20)), max_size=6).map(lambda pairs: "&".join(f"{k}={v}" for k, v in pairs))


@bounded(500)
@given(st.binary(max_size=200), headers, secrets)
def test_verify_webhook_always_answers_a_bool(body, header, secret):
    assert verify_webhook(body, header, secret) in (True, False)


@bounded(300)
@given(st.binary(max_size=200), st.binary(max_size=200), secrets.filter(bool))
def test_verify_webhook_accepts_exactly_the_bodys_own_hmac(body, other, secret):
    assert verify_webhook(body, webhook_hmac(body, secret), secret)
    # Independently computed, so webhook_hmac and the check cannot agree on a shared mistake.
    expected = base64.b64encode(hmac.new(secret.encode(), body, hashlib.sha256).digest()).decode()
    assert verify_webhook(body, expected, secret)
    assert not verify_webhook(body, webhook_hmac(body, secret), "")
    if other != body:
        assert not verify_webhook(other, expected, secret)


@bounded(500)
@given(raw_queries, secrets, now)
def test_verify_app_proxy_always_gives_a_verdict(raw_query, secret, at):
    verdict = verify_app_proxy(raw_query, secret, at)
    assert isinstance(verdict, ProxyVerification)
    assert bool(verdict) == verdict.valid and (verdict.valid or verdict.reason)


@bounded(400)
@given(raw_queries)
def test_parse_proxy_query_raises_only_malformed_query(raw_query):
    try:
        pairs = parse_proxy_query(raw_query)
    except MalformedQuery:
        return
    assert all(isinstance(name, str) and isinstance(value, str) for name, value in pairs)


pair_names = st.sampled_from(["shop", "path_prefix", "logged_in_customer_id", "product", "locale", "extra"])


@bounded(300)
@given(pairs=st.lists(st.tuples(pair_names, st.text(max_size=20)), max_size=6), secret=secrets.filter(bool),
       timestamp=st.integers(0, 10**12 - 1), drift=st.integers(-2 * PROXY_WINDOW_S, 2 * PROXY_WINDOW_S))
def test_a_signed_app_proxy_query_verifies_within_the_window_only(pairs, secret, timestamp, drift):
    signed_pairs = [*pairs, ("timestamp", str(timestamp))]
    signature = app_proxy_signature(signed_pairs, secret)
    raw = "&".join(f"{quote_plus(k)}={quote_plus(v)}" for k, v in [*signed_pairs, ("signature", signature)])
    verdict = verify_app_proxy(raw, secret, float(timestamp + drift))
    assert bool(verdict) == (abs(drift) <= PROXY_WINDOW_S), verdict.reason
    # Any other secret, or a changed value, fails whatever the time.
    assert not verify_app_proxy(raw, secret + "x", float(timestamp))
    tampered = raw.replace(f"timestamp={timestamp}", f"timestamp={timestamp + 1}")
    assert not verify_app_proxy(tampered, secret, float(timestamp))
