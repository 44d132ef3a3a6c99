"""Hostile merchant text in every field, through the admin API, into every render and context.

Each payload of ``hostile_shop.PAYLOADS`` is set into every merchant-controlled field (shop,
products, bundle, labels, translations, tiers, URLs, colours). Validation may refuse it (a 422
naming exactly that field); whatever it accepts is stored as typed and must come out as inert
text in the .json model, the .html fragment, the .js (inside its JSON data literals only), the
.css (never) and the preview page; and, mounted in headless Chromium on a strict-CSP page and on
a page with no CSP at all, must not run, open a dialog, add an element or an event handler, or
trip the policy.
"""

from __future__ import annotations

import dataclasses
import html
from collections.abc import Callable, Iterator
from typing import Any

import pytest
from flask import Flask

from tests.browser.site import FlaskWidgets, WidgetSite, page, script_tag
from tests.conftest import make_app
from tests.security.chromium_thread import ChromiumThread, watched_page
from tests.security.hostile_shop import (
    ALWAYS_REJECTED,
    FIELDS,
    KINDS,
    PAYLOADS,
    SHOP,
    Field,
    body,
    plant,
    put,
)
from tests.security.inert import (
    PRODUCT_OF,
    assert_renders_inert,
    assert_shown,
    assert_stored_exactly,
    preview_path,
)


# -- through HTTP: validation, storage and every render ---------------------------------------------
@pytest.mark.parametrize("name", list(PAYLOADS))
def test_every_field_refuses_or_stores_and_renders_inert(fresh_app: Flask, name: str) -> None:
    client = fresh_app.test_client()
    planted = plant(client, PAYLOADS[name])
    if name in ALWAYS_REJECTED:
        assert planted.accepted == {}, sorted(field.key for field in planted.accepted)
        return
    assert planted.accepted, "no field took the payload: nothing below would be tested"

    assert_stored_exactly(client, planted)
    assert_renders_inert(client, planted)


@pytest.mark.parametrize("field", [f for f in FIELDS if f.url], ids=lambda f: f.key)
@pytest.mark.parametrize("url", [
    "javascript:alert(1)",
    "JavaScript:alert(1)",
    " javascript:alert(1)",
    "java\tscript:alert(1)",
    "data:text/html,<script>alert(1)</script>",
    "vbscript:msgbox(1)",
    "http://example.com/",
    "//evil.example/",
    "https:evil.example",
    "https:///evil.example",
    "https://user:pass@example.com/",
    "https://example.com/\"onmouseover=\"alert(1)",
    "https://example.com/<script>",
    "https://example.com\\@evil.example/",
])
def test_url_settings_take_https_urls_only(fresh_app: Flask, field: Field, url: str) -> None:
    client = fresh_app.test_client()
    for target in ("shop", field.target):
        put(client, target, body(target, {}))
    response = put(client, field.target, body(field.target, {field: url}))
    assert response.status_code == 422, url
    assert list(response.get_json()["fields"]) and all(
        field.error_path.fullmatch(path) for path in response.get_json()["fields"])


# -- in the browser: a strict-CSP page, a page with no CSP, and the preview page --------------------
# Inserts each .html fragment the way a theme's "fetch and insert" might at its most careless:
# createContextualFragment runs any <script> the markup holds, unlike innerHTML.
FRAGMENT_LOADER = b"""
document.querySelectorAll('[data-fragment]').forEach(function (box) {
  fetch(box.getAttribute('data-fragment')).then(function (r) { return r.text(); }).then(function (text) {
    box.appendChild(document.createRange().createContextualFragment(text));
    box.setAttribute('data-loaded', '');
  });
});
"""

# Everything on the page that a payload could have turned into script, markup or a navigation.
DOM_SCAN = """
(allowedScripts) => {
  const problems = [], strings = [];
  const walker = document.createTreeWalker(document.documentElement, NodeFilter.SHOW_TEXT);
  while (walker.nextNode()) strings.push(walker.currentNode.data);
  const urlAttributes = ['href', 'src', 'action', 'formaction', 'poster', 'background', 'xlink:href', 'data'];
  for (const el of document.querySelectorAll('*')) {
    const tag = el.tagName.toLowerCase();
    for (const attr of el.attributes) {
      strings.push(attr.value);
      if (/^on/i.test(attr.name)) problems.push(`<${tag} ${attr.name}>`);
      if (attr.name === 'style') problems.push(`<${tag} style>`);
      const bare = attr.value.replace(/[\\u0000-\\u0020\\u200b-\\u200f\\u202a-\\u202e\\ufeff]/g, '');
      if (urlAttributes.includes(attr.name) && /^(javascript|vbscript):/i.test(bare)) {
        problems.push(`<${tag} ${attr.name}="${attr.value}">`);
      }
    }
    if (tag === 'script' && !allowedScripts.includes(el.src)) problems.push(`<script src="${el.src}">`);
    if (['iframe', 'frame', 'object', 'embed', 'base', 'svg', 'math', 'style', 'template'].includes(tag)) {
      problems.push(`<${tag}>`);
    }
    if (tag === 'meta' && el.httpEquiv) problems.push(`<meta http-equiv="${el.httpEquiv}">`);
  }
  for (const a of document.querySelectorAll('a[href]')) {
    if (!['https:', 'http:'].includes(a.protocol)) problems.push(`<a href="${a.href}">`);
  }
  for (const img of document.querySelectorAll('img')) {
    if (!img.src.startsWith('https://cdn.example.com/')) problems.push(`<img src="${img.src}">`);
  }
  return {problems, strings};
}
"""

ALL_MOUNTED = """() =>
  document.querySelectorAll('[data-storefront-widget] > .sfw').length === 3 &&
  document.querySelectorAll('[data-fragment][data-loaded] .sfw').length === 6
"""


class RawTargetWidgets(FlaskWidgets):
    """FlaskWidgets, but the query travels in the request target as a server would send it: the
    app's hot path keys on the raw target, which the test client leaves without the query when it
    is given separately (and /v1 URLs that differ only in locale would then share an answer)."""

    def __call__(self, path: str, raw_query: str, origin: str) -> tuple[int, bytes, str] | None:
        if not path.startswith("/v1/"):
            return None
        with self.lock:
            response = self.client.get(f"{path}?{raw_query}" if raw_query else path)
            return response.status_code, response.get_data(), response.content_type


def widget_page(site: WidgetSite) -> tuple[str, tuple[str, ...]]:
    """Each kind three times: mounted by its .js (en) and inserted from its .html (en and fr)."""
    scripts = [site.widget_url(kind, "js", SHOP, product=PRODUCT_OF[kind], locale="en") for kind in KINDS]
    sections = []
    for kind in KINDS:
        product = PRODUCT_OF[kind]
        spot = f' data-product-id="{product}"' if product else ""
        urls = [site.widget_url(kind, "html", SHOP, product=product, locale=loc) for loc in ("en", "fr")]
        fragments = "".join(f'<div data-fragment="{html.escape(url)}"></div>' for url in urls)
        sections.append(f'<section><div data-storefront-widget="{kind}"{spot}></div>{fragments}</section>')
    head = "".join(script_tag(src) for src in [*scripts, "/fragments.js"])
    return page("Hostile widgets", "\n".join(sections), head=head), (*scripts, f"{site.origin}/fragments.js")


@dataclasses.dataclass
class Visit:
    """What one page showed: the DOM scan and the CSP violations on it."""

    url: str
    problems: list[str]
    strings: list[str]
    violations: list[str]


def visit(pages: list[tuple[str, str, tuple[str, ...]]]) -> Callable[[Any], tuple[list[Visit], list[str]]]:
    """A browser job: open each (url, selector to wait for, allowed scripts) in one watched page; the
    visits, and every console error, page error and dialog seen on the way."""

    def job(browser: Any) -> tuple[list[Visit], list[str]]:
        visits = []
        with watched_page(browser) as watched:
            for url, ready, scripts in pages:
                watched.goto(url)
                watched.page.wait_for_function(ready)
                scan = watched.page.evaluate(DOM_SCAN, list(scripts))
                visits.append(Visit(url, scan["problems"], scan["strings"], watched.violations()))
            troubles = ([f"console: {m}" for m in watched.console_errors]
                        + [f"page error: {m}" for m in watched.page_errors]
                        + [f"dialog: {m}" for m in watched.dialogs])
        return visits, troubles

    return job


# One per context a payload attacks; the others reach the DOM only in the same shapes (their
# renders are read above, through HTTP, for every payload).
BROWSER_PAYLOADS = ["script-close", "attribute-break", "single-quote-break", "js-url", "js-string-break",
                    "js-dquote-break", "style-close", "html-comment", "entities", "bidi-and-invisibles"]


@pytest.fixture(scope="module")
def site() -> Iterator[WidgetSite]:
    with WidgetSite() as running:
        running.files["/fragments.js"] = (FRAGMENT_LOADER, "text/javascript; charset=utf-8")
        yield running


PREVIEW_MOUNTED = "() => !!document.querySelector('[data-storefront-widget=\"subscription\"] > .sfw')"


@pytest.mark.browser
@pytest.mark.parametrize("name", BROWSER_PAYLOADS)
def test_hostile_widgets_stay_inert_in_the_browser(db_url: str, site: WidgetSite, chromium: ChromiumThread,
                                                   name: str) -> None:
    app = make_app(db_url, PUBLIC_BASE_URL=site.origin)
    try:
        client = app.test_client()
        planted = plant(client, PAYLOADS[name], each_field=False)
        site.widgets = RawTargetWidgets(app)
        document, scripts = widget_page(site)
        # The same page twice: under script-src/style-src of this origin only, and with no policy,
        # where an injected handler would not be blocked but would run (and open a dialog).
        strict = site.add_page("/strict", document)
        site.files["/lax"] = (document.encode(), "text/html; charset=utf-8")
        preview = client.get(preview_path(client))
        assert preview.status_code == 200
        preview_url = site.add_page("/preview", preview.get_data(as_text=True))
        preview_scripts = (f"{site.origin}/static/preview.js", scripts[0])

        visits, troubles = chromium.run(visit([(strict, ALL_MOUNTED, scripts),
                                               (f"{site.origin}/lax", ALL_MOUNTED, scripts),
                                               (preview_url, PREVIEW_MOUNTED, preview_scripts)]))
    finally:
        app.extensions["storefront"].store.close()
    assert troubles == []
    for seen in visits:
        assert seen.problems == [], seen.url
        assert seen.violations == [], seen.url
    for seen in visits[:2]:
        assert_shown(planted.shown("widget"), seen.strings, planted, seen.url)
    assert_shown(planted.shown("preview"), visits[2].strings, planted, "the preview page")
