"""Headless Chromium for browser tests, and a page that records CSP violations, errors and layout shifts."""

from __future__ import annotations

import base64
import os
from collections.abc import Iterator
from typing import Any

import pytest

from tests.services import unavailable

CHROMIUM = "/usr/bin/chromium"
CHROMIUM_ARGS = ["--no-sandbox", "--disable-gpu", "--disable-background-networking",
                 "--disable-component-update", "--disable-sync", "--no-first-run"]

# Runs before any page script: CSP violations and layout shifts are recorded from the first byte.
INSTRUMENT = """
window.__sfwTest = {violations: [], shift: 0, shifts: []};
document.addEventListener('securitypolicyviolation', function (e) {
  window.__sfwTest.violations.push(e.violatedDirective + ' ' + e.blockedURI);
});
new PerformanceObserver(function (list) {
  list.getEntries().forEach(function (entry) {
    if (!entry.hadRecentInput) {
      window.__sfwTest.shift += entry.value;
      window.__sfwTest.shifts.push(entry.value);
    }
  });
}).observe({type: 'layout-shift', buffered: true});
"""

# The bundle fixture's images live on cdn.example.com; answer them locally with a 1x1 PNG.
PIXEL = base64.b64decode(
    "iVBORw0KGgoAAAANSUhEUgAAAAEAAAABCAQAAAC1HAwCAAAAC0lEQVR42mNkYAAAAAYAAjCB0C8AAAAASUVORK5CYII=")


@pytest.fixture(scope="session")
def browser() -> Iterator[Any]:
    if not os.access(CHROMIUM, os.X_OK):
        unavailable(f"Chromium is not installed at {CHROMIUM}")
    from playwright.sync_api import sync_playwright

    with sync_playwright() as playwright:
        instance = playwright.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)
        try:
            yield instance
        finally:
            instance.close()


class WatchedPage:
    """A Playwright page plus what went wrong on it: console errors, page errors, CSP violations."""

    def __init__(self, page: Any) -> None:
        self.page = page
        self.console_errors: list[str] = []
        self.page_errors: list[str] = []
        self.dialogs: list[str] = []
        page.on("console", self._console)
        page.on("pageerror", lambda error: self.page_errors.append(str(error)))
        page.on("dialog", self._dialog)

    def _console(self, message: Any) -> None:
        if message.type == "error":
            self.console_errors.append(message.text)

    def _dialog(self, dialog: Any) -> None:
        self.dialogs.append(dialog.message)
        dialog.dismiss()

    def goto(self, url: str) -> None:
        self.page.goto(url, wait_until="load")

    def violations(self) -> list[str]:
        return self.page.evaluate("window.__sfwTest.violations")

    def layout_shift(self) -> float:
        return self.page.evaluate("window.__sfwTest.shift")

    def assert_clean(self) -> None:
        """No CSP violation, no console error, no uncaught exception, no dialog."""
        assert self.violations() == []
        assert self.console_errors == []
        assert self.page_errors == []
        assert self.dialogs == []


@pytest.fixture
def watched(browser: Any) -> Iterator[WatchedPage]:
    context = browser.new_context(viewport={"width": 800, "height": 1000})
    context.set_default_timeout(5000)
    context.add_init_script(INSTRUMENT)
    context.route("https://cdn.example.com/**",
                  lambda route: route.fulfill(status=200, content_type="image/png", body=PIXEL))
    try:
        yield WatchedPage(context.new_page())
    finally:
        context.close()
