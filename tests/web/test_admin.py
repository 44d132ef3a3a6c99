"""The admin API on SQLite and MySQL: every endpoint, every error status, atomic and concurrent writes."""

from __future__ import annotations

import copy
import json
import threading

import pytest

from tests.conftest import ADMIN_TOKEN, load_fixture, make_app

SHOP = "demo-coffee.myshopify.com"
SHOP_BODY = {"name": "Demo Coffee Co.", "currency": "USD", "money_format": "${{amount}}",
             "default_locale": "en", "locales": ["en", "fr"]}
COFFEE = load_fixture("products/coffee-three-plans.json")
COFFEE_ID = COFFEE["id"]


def put_shop(client, auth, shop=SHOP, body=None):  # type: ignore[no-untyped-def]
    return client.put(f"/admin/v1/shops/{shop}", json=body or SHOP_BODY, headers=auth)


def put_coffee(client, auth):  # type: ignore[no-untyped-def]
    return client.put(f"/admin/v1/shops/{SHOP}/products/{COFFEE_ID}", json=COFFEE, headers=auth)


def assert_error(response, status: int, code: str | None = None, field: str | None = None) -> dict:  # type: ignore[no-untyped-def]
    assert response.status_code == status, response.get_data(as_text=True)
    assert response.headers["Cache-Control"] == "no-store"
    body = response.get_json()
    assert set(body) >= {"error", "message", "fields"}
    if code:
        assert body["error"] == code
    if field:
        assert field in body["fields"], body["fields"]
    return body


# -- auth -------------------------------------------------------------------------------------
@pytest.mark.parametrize("header", [
    None,
    "",
    "Bearer",
    "Bearer ",
    f"Basic {ADMIN_TOKEN}",
    "Bearer " + "x" * len(ADMIN_TOKEN),          # wrong token of the right length
    "Bearer " + ADMIN_TOKEN[:-1],                  # a prefix
    "Bearer " + ADMIN_TOKEN + "x",                 # longer
    "Bearer " + ADMIN_TOKEN.upper(),
])
def test_admin_rejects_missing_or_wrong_tokens(client, header) -> None:  # type: ignore[no-untyped-def]
    headers = {} if header is None else {"Authorization": header}
    response = client.get(f"/admin/v1/shops/{SHOP}", headers=headers)
    assert response.status_code == 401
    assert response.get_json()["error"] == "unauthorized"
    assert response.headers["Cache-Control"] == "no-store"
    assert ADMIN_TOKEN not in response.get_data(as_text=True)


def test_unauthorized_write_changes_nothing(client, auth) -> None:  # type: ignore[no-untyped-def]
    response = client.put(f"/admin/v1/shops/{SHOP}", json=SHOP_BODY, headers={"Authorization": "Bearer nope"})
    assert response.status_code == 401
    assert client.get(f"/admin/v1/shops/{SHOP}", headers=auth).status_code == 404


def test_tokens_never_logged(client, auth, caplog) -> None:  # type: ignore[no-untyped-def]
    caplog.set_level("DEBUG")
    put_shop(client, auth)
    client.get(f"/admin/v1/shops/{SHOP}", headers={"Authorization": "Bearer wrong-token-but-long-enough"})
    assert ADMIN_TOKEN not in caplog.text
    assert "wrong-token-but-long-enough" not in caplog.text


# -- shops ------------------------------------------------------------------------------------
def test_shop_create_read_update_delete(client, auth) -> None:  # type: ignore[no-untyped-def]
    created = put_shop(client, auth)
    assert created.status_code == 201
    assert created.headers["Cache-Control"] == "no-store"
    shop = created.get_json()
    assert shop["shop"] == SHOP and shop["locales"] == ["en", "fr"] and shop["money_format"] == "${{amount}}"

    updated = put_shop(client, auth, body={**SHOP_BODY, "name": "Renamed"})
    assert updated.status_code == 200
    assert updated.get_json()["name"] == "Renamed"
    assert updated.get_json()["version"] > shop["version"]

    fetched = client.get(f"/admin/v1/shops/{SHOP}", headers=auth)
    assert fetched.status_code == 200 and fetched.get_json()["name"] == "Renamed"

    assert client.delete(f"/admin/v1/shops/{SHOP}", headers=auth).status_code == 204
    assert_error(client.get(f"/admin/v1/shops/{SHOP}", headers=auth), 404, "not_found")
    assert_error(client.delete(f"/admin/v1/shops/{SHOP}", headers=auth), 404)


@pytest.mark.parametrize("shop", [
    "Demo-Coffee.myshopify.com", "demo.example.com", "demo-coffee.myshopify.com.", "-demo.myshopify.com",
    "a" * 62 + ".myshopify.com", "demo_coffee.myshopify.com",
])
def test_bad_shop_domain_is_400(client, auth, shop) -> None:  # type: ignore[no-untyped-def]
    assert_error(put_shop(client, auth, shop=shop), 400, field="shop")


def test_percent_encoded_shop_is_400(client, auth) -> None:  # type: ignore[no-untyped-def]
    assert_error(client.get("/admin/v1/shops/demo%0A.myshopify.com", headers=auth), 400, field="shop")


@pytest.mark.parametrize(("change", "field"), [
    ({"currency": "usd"}, "currency"),
    ({"money_format": "{{ amount_with_dots }}"}, "money_format"),
    ({"money_format": "no placeholder"}, "money_format"),
    ({"default_locale": "english"}, "default_locale"),
    ({"locales": ["fr"]}, "locales"),
    ({"locales": []}, "locales"),
    ({"name": ""}, "name"),
    ({"name": 5}, "name"),
])
def test_shop_validation_is_422_and_changes_nothing(client, auth, change, field) -> None:  # type: ignore[no-untyped-def]
    put_shop(client, auth)
    before = client.get(f"/admin/v1/shops/{SHOP}", headers=auth).get_json()
    body = assert_error(put_shop(client, auth, body={**SHOP_BODY, **change}), 422, "validation_failed")
    assert field in body["fields"]
    assert client.get(f"/admin/v1/shops/{SHOP}", headers=auth).get_json() == before


def test_shop_missing_fields_named(client, auth) -> None:  # type: ignore[no-untyped-def]
    body = assert_error(put_shop(client, auth, body={"name": "x"}), 422)
    assert {"currency", "money_format", "default_locale", "locales"} <= set(body["fields"])


def test_malformed_json_is_400(client, auth) -> None:  # type: ignore[no-untyped-def]
    response = client.put(f"/admin/v1/shops/{SHOP}", data=b'{"name": ', headers=auth,
                          content_type="application/json")
    assert_error(response, 400, field="body")


def test_non_utf8_json_is_400(client, auth) -> None:  # type: ignore[no-untyped-def]
    response = client.put(f"/admin/v1/shops/{SHOP}", data=b'{"name": "\xff"}', headers=auth,
                          content_type="application/json")
    assert_error(response, 400)


def test_non_json_content_type_is_415(client, auth) -> None:  # type: ignore[no-untyped-def]
    response = client.put(f"/admin/v1/shops/{SHOP}", data=json.dumps(SHOP_BODY), headers=auth,
                          content_type="text/plain")
    assert_error(response, 415)
    assert client.get(f"/admin/v1/shops/{SHOP}", headers=auth).status_code == 404


def test_300_kb_body_is_413_and_changes_nothing(client, auth) -> None:  # type: ignore[no-untyped-def]
    big = {**SHOP_BODY, "padding": "x" * 300_000}
    assert_error(put_shop(client, auth, body=big), 413, field="body")
    assert client.get(f"/admin/v1/shops/{SHOP}", headers=auth).status_code == 404


def test_json_that_is_not_an_object_is_422(client, auth) -> None:  # type: ignore[no-untyped-def]
    assert_error(put_shop(client, auth, body=[1, 2]), 422)


# -- products ---------------------------------------------------------------------------------
def test_product_create_update_delete(client, auth) -> None:  # type: ignore[no-untyped-def]
    put_shop(client, auth)
    created = put_coffee(client, auth)
    assert created.status_code == 201
    assert created.get_json()["product"]["title"] == COFFEE["title"]
    changed = copy.deepcopy(COFFEE)
    changed["title"] = "Coffee, renamed"
    updated = client.put(f"/admin/v1/shops/{SHOP}/products/{COFFEE_ID}", json=changed, headers=auth)
    assert updated.status_code == 200
    assert updated.get_json()["version"] > created.get_json()["version"]
    fetched = client.get(f"/admin/v1/shops/{SHOP}/products/{COFFEE_ID}", headers=auth)
    assert fetched.get_json()["product"]["title"] == "Coffee, renamed"
    assert client.delete(f"/admin/v1/shops/{SHOP}/products/{COFFEE_ID}", headers=auth).status_code == 204
    assert_error(client.delete(f"/admin/v1/shops/{SHOP}/products/{COFFEE_ID}", headers=auth), 404)


def test_every_fixture_product_is_accepted(client, auth) -> None:  # type: ignore[no-untyped-def]
    put_shop(client, auth)
    for name in ("coffee-three-plans", "mug-no-plans", "razor-subscription-only", "sake-jpy",
                 "snack-box-bundle", "tea-fixed-price-plan", "vitamins-first-order-offer"):
        product = load_fixture(f"products/{name}.json")
        response = client.put(f"/admin/v1/shops/{SHOP}/products/{product['id']}", json=product, headers=auth)
        assert response.status_code == 201, (name, response.get_json())


def test_product_for_unknown_shop_is_404(client, auth) -> None:  # type: ignore[no-untyped-def]
    assert_error(put_coffee(client, auth), 404, field="shop")


def test_product_id_mismatch_and_bad_ids(client, auth) -> None:  # type: ignore[no-untyped-def]
    put_shop(client, auth)
    assert_error(client.put(f"/admin/v1/shops/{SHOP}/products/1", json=COFFEE, headers=auth), 422, field="id")
    assert_error(client.put(f"/admin/v1/shops/{SHOP}/products/abc", json=COFFEE, headers=auth), 400,
                 field="product_id")
    assert_error(client.put(f"/admin/v1/shops/{SHOP}/products/{'9' * 21}", json=COFFEE, headers=auth), 400)


@pytest.mark.parametrize(("mutate", "path"), [
    (lambda p: p["variants"][0].__setitem__("price", "18.00"), "variants[0].price"),
    (lambda p: p.pop("variants"), "variants"),
    (lambda p: p["variants"][1]["selling_plan_allocations"][0].__setitem__("selling_plan_id", 1),
     "variants[1].selling_plan_allocations[0]"),
    (lambda p: p["selling_plan_groups"][0]["selling_plans"][0]["price_adjustments"][0].__setitem__(
        "value_type", "bogus"), "selling_plan_groups[0].selling_plans[0].price_adjustments[0].value_type"),
    (lambda p: p.__setitem__("requires_selling_plan", "no"), "requires_selling_plan"),
])
def test_product_shape_errors_name_the_path(client, auth, mutate, path) -> None:  # type: ignore[no-untyped-def]
    put_shop(client, auth)
    product = copy.deepcopy(COFFEE)
    mutate(product)
    body = assert_error(client.put(f"/admin/v1/shops/{SHOP}/products/{COFFEE_ID}", json=product,
                                   headers=auth), 422)
    assert any(key.startswith(path) for key in body["fields"]), body["fields"]
    assert client.get(f"/admin/v1/shops/{SHOP}/products/{COFFEE_ID}", headers=auth).status_code == 404


def test_deleting_shop_removes_products_and_widgets(client, auth) -> None:  # type: ignore[no-untyped-def]
    put_shop(client, auth)
    put_coffee(client, auth)
    client.put(f"/admin/v1/shops/{SHOP}/widgets/subscription", json={"settings": {}}, headers=auth)
    client.delete(f"/admin/v1/shops/{SHOP}", headers=auth)
    put_shop(client, auth)
    assert client.get(f"/admin/v1/shops/{SHOP}/products/{COFFEE_ID}", headers=auth).status_code == 404
    widget = client.get(f"/admin/v1/shops/{SHOP}/widgets/subscription", headers=auth).get_json()
    assert widget == {"published": None, "draft": None}


# -- widgets ----------------------------------------------------------------------------------
def test_widget_draft_publish_rollback_versions(client, auth) -> None:  # type: ignore[no-untyped-def]
    put_shop(client, auth)
    url = f"/admin/v1/shops/{SHOP}/widgets/subscription"
    assert client.get(url, headers=auth).get_json() == {"published": None, "draft": None}

    draft = client.put(url, json={"settings": {"template": "button_group", "colors": {"accent": "#ff0000"}}},
                       headers=auth)
    assert draft.status_code == 200
    settings = draft.get_json()["settings"]
    assert settings["template"] == "button_group"
    assert settings["colors"] == {"accent": "#ff0000", "background": "#ffffff", "text": "#1a1a1a",
                                  "border": "#d4d4d4"}
    assert settings["labels"]["onetime"] == "One-time purchase"
    assert settings["enabled"] is True

    # A second partial update merges onto the draft.
    draft2 = client.put(url, json={"settings": {"show_details": False}}, headers=auth).get_json()["settings"]
    assert draft2["template"] == "button_group" and draft2["show_details"] is False

    assert client.post(f"{url}/publish", headers=auth).get_json() == {"version": 1}
    state = client.get(url, headers=auth).get_json()
    assert state["published"]["version"] == 1
    assert state["published"]["settings"]["template"] == "button_group"

    client.put(url, json={"settings": {"template": "checkbox"}}, headers=auth)
    assert client.post(f"{url}/publish", headers=auth).get_json() == {"version": 2}
    rolled = client.post(f"{url}/rollback", json={"version": 1}, headers=auth)
    assert rolled.status_code == 200 and rolled.get_json() == {"version": 3}
    state = client.get(url, headers=auth).get_json()
    assert state["published"]["version"] == 3
    assert state["published"]["settings"]["template"] == "button_group"

    versions = client.get(f"{url}/versions", headers=auth).get_json()
    assert [v["version"] for v in versions] == [1, 2, 3]
    assert all(v["published_at"].endswith("Z") for v in versions)


def test_publish_without_draft_is_409(client, auth) -> None:  # type: ignore[no-untyped-def]
    put_shop(client, auth)
    response = client.post(f"/admin/v1/shops/{SHOP}/widgets/loyalty/publish", headers=auth)
    assert_error(response, 409, "conflict")


def test_rollback_to_missing_version_is_404(client, auth) -> None:  # type: ignore[no-untyped-def]
    put_shop(client, auth)
    url = f"/admin/v1/shops/{SHOP}/widgets/subscription"
    client.put(url, json={"settings": {}}, headers=auth)
    client.post(f"{url}/publish", headers=auth)
    assert_error(client.post(f"{url}/rollback", json={"version": 7}, headers=auth), 404, field="version")
    assert_error(client.post(f"{url}/rollback", json={"version": 0}, headers=auth), 422, field="version")
    assert_error(client.post(f"{url}/rollback", json={}, headers=auth), 422, field="version")
    assert [v["version"] for v in client.get(f"{url}/versions", headers=auth).get_json()] == [1]


def test_unknown_kind_is_404(client, auth) -> None:  # type: ignore[no-untyped-def]
    put_shop(client, auth)
    assert_error(client.get(f"/admin/v1/shops/{SHOP}/widgets/upsell", headers=auth), 404)
    response = client.put(f"/admin/v1/shops/{SHOP}/widgets/upsell", json={"settings": {}}, headers=auth)
    assert_error(response, 404)


def test_widget_for_unknown_shop_is_404(client, auth) -> None:  # type: ignore[no-untyped-def]
    assert_error(client.get(f"/admin/v1/shops/{SHOP}/widgets/subscription", headers=auth), 404)
    assert_error(client.put(f"/admin/v1/shops/{SHOP}/widgets/subscription", json={"settings": {}},
                            headers=auth), 404)


@pytest.mark.parametrize(("kind", "settings", "field"), [
    ("subscription", {"colors": {"accent": "red"}}, "settings.colors.accent"),
    ("subscription", {"colors": {"accent": "#12345"}}, "settings.colors.accent"),
    ("subscription", {"template": "dropdown"}, "settings.template"),
    ("subscription", {"learn_more_url": "http://example.com/x"}, "settings.learn_more_url"),
    ("subscription", {"learn_more_url": "javascript:alert(1)"}, "settings.learn_more_url"),
    ("subscription", {"labels": {"subscribe": "Save {percent}"}}, "settings.labels.subscribe"),
    ("subscription", {"labels": {"onetime": "x" * 201}}, "settings.labels.onetime"),
    ("subscription", {"labels": {"details_body": "x" * 1001}}, "settings.labels.details_body"),
    ("subscription", {"labels": {"nonsense": "x"}}, "settings.labels.nonsense"),
    ("subscription", {"translations": {"fr": {"nonsense": "x"}}}, "settings.translations.fr.nonsense"),
    ("subscription", {"translations": {"french": {"onetime": "x"}}}, "settings.translations.french"),
    ("subscription", {"enabled": "yes"}, "settings.enabled"),
    ("subscription", {"unknown_setting": 1}, "settings.unknown_setting"),
    ("bundle", {"labels": {"add_more": "Add {count} more"}}, "settings.labels.add_more"),
    ("loyalty", {"join_url": "ftp://example.com"}, "settings.join_url"),
    ("loyalty", {"tiers": [{"name": "x", "min_points": 0, "perks": []}] * 11}, "settings.tiers"),
    ("loyalty", {"points_per_unit": -1}, "settings.points_per_unit"),
])
def test_widget_validation_is_422_and_changes_nothing(client, auth, kind, settings, field) -> None:  # type: ignore[no-untyped-def]
    put_shop(client, auth)
    url = f"/admin/v1/shops/{SHOP}/widgets/{kind}"
    body = assert_error(client.put(url, json={"settings": settings}, headers=auth), 422, "validation_failed")
    assert any(key.startswith(field) for key in body["fields"]), body["fields"]
    assert client.get(url, headers=auth).get_json() == {"published": None, "draft": None}


def test_twenty_one_translation_locales_rejected(client, auth) -> None:  # type: ignore[no-untyped-def]
    put_shop(client, auth)
    locales = [f"{chr(97 + i // 26)}{chr(97 + i % 26)}" for i in range(21)]
    settings = {"translations": {loc: {"onetime": "x"} for loc in locales}}
    assert_error(client.put(f"/admin/v1/shops/{SHOP}/widgets/subscription", json={"settings": settings},
                            headers=auth), 422, field="settings.translations")


def test_settings_body_must_hold_settings_object(client, auth) -> None:  # type: ignore[no-untyped-def]
    put_shop(client, auth)
    assert_error(client.put(f"/admin/v1/shops/{SHOP}/widgets/subscription", json={"template": "x"},
                            headers=auth), 422)


def test_concurrent_publishes_are_gap_free_and_unique(database_url) -> None:  # type: ignore[no-untyped-def]
    app = make_app(database_url)
    auth = {"Authorization": f"Bearer {ADMIN_TOKEN}"}
    client = app.test_client()
    put_shop(client, auth)
    url = f"/admin/v1/shops/{SHOP}/widgets/subscription"
    client.put(url, json={"settings": {}}, headers=auth)
    results: list[int] = []
    errors: list[str] = []

    def publish_many() -> None:
        own = app.test_client()
        for _ in range(5):
            response = own.post(f"{url}/publish", headers=auth)
            if response.status_code == 200:
                results.append(response.get_json()["version"])
            else:
                errors.append(response.get_data(as_text=True))

    threads = [threading.Thread(target=publish_many) for _ in range(6)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert errors == []
    assert sorted(results) == list(range(1, 31))
    versions = [v["version"] for v in client.get(f"{url}/versions", headers=auth).get_json()]
    assert versions == list(range(1, 31))


def test_every_admin_response_is_no_store(client, auth) -> None:  # type: ignore[no-untyped-def]
    for response in (put_shop(client, auth), put_coffee(client, auth),
                     client.get(f"/admin/v1/shops/{SHOP}/widgets/bundle", headers=auth),
                     client.get(f"/admin/v1/shops/{SHOP}/nothing", headers=auth)):
        assert response.headers["Cache-Control"] == "no-store"
        assert "Set-Cookie" not in response.headers
