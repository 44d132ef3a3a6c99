"""The bundle builder and loyalty banner: models and markup for every demo shop."""

from __future__ import annotations

import pytest

from storefront.render import build_model
from tests.render.fixture_data import EUR, JPY, PRODUCTS, SHOPS, USD, product, render, settings
from tests.render.html_tree import parse


def bundle_tree(item=None, shop=USD, **changes):
    return parse(render("bundle", "html", product=item or PRODUCTS["snack-box-bundle"], shop=shop,
                        widget_settings=settings("bundle", **changes)))


@pytest.mark.parametrize("shop", SHOPS, ids=[s["currency"] for s in SHOPS])
def test_bundle_markup(shop):
    document = bundle_tree(shop=shop)
    root = document.find("div", data_sfw_kind="bundle")
    assert root.find("h2").clean_text() == "Build your box"
    fieldsets = root.find_all("fieldset")
    assert [f.find("legend").clean_text() for f in fieldsets] == ["Savory Choose 2-4", "Sweet Choose 1-4"]
    ids = [e.attrs["id"] for e in document.iter() if "id" in e.attrs]
    assert len(ids) == len(set(ids)) == 4
    prices = {"USD": "$6.00", "EUR": "6,00 €", "JPY": "¥6"}[shop["currency"]]
    first = fieldsets[0].find("li")
    assert first.find("span", class_="sfw-price").clean_text() == prices
    add, remove = (first.find("button", data_sfw_step="1"), first.find("button", data_sfw_step="-1"))
    # Quantity buttons: named with the item and its price, described by the count they change.
    assert add.attrs["aria-label"] == f"Add one Sea Salt Crisps, {prices}"
    assert remove.attrs["aria-label"] == f"Remove one Sea Salt Crisps, {prices}"
    assert add.attrs["aria-describedby"] == remove.attrs["aria-describedby"] in ids
    assert remove.attrs["aria-disabled"] == "true"
    assert root.find("p", role="status").clean_text() == "Add 6 more to continue"
    assert root.find("button", data_sfw="add").attrs["aria-disabled"] == "true"
    for element in document.iter():
        assert "style" not in element.attrs and not [a for a in element.attrs if a.startswith("on")]


def test_bundle_model_and_client_data():
    model = build_model("bundle", shop=USD, settings=settings("bundle"), product=PRODUCTS["snack-box-bundle"],
                        locale="en")
    assert model["items_count"] == 6 and model["discount_percentage"] == 10
    assert [(c["min"], c["max"], c["range_label"]) for c in model["collections"]] == [
        (2, 4, "Choose 2-4"), (1, 4, "Choose 1-4")]
    assert [i["variant_id"] for i in model["collections"][1]["products"]] == [42011000000003, 42011000000004]
    script = render("bundle", "js", product=PRODUCTS["snack-box-bundle"])
    assert '"items_count":6' in script and '"variant_ids":[42011000000001,42011000000002]' in script
    assert '"title":"Build Your Snack Box"' in script
    assert '"short":"Savory: Choose 2-4"' in script


def test_bundle_labels_are_translated_and_filled():
    widget = settings("bundle", translations={"de": {"choose_range": "Wähle {min} bis {max}",
                                                      "add_more": "Noch {remainder}"}})
    document = parse(render("bundle", "html", product=PRODUCTS["snack-box-bundle"], shop=EUR,
                            widget_settings=widget))
    assert document.find("span", class_="sfw-range").clean_text() == "Wähle 2 bis 4"
    assert document.find("p", role="status").clean_text() == "Noch 6"


def test_bundle_images_are_https_only():
    item = product("snack-box-bundle")
    item["bundle"]["collections"][0]["products"][0]["image_url"] = "http://cdn.example.com/a.png"
    item["bundle"]["collections"][0]["products"][1]["image_url"] = None
    images = bundle_tree(item).find_all("img")
    assert [i.attrs["src"] for i in images] == ["https://cdn.example.com/s/choc.png",
                                                "https://cdn.example.com/s/oat.png"]
    assert all(i.attrs["alt"] == "" and i.attrs["width"] == "48" for i in images)


def loyalty_tree(shop=USD, **changes):
    return parse(render("loyalty", "html", shop=shop, widget_settings=settings("loyalty", **changes)))


@pytest.mark.parametrize(("shop", "amount"), [(USD, "$1.00"), (EUR, "1,00 €"), (JPY, "¥1")])
def test_loyalty_earn_rate_uses_one_unit_of_the_shop_currency(shop, amount):
    document = loyalty_tree(shop, points_per_unit=2)
    assert document.find("p", class_="sfw-earn").clean_text() == f"Earn 2 points for every {amount} spent"


def test_loyalty_signup_bonus_is_hidden_when_zero():
    assert loyalty_tree(signup_bonus=0).find_all("p", class_="sfw-signup") == []
    signup = loyalty_tree(signup_bonus=150).find("p", class_="sfw-signup")
    assert signup.clean_text() == "Join and get 150 points"


def test_loyalty_tiers_and_join_link():
    tiers = [{"name": "Bean", "min_points": 0, "perks": ["Birthday treat"]},
             {"name": "Roast", "min_points": 500, "perks": ["Free shipping", "Early access"]},
             {"name": "Plain", "min_points": 900, "perks": []}]
    document = loyalty_tree(tiers=tiers, join_url="https://shop.example.com/account/register")
    items = document.find("ul", class_="sfw-tiers").children
    tiers_html = [c for c in items if not isinstance(c, str)]
    assert [t.find("span", class_="sfw-tier").clean_text() for t in tiers_html] == ["Bean", "Roast", "Plain"]
    assert [t.find("span", class_="sfw-from").clean_text() for t in tiers_html] == [
        "0+ points", "500+ points", "900+ points"]
    perks = tiers_html[1].find("ul").find_all("li")
    assert [li.clean_text() for li in perks] == ["Free shipping", "Early access"]
    assert tiers_html[2].find_all("ul") == []
    link = document.find("a", class_="sfw-join")
    assert link.attrs["href"] == "https://shop.example.com/account/register"
    assert link.clean_text() == "Join now"


@pytest.mark.parametrize("url", ["http://shop.example.com/join", "javascript:alert(1)", None])
def test_loyalty_join_link_is_https_only(url):
    assert loyalty_tree(join_url=url).find_all("a") == []


def test_loyalty_without_tiers_has_no_list_and_fractional_points_read_naturally():
    document = loyalty_tree(points_per_unit=1.5)
    assert document.find_all("ul") == []
    assert document.find("p", class_="sfw-earn").clean_text() == "Earn 1.5 points for every $1.00 spent"
