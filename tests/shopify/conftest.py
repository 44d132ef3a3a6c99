"""An app with the Shopify endpoints and the demo data, on SQLite and MySQL, plus request helpers."""

from __future__ import annotations

import pytest

from tests.conftest import make_app, seed


def shopify_app(database_url: str, **overrides: object):  # type: ignore[no-untyped-def]
    application = make_app(database_url, **overrides)
    seed(application)
    return application


@pytest.fixture
def app(database_url: str):  # type: ignore[no-untyped-def]
    """Seeded, on SQLite and on MySQL."""
    application = shopify_app(database_url)
    yield application
    application.extensions["storefront"].store.close()


@pytest.fixture
def sqlite_app(sqlite_url: str):  # type: ignore[no-untyped-def]
    """Seeded, on SQLite only: for what does not depend on the database engine."""
    application = shopify_app(sqlite_url)
    yield application
    application.extensions["storefront"].store.close()
