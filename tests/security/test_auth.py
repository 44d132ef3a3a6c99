"""Who may change what: admin bearer tokens, Shopify's webhook HMAC, app proxy signatures, preview tokens.

Every refusal is the same small JSON answer (no hint of what was close), changes nothing, and
leaves no secret in a response or in the logs.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import itertools
import json
import time
import uuid
from typing import Any
from urllib.parse import urlsplit

import pytest
from flask import Flask
from flask.testing import FlaskClient
from werkzeug.datastructures import Headers

from storefront.preview_links import PreviewGrant, PreviewSigner
from tests.conftest import ADMIN_TOKEN, SECRET, SHOPIFY_SECRET, load_fixture, make_app
from tests.shopify.shopify_side import encode, proxy_query, proxy_signature, sign_webhook

SHOP = "demo-coffee.myshopify.com"
COFFEE = 7001000000001
AUTH = {"Authorization": f"Bearer {ADMIN_TOKEN}"}


def admin_snapshot(client: FlaskClient) -> dict[str, Any]:
    """Everything the admin API can read about the demo shop."""
    base = f"/admin/v1/shops/{SHOP}"
    widgets = [f"{base}/widgets/{kind}{tail}" for kind in ("subscription", "bundle", "loyalty")
               for tail in ("", "/versions")]
    paths = [base, f"{base}/products/{COFFEE}", *widgets]
    return {path: client.get(path, headers=AUTH).get_json() for path in paths}


# -- admin bearer tokens ----------------------------------------------------------------------------
BAD_CREDENTIALS = {
    "none": None,
    "empty": "",
    "scheme only": "Bearer",
    "scheme and space": "Bearer ",
    "bare token": ADMIN_TOKEN,
    "Basic": "Basic " + base64.b64encode(f"admin:{ADMIN_TOKEN}".encode()).decode(),
    "Token scheme": f"Token {ADMIN_TOKEN}",
    "Digest scheme": f"Digest {ADMIN_TOKEN}",
    "tab after the scheme": f"Bearer\t{ADMIN_TOKEN}",
    "prefix": f"Bearer {ADMIN_TOKEN[:-1]}",
    "longer": f"Bearer {ADMIN_TOKEN}x",
    "same length": "Bearer " + "x" * len(ADMIN_TOKEN),
    "other case": f"Bearer {ADMIN_TOKEN.upper()}",
    "twice, comma": f"Bearer {ADMIN_TOKEN},{ADMIN_TOKEN}",
    "twice, space": f"Bearer {ADMIN_TOKEN} {ADMIN_TOKEN}",
    "NUL appended": f"Bearer {ADMIN_TOKEN}\x00",
    "zero-width joiner inside": f"Bearer {ADMIN_TOKEN[:8]}\u200d{ADMIN_TOKEN[8:]}",
    "non-ASCII": "Bearer t\u00f6k\u00e9n-\u00fc\u00f1\u00ed\u00e7\u00f8d\u00e9-0123456789",
    "10 KB": "Bearer " + "a" * 10240,
}


def admin_requests(app) -> list[tuple[str, str]]:
    """(method, URL) for every admin route the app has, with real identifiers filled in."""
    values = {"shop": SHOP, "product_id": str(COFFEE), "kind": "subscription"}
    requests = []
    for rule in app.url_map.iter_rules():
        if not rule.rule.startswith("/admin/"):
            continue
        url = rule.rule
        for name in rule.arguments:
            url = url.replace(f"<{name}>", values[name])
        requests += [(method, url) for method in sorted(rule.methods - {"HEAD", "OPTIONS"})]
    return requests


def test_every_admin_route_refuses_every_bad_credential_alike(demo_app: Flask) -> None:
    client = demo_app.test_client()
    before = admin_snapshot(client)
    requests = admin_requests(demo_app)
    assert len(requests) >= 13  # every endpoint of the contract's table
    bodies = set()
    for (method, url), (name, credential) in itertools.product(requests, BAD_CREDENTIALS.items()):
        headers = {} if credential is None else {"Authorization": credential}
        response = client.open(url, method=method, headers=headers, json={"settings": {}, "version": 1})
        assert response.status_code == 401, (method, url, name)
        assert response.headers["Cache-Control"] == "no-store"
        assert response.headers["WWW-Authenticate"].startswith("Bearer")
        bodies.add(response.get_data())
    # One answer for all: nothing tells a near miss from a wild guess.
    assert len(bodies) == 1 and ADMIN_TOKEN.encode() not in bodies.pop()
    assert admin_snapshot(client) == before


@pytest.mark.parametrize("where", ["query token", "query access_token", "cookie", "X-Admin-Token",
                                   "X-Api-Key", "Proxy-Authorization", "form field"])
def test_a_token_anywhere_but_authorization_is_ignored(demo_app: Flask, where: str) -> None:
    client = demo_app.test_client()
    url = f"/admin/v1/shops/{SHOP}"
    if where.startswith("query"):
        response = client.get(f"{url}?{where.split()[1]}={ADMIN_TOKEN}")
    elif where == "cookie":
        client.set_cookie("token", ADMIN_TOKEN)
        response = client.get(url)
    elif where == "form field":
        response = client.delete(url, data={"token": ADMIN_TOKEN, "access_token": ADMIN_TOKEN})
    elif where == "Proxy-Authorization":
        response = client.get(url, headers={where: f"Bearer {ADMIN_TOKEN}"})
    else:
        response = client.get(url, headers={where: ADMIN_TOKEN})
    assert response.status_code == 401


@pytest.mark.parametrize("credential", [f"Bearer {ADMIN_TOKEN}", f"bearer {ADMIN_TOKEN}",
                                        f"BEARER {ADMIN_TOKEN}", f"Bearer   {ADMIN_TOKEN}  "])
def test_the_bearer_scheme_is_case_insensitive_and_spaces_around_the_token_are_ignored(
        demo_app: Flask, credential: str) -> None:
    assert demo_app.test_client().get(f"/admin/v1/shops/{SHOP}", headers={"Authorization": credential}
                                      ).status_code == 200


def test_each_configured_token_works_on_its_own(db_url: str) -> None:
    first, second = "first-admin-token-0123456789", "second-admin-token-012345678"
    app = make_app(db_url, ADMIN_TOKENS=f"{first},{second}")
    try:
        client = app.test_client()
        for token, status in ((first, 404), (second, 404), (f"{first},{second}", 401), (ADMIN_TOKEN, 401)):
            response = client.get(f"/admin/v1/shops/{SHOP}", headers={"Authorization": f"Bearer {token}"})
            assert response.status_code == status, token  # 404: authenticated, and the shop does not exist
    finally:
        app.extensions["storefront"].store.close()


def test_development_without_tokens_keeps_the_admin_api_closed(db_url: str) -> None:
    app = make_app(db_url, ENV="development", ADMIN_TOKENS="")
    try:
        client = app.test_client()
        for headers in ({}, {"Authorization": "Bearer "}, {"Authorization": "Bearer x"}):
            assert client.put(f"/admin/v1/shops/{SHOP}", headers=headers, json={}).status_code == 401
    finally:
        app.extensions["storefront"].store.close()


def test_two_authorization_headers_are_refused_in_either_order(demo_app: Flask) -> None:
    client = demo_app.test_client()
    for pair in ((f"Bearer {ADMIN_TOKEN}", "Bearer nope-nope-nope-nope"),
                 ("Bearer nope-nope-nope-nope", f"Bearer {ADMIN_TOKEN}")):
        headers = Headers([("Authorization", pair[0]), ("Authorization", pair[1])])
        assert client.get(f"/admin/v1/shops/{SHOP}", headers=headers).status_code == 401


def test_secrets_never_reach_logs_or_response_bodies(demo_app: Flask,
                                                     caplog: pytest.LogCaptureFixture) -> None:
    """Successful and failing admin requests (401, 400, 404, 405, 413, 415, 422), webhooks with good
    and bad signatures, app proxy and preview requests: no token, signature or secret is logged
    (at any level) or echoed."""
    caplog.set_level("DEBUG")
    client = demo_app.test_client()
    wrong = "wrong-token-" + uuid.uuid4().hex
    base = f"/admin/v1/shops/{SHOP}"
    responses = [
        client.get(base, headers=AUTH),
        client.get(base, headers={"Authorization": f"Bearer {wrong}"}),
        client.get(f"{base}?token={wrong}"),
        client.put(base, headers=AUTH, data=b"{", content_type="application/json"),
        client.put(base, headers=AUTH, json={"name": 1}),
        client.put(base, headers=AUTH, data=b"x", content_type="text/plain"),
        client.put(base, headers=AUTH, data=b"x" * (300 * 1024), content_type="application/json"),
        client.get(f"{base}/products/1", headers=AUTH),
        client.post(base, headers=AUTH),
    ]
    body = json.dumps({"id": COFFEE}).encode()
    good_hmac, bad_hmac = sign_webhook(body, SHOPIFY_SECRET), sign_webhook(body, "another-secret")
    for hmac_header in (good_hmac, bad_hmac):
        responses.append(client.post("/webhooks/shopify", data=body, headers={
            "X-Shopify-Hmac-Sha256": hmac_header, "X-Shopify-Topic": "orders/create",
            "X-Shopify-Shop-Domain": SHOP, "X-Shopify-Webhook-Id": str(uuid.uuid4())}))
    params = [("product", str(COFFEE)), ("shop", SHOP), ("logged_in_customer_id", "42"),
              ("path_prefix", "/apps/widgets"), ("timestamp", str(int(time.time())))]
    signature = proxy_signature(params, SHOPIFY_SECRET)
    responses.append(client.get(f"/proxy/widgets/subscription?{proxy_query(params, SHOPIFY_SECRET)}"))
    responses.append(client.get(f"/proxy/widgets/subscription?{encode(params)}&signature={'0' * 64}"))
    link = client.post(f"{base}/widgets/subscription/preview-links", headers=AUTH, json={}).get_json()["url"]
    preview_token = link.split("token=")[1]
    preview = urlsplit(link)
    responses.append(client.get(f"{preview.path}?{preview.query}"))
    responses.append(client.get(f"{preview.path}/draft.js?{preview.query}"))

    secrets = (ADMIN_TOKEN, wrong, good_hmac, bad_hmac, signature, preview_token, SHOPIFY_SECRET, SECRET)
    assert "request" in caplog.text  # the request log was captured
    for secret in secrets:
        assert secret not in caplog.text
    for response in responses:
        assert response.status_code < 500
        exposed = response.get_data(as_text=True) + str(response.headers)
        # (The preview token is meant to be in the preview page: its links carry it.)
        for secret in (ADMIN_TOKEN, wrong, good_hmac, bad_hmac, signature, SHOPIFY_SECRET, SECRET):
            assert secret not in exposed, response.request.path


# -- Shopify webhook HMAC ---------------------------------------------------------------------------
PAYLOAD = load_fixture("shopify/webhook-products-update.json")


def deliver(client: FlaskClient, body: bytes, hmac_header: str | None, *, webhook_id: str,
            extra: list[tuple[str, str]] | None = None):
    headers = Headers([("Content-Type", "application/json"), ("X-Shopify-Topic", "products/update"),
                       ("X-Shopify-Shop-Domain", SHOP), ("X-Shopify-Webhook-Id", webhook_id)])
    if hmac_header is not None:
        headers.add("X-Shopify-Hmac-Sha256", hmac_header)
    for name, value in extra or []:
        headers.add(name, value)
    return client.post("/webhooks/shopify", data=body, headers=headers)


def _digest(body: bytes, secret: str = SHOPIFY_SECRET) -> bytes:
    return hmac.new(secret.encode(), body, hashlib.sha256).digest()


BODY = json.dumps(PAYLOAD).encode()
FORGED_SIGNATURES = {
    "missing": None,
    "empty": "",
    "blank": "   ",
    "random": base64.b64encode(uuid.uuid4().bytes * 2).decode(),
    "signed with another secret": sign_webhook(BODY, "another-app-secret"),
    "signed with an empty secret": sign_webhook(BODY, ""),
    "hex instead of base64": _digest(BODY).hex(),
    "padding removed": sign_webhook(BODY, SHOPIFY_SECRET).rstrip("="),
    "first 16 bytes": base64.b64encode(_digest(BODY)[:16]).decode(),
    "with bytes appended": base64.b64encode(_digest(BODY) + b"\x00").decode(),
    "space inside": sign_webhook(BODY, SHOPIFY_SECRET)[:10] + " " + sign_webhook(BODY, SHOPIFY_SECRET)[10:],
    "upper-cased": sign_webhook(BODY, SHOPIFY_SECRET).upper(),
    "HMAC-SHA1": base64.b64encode(hmac.new(SHOPIFY_SECRET.encode(), BODY, hashlib.sha1).digest()).decode(),
    "plain SHA-256 of the body": base64.b64encode(hashlib.sha256(BODY).digest()).decode(),
    "secret concatenated": base64.b64encode(hashlib.sha256(SHOPIFY_SECRET.encode() + BODY).digest()).decode(),
}
ALTERED_BODIES = {
    "first byte changed": b" " + BODY[1:],
    "last byte removed": BODY[:-1],
    "a space appended": BODY + b" ",
    "a space prepended": b" " + BODY,
    "a newline appended": BODY + b"\n",
    "a price changed": BODY.replace(b'"19.00"', b'"1.00"'),
    "re-serialised with other spacing": json.dumps(PAYLOAD, indent=1).encode(),
    "keys reordered": json.dumps(dict(reversed(list(PAYLOAD.items())))).encode(),
    "a second document appended": BODY + BODY,
}


@pytest.mark.parametrize("name", list(FORGED_SIGNATURES) + [f"body: {name}" for name in ALTERED_BODIES])
def test_a_webhook_not_signed_for_its_exact_bytes_is_401_and_burns_nothing(demo_app: Flask,
                                                                           name: str) -> None:
    client = demo_app.test_client()
    before = admin_snapshot(client)
    webhook_id = str(uuid.uuid4())
    if name.startswith("body: "):
        response = deliver(client, ALTERED_BODIES[name[6:]], sign_webhook(BODY, SHOPIFY_SECRET),
                           webhook_id=webhook_id)
    else:
        response = deliver(client, BODY, FORGED_SIGNATURES[name], webhook_id=webhook_id)
    assert response.status_code == 401, response.get_data(as_text=True)
    assert response.get_json()["error"] == "unauthorized"
    assert sign_webhook(BODY, SHOPIFY_SECRET) not in response.get_data(as_text=True)
    assert admin_snapshot(client) == before
    # The forged delivery did not use up its id: the genuine one with that id is applied.
    genuine = deliver(client, BODY, sign_webhook(BODY, SHOPIFY_SECRET), webhook_id=webhook_id)
    assert genuine.get_json()["status"] == "applied"


def test_webhook_signatures_in_other_headers_or_twice_are_refused(demo_app: Flask) -> None:
    client = demo_app.test_client()
    right, wrong = sign_webhook(BODY, SHOPIFY_SECRET), sign_webhook(BODY, "another-app-secret")
    cases = [
        [("X-Shopify-Hmac-SHA256", right), ("X-Shopify-Hmac-Sha256", wrong)],
        [("X-Shopify-Hmac-Sha256", wrong), ("X-Shopify-Hmac-Sha256", right)],
        [("X-Shopify-Hmac", right)],
        [("X-Hub-Signature-256", f"sha256={_digest(BODY).hex()}")],
        [("Authorization", f"HMAC {right}")],
    ]
    for extra in cases:
        response = deliver(client, BODY, None, webhook_id=str(uuid.uuid4()), extra=extra)
        assert response.status_code == 401, extra


def test_a_webhook_is_verified_before_it_is_parsed(demo_app: Flask) -> None:
    """Unsigned garbage is 401, not 400: nothing is learnt about the parser without the secret."""
    client = demo_app.test_client()
    for garbage in (b"{", b"[" * 100000, b"\xff\xfe", b""):
        assert deliver(client, garbage, "AAAA", webhook_id=str(uuid.uuid4())).status_code == 401


def test_whitespace_around_the_signature_is_allowed_like_any_header_whitespace(demo_app: Flask) -> None:
    client = demo_app.test_client()
    padded = f"  {sign_webhook(BODY, SHOPIFY_SECRET)}\t"
    response = deliver(client, BODY, padded, webhook_id=str(uuid.uuid4()))
    assert response.status_code == 200 and response.get_json()["status"] == "applied"


def test_without_an_app_secret_no_webhook_verifies(db_url: str) -> None:
    app = make_app(db_url, ENV="development", SHOPIFY_API_SECRET="")
    try:
        client = app.test_client()
        for hmac_header in (sign_webhook(BODY, ""), "", None):
            assert deliver(client, BODY, hmac_header, webhook_id=str(uuid.uuid4())).status_code == 401
    finally:
        app.extensions["storefront"].store.close()


# -- Shopify app proxy signature --------------------------------------------------------------------
def proxy_params(timestamp: int | None = None) -> list[tuple[str, str]]:
    when = int(time.time()) if timestamp is None else timestamp
    return [("product", str(COFFEE)), ("shop", SHOP), ("logged_in_customer_id", ""),
            ("path_prefix", "/apps/widgets"), ("timestamp", str(when))]


def signed(params: list[tuple[str, str]], secret: str = SHOPIFY_SECRET) -> str:
    return proxy_query(params, secret)


def _tampered() -> dict[str, str]:
    now = int(time.time())
    good = signed(proxy_params())
    signature = good.rsplit("signature=", 1)[1]
    return {
        "signature missing": encode(proxy_params()),
        "signature empty": encode(proxy_params()) + "&signature=",
        "signature upper-case": encode(proxy_params()) + f"&signature={signature.upper()}",
        "signature truncated": encode(proxy_params()) + f"&signature={signature[:-2]}",
        "signature twice": good + f"&signature={signature}",
        "signed with another secret": signed(proxy_params(), "another-app-secret"),
        "product changed": good.replace(f"product={COFFEE}", "product=7001000000002"),
        "shop changed": good.replace("demo-coffee", "kaffee-haus"),
        "customer id added": good.replace("logged_in_customer_id=", "logged_in_customer_id=42"),
        "parameter added": good + "&locale=fr",
        "parameter removed": good.replace(f"product={COFFEE}&", ""),
        "parameter name re-cased": good.replace("product=", "Product="),
        "91 s old": signed(proxy_params(now - 91)),
        "91 s ahead": signed(proxy_params(now + 91)),
        "a day ahead": signed(proxy_params(now + 86400)),
        "timestamp 0": signed(proxy_params(0)),
        "timestamp not a number": signed([(k, "soon" if k == "timestamp" else v) for k, v in proxy_params()]),
        "timestamp twice": signed(proxy_params() + [("timestamp", str(now))]),
        "signed by Shopify, replayed a day later": signed(proxy_params(now - 86400)),
    }


@pytest.mark.parametrize("name", list(_tampered()))
def test_a_tampered_app_proxy_request_is_401_and_says_nothing_useful(demo_app: Flask, name: str) -> None:
    query = _tampered()[name]
    response = demo_app.test_client().get(f"/proxy/widgets/subscription?{query}")
    assert response.status_code == 401, response.get_data(as_text=True)
    assert response.headers["Cache-Control"] == "no-store"
    expected = proxy_signature([(k, v) for k, v in proxy_params()], SHOPIFY_SECRET)
    assert expected not in response.get_data(as_text=True)


def test_an_app_proxy_request_signed_by_shopify_within_90_s_passes(demo_app: Flask) -> None:
    client = demo_app.test_client()
    for age in (0, 85, -85):
        response = client.get(f"/proxy/widgets/subscription?{signed(proxy_params(int(time.time()) - age))}")
        assert response.status_code == 200, age
        assert response.headers["Cache-Control"].startswith("private")


# -- preview tokens ---------------------------------------------------------------------------------
def _link(client: FlaskClient, kind: str = "subscription", draft: bool = False) -> str:
    client.put(f"/admin/v1/shops/{SHOP}/widgets/{kind}", json={"settings": {}}, headers=AUTH)
    url = client.post(f"/admin/v1/shops/{SHOP}/widgets/{kind}/preview-links", headers=AUTH,
                      json={"draft": draft}).get_json()["url"]
    return url.split("token=")[1]


def test_preview_tokens_grant_one_shop_one_widget_and_the_draft_only_when_signed_so(demo_app: Flask) -> None:
    client = demo_app.test_client()
    published, draft = _link(client), _link(client, draft=True)
    assert client.get(f"/preview/{SHOP}/subscription?token={published}").status_code == 200
    page = f"/preview/{SHOP}/subscription?token="
    changed = draft[:-3] + ("A" if draft[-3] != "A" else "B") + draft[-2:]
    # payload.timestamp.signature: the published grant under the draft link's signature.
    spliced = published.rsplit(".", 2)[0] + "." + ".".join(draft.rsplit(".", 2)[1:])
    foreign = PreviewSigner("another-secret-key-0123456789").sign(
        PreviewGrant(shop=SHOP, kind="subscription", product_id=None, locale=None, draft=True))[0]
    refused = {
        "another shop": f"/preview/kaffee-haus.myshopify.com/subscription?token={published}",
        "another widget": f"/preview/{SHOP}/loyalty?token={published}",
        "a published link on the draft asset": f"/preview/{SHOP}/subscription/draft.js?token={published}",
        "one character changed": page + changed,
        "payload of another token": page + spliced,
        "signed with another key": page + foreign,
    }
    for name, url in refused.items():
        response = client.get(url)
        assert response.status_code == 403, name
        assert response.headers["Cache-Control"] == "no-store"
    for header in ({"Authorization": f"Bearer {published}"}, {"X-Preview-Token": published}):
        assert client.get(f"/preview/{SHOP}/subscription", headers=header).status_code == 401
    assert client.get(f"/preview/{SHOP}/subscription/draft.js?token={draft}").status_code == 200
