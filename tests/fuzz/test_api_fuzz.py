"""Schemathesis against the live app: no 500s, and every response conforms to openapi.yaml.

Every operation of /openapi.json (as the app serves it) gets the spec's examples, then a bounded,
derandomized number of generated requests, positive and negative. A hook aims part of them at
the seeded shops and products and gives them valid credentials (webhook HMAC, app proxy signature,
preview tokens; admin calls always carry the token unless the case tests its absence), so the
fuzzing reaches the 200 paths and the validators behind them rather than stopping at a 401 or a
404. Successful writes are undone by re-seeding. Hand-written hostile requests then cover what a
generator rarely produces (oversized, non-JSON and deeply nested bodies, 304s, compressed bodies,
repeated parameters), each checked against the spec the same way.
"""
from __future__ import annotations

import atexit
import gzip
import json
import shutil
import tempfile
import time
from collections.abc import Iterator
from typing import Any

import brotli
import hypothesis
import pytest
import schemathesis
from flask import Flask
from hypothesis import strategies as st
from schemathesis.checks import (
    content_type_conformance,
    not_a_server_error,
    response_headers_conformance,
    response_schema_conformance,
    status_code_conformance,
)
from schemathesis.config import SchemathesisConfig
from schemathesis.core import NotSet
from schemathesis.generation import GenerationMode

from storefront.preview_links import PreviewGrant
from storefront.shopify.signatures import app_proxy_signature, webhook_hmac
from storefront.store import WIDGET_KINDS
from tests.conftest import ADMIN_TOKEN, FIXTURES, SHOPIFY_SECRET, make_app, seed
from tests.fuzz.live_app import build_app, seeded_products
from tests.fuzz.property_settings import SCALE

# Generated requests per operation (positive and negative together), on top of the spec's examples.
MAX_EXAMPLES = 25
# The public endpoints are the attack surface and cheap to generate for; the product document is
# the opposite (a deep schema whose generation dominates the run), so it gets fewer.
EXAMPLES_PER_OPERATION = {
    "GET /v1/shops/{shop}/widgets/{file}": 80,
    "HEAD /v1/shops/{shop}/widgets/{file}": 40,
    "GET /proxy/widgets/{kind}": 50,
    "PUT /admin/v1/shops/{shop}/products/{product_id}": 6,
}
# A request header the aiming hook sets to ask the test to sign the request; never sent.
SIGN_MARKER = "X-Fuzz-Sign"
WEBHOOK_PATH = "/webhooks/shopify"
PROXY_PATH = "/proxy/widgets/{kind}"
PREVIEW_PATHS = ("/preview/{shop}/{kind}", "/preview/{shop}/{kind}/draft.{fmt}")


@schemathesis.check
def admin_errors_carry_fields(ctx: Any, response: Any, case: Any) -> bool | None:
    """The contract's admin error shape: every 4xx/5xx is JSON with an ``error`` and a ``fields`` object."""
    if not case.path.startswith("/admin/") or response.status_code < 400:
        return None
    body = json.loads(response.content)
    assert isinstance(body, dict), f"admin error body is not an object: {body!r}"
    assert isinstance(body.get("error"), str), f"admin error without an error code: {body!r}"
    assert isinstance(body.get("fields"), dict), f"admin error without a fields object: {body!r}"
    return None


@schemathesis.check
def admin_responses_are_not_stored(ctx: Any, response: Any, case: Any) -> bool | None:
    """Every admin response, errors included, says ``Cache-Control: no-store``."""
    if case.path.startswith("/admin/"):
        assert response.headers.get("cache-control") == ["no-store"], response.headers.get("cache-control")
    return None


@schemathesis.check
def never_sets_a_cookie(ctx: Any, response: Any, case: Any) -> bool | None:
    """Responses sit in shared caches: none may carry Set-Cookie."""
    assert "set-cookie" not in response.headers, response.headers["set-cookie"]
    return None


CHECKS = [
    not_a_server_error,
    status_code_conformance,
    response_schema_conformance,
    content_type_conformance,
    response_headers_conformance,
    admin_errors_carry_fields,
    admin_responses_are_not_stored,
    never_sets_a_cookie,
]


def _config() -> SchemathesisConfig:
    # Explicit, so no schemathesis.toml lying around changes what CI generates. Hypothesis
    # settings (examples, seed, deadline) are the tests' own, below.
    return SchemathesisConfig.from_dict({"generation": {"mode": "all", "database": "none"}})


def _aim(case: Any, app: Flask, target: tuple[str, int | None] | None, sign: bool, draft: bool) -> Any:
    """Point a generated case at seeded data and, when ``sign``, give it valid credentials."""
    if target is not None:
        shop, product_id = target
        if "shop" in case.path_parameters:
            case.path_parameters["shop"] = shop
        if product_id is not None and "product_id" in case.path_parameters:
            case.path_parameters["product_id"] = str(product_id)
        if isinstance(case.query, dict):
            if "shop" in case.query:
                case.query["shop"] = shop
            if product_id is not None and "product" in case.query:
                case.query["product"] = str(product_id)
        if case.path == WEBHOOK_PATH:
            case.headers["X-Shopify-Shop-Domain"] = shop
            if product_id is not None and isinstance(case.body, dict):
                case.body["id"] = product_id
        if case.path in PREVIEW_PATHS and sign and case.path_parameters.get("kind") in WIDGET_KINDS:
            grant = PreviewGrant(shop=shop, kind=case.path_parameters["kind"], product_id=product_id,
                                 locale=None, draft=draft)
            token, _ = app.extensions["storefront"].preview_signer.sign(grant)
            case.query = {**(case.query if isinstance(case.query, dict) else {}), "token": token}
    if sign:
        _ask_for_signature(case)
    return case


def _ask_for_signature(case: Any) -> None:
    if case.path in (WEBHOOK_PATH, PROXY_PATH):
        if case.headers is None:
            case.headers = {}
        case.headers[SIGN_MARKER] = "1"


def _load_schema(app: Flask):  # type: ignore[no-untyped-def]
    loaded = schemathesis.openapi.from_wsgi("/openapi.json", app, config=_config())
    targets = [(shop, product_id) for shop, ids in seeded_products().items() for product_id in (None, *ids)]

    @loaded.hook
    def flatmap_case(context: Any, case: Any) -> st.SearchStrategy[Any]:
        return st.tuples(st.none() | st.sampled_from(targets), st.booleans(), st.booleans()).map(
            lambda choice: _aim(case, app, *choice))

    return loaded


def _signed(case: Any, headers: dict[str, str]) -> dict[str, Any]:
    """Extra call arguments that make a webhook or app proxy request authentic."""
    if case.path == WEBHOOK_PATH:
        if isinstance(case.body, NotSet):
            raw = b""
        elif isinstance(case.body, bytes):
            raw = case.body
        else:
            raw = json.dumps(case.body).encode("utf-8")
        headers["X-Shopify-Hmac-Sha256"] = webhook_hmac(raw, SHOPIFY_SECRET)
        headers["Content-Type"] = "application/json"
        return {"data": raw}
    if isinstance(case.query, dict) and all(isinstance(v, str) for v in case.query.values()):
        # The values are sent as they are and decoded back to the same strings by the app.
        case.query["timestamp"] = str(int(time.time()))
        case.query["signature"] = app_proxy_signature(case.query.items(), SHOPIFY_SECRET)
    return {}


def _decode(response: Any) -> None:
    """Validate the identity body: a compressed one must decompress (that is checked here too)."""
    encoding = (response.headers.get("content-encoding") or [""])[0]
    if not response.content or encoding not in ("gzip", "br"):
        return
    response.content = gzip.decompress(response.content) if encoding == "gzip" else brotli.decompress(
        response.content)


_DATABASE_DIR = tempfile.mkdtemp(prefix="storefront-fuzz-")
atexit.register(shutil.rmtree, _DATABASE_DIR, ignore_errors=True)
# Built at import: the operations to parametrize come from the app's own /openapi.json.
APP = build_app(f"sqlite:///{_DATABASE_DIR}/storefront.db")
SCHEMA = _load_schema(APP)
OPERATIONS = [result.ok() for result in SCHEMA.get_all_operations()]


@pytest.fixture(scope="module", autouse=True)
def _close_store() -> Iterator[None]:
    yield
    APP.extensions["storefront"].store.close()


def _exercise(case: Any) -> None:
    headers: dict[str, str] = {}
    if case.path.startswith("/admin/"):
        headers["Authorization"] = f"Bearer {ADMIN_TOKEN}"
    extra: dict[str, Any] = {}
    if case.headers and case.headers.pop(SIGN_MARKER, None):
        extra = _signed(case, headers)
    response = case.call(headers=headers, **extra)
    _decode(response)
    case.validate_response(response, checks=CHECKS, headers=headers)
    if case.method not in ("GET", "HEAD") and response.status_code < 300:
        # Put back what a successful write changed (a deleted shop, a new draft...), so that
        # later cases still find the seeded data; seed() only writes what differs.
        seed(APP)


def _settings(max_examples: int) -> hypothesis.settings:
    # derandomize: CI runs the same requests every time; a failure reproduces locally as is.
    return hypothesis.settings(max_examples=max_examples, deadline=None, derandomize=True, database=None,
                               suppress_health_check=list(hypothesis.HealthCheck),
                               phases=[hypothesis.Phase.explicit, hypothesis.Phase.generate,
                                       hypothesis.Phase.shrink])


# schemathesis' own pytest parametrization is not used: under pytest 9 every item it makes gets
# the same node id (and its lazy loader fails outright), so failures would not name the operation.
# schemathesis' negative-mode generators draw from `random` (which Hypothesis seeds for every
# example, so runs stay reproducible); Hypothesis deprecates that, which is not ours to fix.
@pytest.mark.filterwarnings(
    "ignore:Do not use the `random` module inside strategies:hypothesis.errors.HypothesisDeprecationWarning")
# schemathesis' WSGI transport never closes a response, so Flask's send_file for /static leaves
# its file to the garbage collector.
@pytest.mark.filterwarnings("ignore:Exception ignored in. <_io.FileIO name='[^']*/static/"
                            ":pytest.PytestUnraisableExceptionWarning")
@pytest.mark.parametrize("operation", OPERATIONS, ids=[operation.label for operation in OPERATIONS])
def test_every_response_conforms_to_the_spec(operation):  # type: ignore[no-untyped-def]
    examples = operation.get_strategies_from_examples()
    if examples:
        @_settings(4 * len(examples))
        @hypothesis.given(st.one_of(examples))
        def from_examples(case):  # type: ignore[no-untyped-def]
            _ask_for_signature(case)  # the examples name seeded data; make them authentic too
            _exercise(case)

        from_examples()

    @_settings(max(1, round(SCALE * EXAMPLES_PER_OPERATION.get(operation.label, MAX_EXAMPLES))))
    @hypothesis.given(st.one_of(operation.as_strategy(GenerationMode.POSITIVE),
                                operation.as_strategy(GenerationMode.NEGATIVE)))
    def fuzzed(case):  # type: ignore[no-untyped-def]
        _exercise(case)

    fuzzed()


# -- hand-written hostile requests: statuses a generator rarely reaches, checked against the spec too --

AUTH = {"Authorization": f"Bearer {ADMIN_TOKEN}"}
DEMO_SHOP = "demo-coffee.myshopify.com"
COFFEE = 7001000000001


def _checked(path: str, method: str, status: int, *, case: dict[str, Any] | None = None,
             **call: Any) -> Any:
    """Send one hand-made request, run every check on the response, and insist on ``status``."""
    made = SCHEMA[path][method].Case(**(case or {}))
    response = made.call(**call)
    _decode(response)
    made.validate_response(response, checks=CHECKS, headers=call.get("headers"))
    assert response.status_code == status, response.content[:300]
    return response


SHOP_PATH = "/admin/v1/shops/{shop}"
WIDGET_PATH = "/v1/shops/{shop}/widgets/{file}"
HOSTILE_ADMIN_BODIES = {
    "over 256 KiB": (b'{"name": "' + b"x" * (256 * 1024) + b'"}', "application/json", 413),
    "not JSON by type": (b"{}", "text/plain", 415),
    "truncated JSON": (b'{"name": ', "application/json", 400),
    "NaN": (b'{"name": NaN}', "application/json", 400),
    "not UTF-8": (b'{"name": "\xff"}', "application/json", 400),
    "nested too deeply": (b"[" * 100_000 + b"]" * 100_000, "application/json", 400),
    "not an object": (b"[]", "application/json", 422),
}


@pytest.mark.parametrize("name", sorted(HOSTILE_ADMIN_BODIES))
def test_hostile_admin_bodies_are_refused_as_documented(name):
    raw, content_type, status = HOSTILE_ADMIN_BODIES[name]
    _checked(SHOP_PATH, "PUT", status, case={"path_parameters": {"shop": DEMO_SHOP}},
             headers={**AUTH, "Content-Type": content_type}, data=raw)
    # A refused request changes nothing.
    shop = APP.test_client().get(f"/admin/v1/shops/{DEMO_SHOP}", headers=AUTH).json
    assert shop["name"] == "Demo Coffee Co."


def test_admin_without_a_token_is_a_documented_401():
    response = _checked(SHOP_PATH, "GET", 401, case={"path_parameters": {"shop": DEMO_SHOP}})
    assert response.headers["www-authenticate"] == ['Bearer realm="storefront-admin"']


def test_publishing_without_a_draft_is_a_documented_409():
    shop = "fuzz-fresh.myshopify.com"
    fields = {"name": "Fresh", "currency": "EUR", "money_format": "{{amount}} €", "default_locale": "de",
              "locales": ["de"]}
    _checked(SHOP_PATH, "PUT", 201, case={"path_parameters": {"shop": shop}, "body": fields,
                                          "media_type": "application/json"}, headers=AUTH)
    try:
        _checked("/admin/v1/shops/{shop}/widgets/{kind}/publish", "POST", 409,
                 case={"path_parameters": {"shop": shop, "kind": "loyalty"}}, headers=AUTH)
        _checked("/admin/v1/shops/{shop}/widgets/{kind}/preview-links", "POST", 409,
                 case={"path_parameters": {"shop": shop, "kind": "loyalty"}, "body": {"draft": True},
                       "media_type": "application/json"}, headers=AUTH)
    finally:
        _checked(SHOP_PATH, "DELETE", 204, case={"path_parameters": {"shop": shop}}, headers=AUTH)


def _widget_case(file: str = "subscription.json", **query: Any) -> dict[str, Any]:
    return {"path_parameters": {"shop": DEMO_SHOP, "file": file}, "query": {"product": str(COFFEE), **query}}


@pytest.mark.parametrize("encoding", ["br", "gzip", "identity"])
def test_a_compressed_render_decodes_to_the_documented_model(encoding):
    response = _checked(WIDGET_PATH, "GET", 200, case=_widget_case(), headers={"Accept-Encoding": encoding})
    assert response.headers.get("content-encoding", ["identity"]) == [encoding]
    assert json.loads(response.content)["enabled"] is True


def test_a_matching_etag_is_a_documented_304_in_every_encoding():
    etag = _checked(WIDGET_PATH, "GET", 200, case=_widget_case()).headers["etag"][0]
    for encoding in ("br", "gzip", "identity"):
        response = _checked(WIDGET_PATH, "GET", 304, case=_widget_case(),
                            headers={"If-None-Match": etag, "Accept-Encoding": encoding})
        assert response.content == b""


@pytest.mark.parametrize("hostile", ["repeated", "body on GET", "unknown parameter", "percent-encoded"])
def test_hostile_widget_requests_are_documented_400s(hostile):
    case = _widget_case()
    call: dict[str, Any] = {}
    if hostile == "repeated":
        case["query"]["product"] = [str(COFFEE), str(COFFEE)]
    elif hostile == "body on GET":
        call["data"] = b"x"
    elif hostile == "unknown parameter":
        case["query"]["utm_source"] = "mail"
    else:
        call["params"] = "locale=fr%2DCA"  # sent as is: a cache and the origin would disagree on it
    response = _checked(WIDGET_PATH, "GET", 400, case=case, **call)
    assert hostile != "percent-encoded" or json.loads(response.content)["fields"] == {
        "locale": "malformed value"}
    assert response.headers["cache-control"] == ["no-store"]


def test_an_unknown_shop_is_a_briefly_cached_404():
    response = _checked(WIDGET_PATH, "GET", 404,
                        case={"path_parameters": {"shop": "nobody-here.myshopify.com", "file": "loyalty.js"}})
    assert response.headers["cache-control"] == ["public, max-age=60"]


def test_webhook_deliveries_are_documented_whether_forged_fresh_or_repeated():
    payload = json.loads((FIXTURES / "shopify" / "webhook-products-update.json").read_text(encoding="utf-8"))
    body = json.dumps(payload).encode()
    headers = {"X-Shopify-Topic": "products/update", "X-Shopify-Shop-Domain": DEMO_SHOP,
               "X-Shopify-Webhook-Id": "fuzz-hostile-1", "Content-Type": "application/json"}
    _checked(WEBHOOK_PATH, "POST", 401, headers={**headers, "X-Shopify-Hmac-Sha256": "AAAA"}, data=body)
    signed = {**headers, "X-Shopify-Hmac-Sha256": webhook_hmac(body, SHOPIFY_SECRET)}
    outcomes = [_checked(WEBHOOK_PATH, "POST", 200, headers=signed, data=body).content for _ in range(2)]
    seed(APP)
    assert [json.loads(outcome)["status"] for outcome in outcomes] == ["applied", "duplicate"]


def test_a_stale_app_proxy_signature_is_a_documented_401():
    query = {"shop": DEMO_SHOP, "path_prefix": "/apps/widgets", "timestamp": str(int(time.time()) - 3600),
             "product": str(COFFEE)}
    query["signature"] = app_proxy_signature(query.items(), SHOPIFY_SECRET)
    response = _checked(PROXY_PATH, "GET", 401, case={"path_parameters": {"kind": "subscription"},
                                                      "query": query})
    assert json.loads(response.content)["fields"] == {"signature": "timestamp outside the allowed window"}


# -- a finding, kept as a regression test --------------------------------------------------------
# The fuzzer found the hot path answering ?product=B (and ?product=A&utm_source=x, a 400) with
# product A's render when RAW_URI held no query string; hot_path.raw_request_target fixed it.


def test_the_hot_path_never_answers_one_query_with_anothers_render(sqlite_url):
    app = make_app(sqlite_url)  # no gunicorn-like environ here: werkzeug's test client as it is
    seed(app)
    client = app.test_client()
    url = f"/v1/shops/{DEMO_SHOP}/widgets/subscription.json"
    try:
        assert client.get(url, query_string=f"product={COFFEE}").status_code == 200
        other = client.get(url, query_string="product=7001000000005")
        assert json.loads(other.get_data())["product"]["id"] == 7001000000005
        assert client.get(url, query_string=f"product={COFFEE}&utm_source=x").status_code == 400
    finally:
        app.extensions["storefront"].store.close()
