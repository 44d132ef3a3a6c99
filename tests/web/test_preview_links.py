"""Signed preview links and the preview page: 15-minute tokens, drafts kept off the shared cache."""

from __future__ import annotations

import time
from urllib.parse import parse_qs, urlsplit

import pytest

from storefront import create_app
from storefront.preview_links import PreviewGrant, PreviewSigner
from tests.conftest import ADMIN_TOKEN, SECRET, make_app, seed

SHOP = "demo-coffee.myshopify.com"
AUTH = {"Authorization": f"Bearer {ADMIN_TOKEN}"}
LINKS = f"/admin/v1/shops/{SHOP}/widgets/subscription/preview-links"


def path_of(url: str) -> str:
    parts = urlsplit(url)
    return f"{parts.path}?{parts.query}"


def test_preview_needs_a_token_in_production(seeded_app) -> None:  # type: ignore[no-untyped-def]
    client = seeded_app.test_client()
    response = client.get(f"/preview/{SHOP}/subscription?product=7001000000001")
    assert response.status_code == 401
    assert response.headers["Cache-Control"] == "no-store"
    forged = client.get(f"/preview/{SHOP}/subscription?token=abc.def.ghi")
    assert forged.status_code == 403


def test_published_preview_link(seeded_app) -> None:  # type: ignore[no-untyped-def]
    client = seeded_app.test_client()
    created = client.post(LINKS, json={"product_id": 7001000000001, "locale": "fr"}, headers=AUTH)
    assert created.status_code == 201
    body = created.get_json()
    assert body["url"].startswith(f"https://widgets.example.test/preview/{SHOP}/subscription?token=")
    expires = time.mktime(time.strptime(body["expires_at"], "%Y-%m-%dT%H:%M:%SZ")) - time.timezone
    assert 14 * 60 < expires - time.time() <= 15 * 60 + 1
    page = client.get(path_of(body["url"]))
    assert page.status_code == 200
    assert page.headers["Cache-Control"] == "no-store"
    html = page.get_data(as_text=True)
    assert f"/v1/shops/{SHOP}/widgets/subscription.js?product=7001000000001&amp;locale=fr" in html
    # The link is for this widget only.
    token = parse_qs(urlsplit(body["url"]).query)["token"][0]
    assert client.get(f"/preview/{SHOP}/bundle?token={token}").status_code == 403
    assert client.get(f"/preview/sakagura.myshopify.com/subscription?token={token}").status_code == 403


def test_draft_preview_shows_the_draft_and_never_touches_the_public_render(seeded_app) -> None:  # type: ignore[no-untyped-def]
    client = seeded_app.test_client()
    public = f"/v1/shops/{SHOP}/widgets/subscription.json?product=7001000000001"
    before = client.get(public).get_json()
    client.put(f"/admin/v1/shops/{SHOP}/widgets/subscription",
               json={"settings": {"labels": {"onetime": "Just once, please"}}}, headers=AUTH)
    link = client.post(LINKS, json={"product_id": 7001000000001, "draft": True}, headers=AUTH).get_json()
    page = client.get(path_of(link["url"])).get_data(as_text=True)
    assert "/draft.js?token=" in page
    token = parse_qs(urlsplit(link["url"]).query)["token"][0]
    draft_js = client.get(f"/preview/{SHOP}/subscription/draft.js?token={token}&product=7001000000001")
    assert draft_js.status_code == 200 and draft_js.headers["Cache-Control"] == "no-store"
    assert "Just once, please" in draft_js.get_data(as_text=True)
    assert f"/preview/{SHOP}/subscription/draft.css?token=" in draft_js.get_data(as_text=True)
    css = client.get(f"/preview/{SHOP}/subscription/draft.css?token={token}")
    assert css.status_code == 200 and css.headers["Content-Type"].startswith("text/css")
    # The draft never leaks into the published render.
    after = client.get(public).get_json()
    assert after == before and "Just once, please" not in str(after)
    # A published link cannot fetch the draft.
    published = client.post(LINKS, json={}, headers=AUTH).get_json()
    published_token = parse_qs(urlsplit(published["url"]).query)["token"][0]
    assert client.get(f"/preview/{SHOP}/subscription/draft.js?token={published_token}").status_code == 403


def test_expired_token_is_403(seeded_app, monkeypatch) -> None:  # type: ignore[no-untyped-def]
    signer = PreviewSigner(SECRET)
    token, _ = signer.sign(PreviewGrant(shop=SHOP, kind="subscription", product_id=None, locale=None,
                                        draft=False))
    real_time = time.time
    monkeypatch.setattr(time, "time", lambda: real_time() + 15 * 60 + 5)
    response = seeded_app.test_client().get(f"/preview/{SHOP}/subscription?token={token}")
    assert response.status_code == 403
    assert "expired" in response.get_json()["message"]


def test_token_signed_with_another_key_is_403(seeded_app) -> None:  # type: ignore[no-untyped-def]
    token, _ = PreviewSigner("another-secret-key-0123456789").sign(
        PreviewGrant(shop=SHOP, kind="subscription", product_id=None, locale=None, draft=True))
    assert seeded_app.test_client().get(f"/preview/{SHOP}/subscription?token={token}").status_code == 403


@pytest.mark.parametrize(("body", "status", "field"), [
    ({"product_id": "7001000000001"}, 422, "product_id"),
    ({"product_id": 1}, 404, "product_id"),
    ({"locale": "french"}, 422, "locale"),
    ({"draft": "yes"}, 422, "draft"),
])
def test_preview_link_validation(seeded_app, body, status, field) -> None:  # type: ignore[no-untyped-def]
    response = seeded_app.test_client().post(LINKS, json=body, headers=AUTH)
    assert response.status_code == status
    assert field in response.get_json()["fields"]


def test_preview_links_need_admin_auth(seeded_app) -> None:  # type: ignore[no-untyped-def]
    assert seeded_app.test_client().post(LINKS, json={}).status_code == 401


def test_development_preview_is_open(tmp_path) -> None:  # type: ignore[no-untyped-def]
    app = create_app({"ENV": "development", "DATABASE_URL": f"sqlite:///{tmp_path / 'dev.db'}"})
    with app.app_context():
        app.extensions["storefront"].store.migrate()
    seed(app)
    page = app.test_client().get(f"/preview/{SHOP}/subscription?product=7001000000001&locale=fr")
    assert page.status_code == 200
    html = page.get_data(as_text=True)
    assert "http://127.0.0.1:8000/v1/shops/demo-coffee.myshopify.com/widgets/subscription.js" in html
    assert "<form" in html and 'action="/cart/add"' in html
    assert app.test_client().get(f"/preview/{SHOP}/subscription?product=1").status_code == 404
    assert app.test_client().get(f"/preview/{SHOP}/upsell").status_code == 404


def test_purge_endpoint(seeded_app) -> None:  # type: ignore[no-untyped-def]
    client = seeded_app.test_client()
    url = f"/v1/shops/{SHOP}/widgets/subscription.js?product=7001000000001"
    client.get(url)
    assert client.get(url).headers["X-Cache"] == "HIT"
    for body in ({}, {"kind": "subscription"}, {"product_id": 7001000000001},
                 {"kind": "subscription", "product_id": 7001000000001}):
        response = client.post(f"/admin/v1/shops/{SHOP}/purge", json=body, headers=AUTH)
        assert response.status_code == 202 and response.headers["Cache-Control"] == "no-store"
        assert client.get(url).headers["X-Cache"] == "MISS"
        assert client.get(url).headers["X-Cache"] == "HIT"
    # Other scopes stay cached.
    client.post(f"/admin/v1/shops/{SHOP}/purge", json={"kind": "loyalty"}, headers=AUTH)
    assert client.get(url).headers["X-Cache"] == "HIT"
    bad = client.post(f"/admin/v1/shops/{SHOP}/purge", json={"kind": "upsell"}, headers=AUTH)
    assert bad.status_code == 422 and "kind" in bad.get_json()["fields"]
    missing = client.post("/admin/v1/shops/nobody.myshopify.com/purge", json={}, headers=AUTH)
    assert missing.status_code == 404


def test_app_without_secret_cannot_start_in_production(tmp_path) -> None:  # type: ignore[no-untyped-def]
    from storefront import SettingsError

    with pytest.raises(SettingsError, match="SECRET_KEY"):
        make_app(f"sqlite:///{tmp_path / 'x.db'}", SECRET_KEY="")
