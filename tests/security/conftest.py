"""Fixtures of the security suite: apps on a memory-backed SQLite file, and headless Chromium."""

from __future__ import annotations

import contextlib
import os
import shutil
import tempfile
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.browser.conftest import CHROMIUM
from tests.conftest import make_app, seed
from tests.security.chromium_thread import ChromiumThread
from tests.services import unavailable

SHM = Path("/dev/shm")


@contextlib.contextmanager
def memory_database_url(fallback: Path) -> Iterator[str]:
    """A SQLite database URL, in /dev/shm when there is one: these tests write hundreds of times,
    and a commit's fsync on disk would dominate their run time."""
    if SHM.is_dir() and os.access(SHM, os.W_OK):
        directory = Path(tempfile.mkdtemp(prefix="sf-security-", dir=SHM))
        try:
            yield f"sqlite:///{directory / 'storefront.db'}"
        finally:
            shutil.rmtree(directory, ignore_errors=True)
    else:
        yield f"sqlite:///{fallback / 'storefront.db'}"


@pytest.fixture
def db_url(tmp_path: Path) -> Iterator[str]:
    with memory_database_url(tmp_path) as url:
        yield url


@pytest.fixture
def fresh_app(db_url: str) -> Iterator:
    """An empty app in production mode."""
    application = make_app(db_url)
    yield application
    application.extensions["storefront"].store.close()


@pytest.fixture
def demo_app(db_url: str) -> Iterator:
    """An app in production mode with the demo shops, products and published widgets."""
    application = make_app(db_url)
    seed(application)
    yield application
    application.extensions["storefront"].store.close()


@pytest.fixture(scope="module")
def shared_demo_app(tmp_path_factory: pytest.TempPathFactory) -> Iterator:
    """Like demo_app, once per module, for tests that only read (and purge the render cache)."""
    with memory_database_url(tmp_path_factory.mktemp("shared")) as url:
        application = make_app(url)
        seed(application)
        yield application
        application.extensions["storefront"].store.close()


@pytest.fixture(scope="session")
def chromium() -> Iterator[ChromiumThread]:
    """Chromium in a thread of its own (see chromium_thread.py for why not tests/browser's fixture)."""
    if not os.access(CHROMIUM, os.X_OK):
        unavailable(f"Chromium is not installed at {CHROMIUM}")
    running = ChromiumThread()
    yield running
    running.close()
