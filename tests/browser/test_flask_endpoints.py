"""A browser page whose widget comes from the Flask app's real /v1 endpoints (SQLite, demo data)."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from storefront import create_app
from storefront.demo import seed_demo
from tests.browser.site import FlaskWidgets, WidgetSite, load_product, page, product_form, script_tag

pytestmark = pytest.mark.browser

COFFEE = load_product("coffee-three-plans")
SHOP = "demo-coffee.myshopify.com"


@pytest.fixture
def flask_site(tmp_path: Path) -> Iterator[WidgetSite]:
    with WidgetSite() as site:
        app = create_app({"ENV": "development", "DATABASE_URL": f"sqlite:///{tmp_path / 'storefront.db'}",
                          "PUBLIC_BASE_URL": site.origin})
        store = app.extensions["storefront"].store
        store.migrate()
        seed_demo(store)
        site.widgets = FlaskWidgets(app)
        yield site


def test_widget_from_the_real_endpoints_mounts_and_writes_the_plan(flask_site, watched):
    js = flask_site.widget_url("subscription", "js", SHOP, product=COFFEE["id"], locale="fr")
    body = product_form(COFFEE) + "\n<p>Below.</p>"
    watched.goto(flask_site.add_page("/product", page("Coffee", body, head=script_tag(js))))
    widget = '[data-storefront-widget="subscription"] > .sfw-subscription'
    watched.page.wait_for_selector(widget)
    # The demo catalog's French labels, through the real settings, store and cache.
    assert watched.page.inner_text(f"{widget} label").startswith("Achat unique")
    watched.page.click(f'{widget} [data-sfw="subscribe"] + label')
    watched.page.select_option(f'{widget} [data-sfw="plan"]', "690001003")
    assert watched.page.eval_on_selector("form input[name=selling_plan]", "i => i.value") == "690001003"
    assert watched.page.locator('link[rel="stylesheet"][href*="/widgets/subscription.css"]').count() == 1
    watched.assert_clean()
