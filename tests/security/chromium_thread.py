"""Headless Chromium driven from a thread of its own, so that it can run beside tests/browser's.

Playwright's sync API allows one instance per thread, and tests/browser keeps its session-wide
instance in the main thread for as long as the session runs. This one lives in a worker thread:
tests hand it a function of the Browser, and only plain data comes back. The pages it opens are
tests/browser's WatchedPage, instrumented the same way (CSP violations, console errors, dialogs).
"""

from __future__ import annotations

import queue
import threading
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import Any, TypeVar

from tests.browser.conftest import CHROMIUM, CHROMIUM_ARGS, INSTRUMENT, PIXEL, WatchedPage

T = TypeVar("T")


class _Job:
    def __init__(self, function: Callable[[Any], Any]) -> None:
        self.function = function
        self.done = threading.Event()
        self.result: Any = None
        self.error: BaseException | None = None


class ChromiumThread:
    """One Chromium for the session; ``run(function)`` calls ``function(browser)`` in its thread."""

    def __init__(self) -> None:
        self._jobs: queue.Queue[_Job | None] = queue.Queue()
        self._started = threading.Event()
        self._failure: BaseException | None = None
        self._thread = threading.Thread(target=self._serve, name="security-chromium", daemon=True)
        self._thread.start()
        self._started.wait(60)
        if self._failure is not None:
            raise self._failure

    def _serve(self) -> None:
        from playwright.sync_api import sync_playwright

        try:
            with sync_playwright() as playwright:
                browser = playwright.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)
                self._started.set()
                while (job := self._jobs.get()) is not None:
                    try:
                        job.result = job.function(browser)
                    except BaseException as error:  # noqa: BLE001 - handed back to the test's thread
                        job.error = error
                    job.done.set()
                browser.close()
        except BaseException as error:  # noqa: BLE001 - reported by __init__
            self._failure = error
            self._started.set()

    def run(self, function: Callable[[Any], T], timeout: float = 120) -> T:
        job = _Job(function)
        self._jobs.put(job)
        if not job.done.wait(timeout):
            raise TimeoutError(f"the browser thread did not finish within {timeout}s")
        if job.error is not None:
            raise job.error
        return job.result

    def close(self) -> None:
        self._jobs.put(None)
        self._thread.join(30)


@contextmanager
def watched_page(browser: Any) -> Iterator[WatchedPage]:
    """A fresh context and page set up like tests/browser's ``watched`` fixture."""
    context = browser.new_context(viewport={"width": 800, "height": 1000})
    context.set_default_timeout(5000)
    context.add_init_script(INSTRUMENT)
    context.route("https://cdn.example.com/**",
                  lambda route: route.fulfill(status=200, content_type="image/png", body=PIXEL))
    try:
        yield WatchedPage(context.new_page())
    finally:
        context.close()
