"""Shared fixtures: an app on SQLite or on real MySQL, its client, admin auth, seeded demo data."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path
from urllib.parse import urlsplit

import pymysql
import pytest

from storefront import create_app
from tests.services import MYSQL_URL, reachable, unavailable, unique_name

FIXTURES = Path(__file__).parent / "fixtures"
ADMIN_TOKEN = "test-admin-token-0123456789abcdef"
SECRET = "test-secret-key-0123456789abcdef"
SHOPIFY_SECRET = "hush-hush-hush-shopify-secret-01"
BASE_URL = "https://widgets.example.test"


def load_fixture(name: str) -> dict:
    return json.loads((FIXTURES / name).read_text(encoding="utf-8"))


def _mysql_admin(url: str) -> pymysql.connections.Connection:
    parts = urlsplit(url)
    return pymysql.connect(host=parts.hostname, port=parts.port or 3306, user=parts.username or "root",
                           password=parts.password or "", connect_timeout=2, autocommit=True)


@pytest.fixture
def mysql_url() -> Iterator[str]:
    """A fresh, empty MySQL database for one test, dropped afterwards."""
    if not reachable(MYSQL_URL):
        unavailable(f"MySQL is not reachable at {MYSQL_URL}")
    name = unique_name("sf_test")
    connection = _mysql_admin(MYSQL_URL)
    with connection.cursor() as cursor:
        cursor.execute(f"CREATE DATABASE `{name}` CHARACTER SET utf8mb4 COLLATE utf8mb4_unicode_ci")
    parts = urlsplit(MYSQL_URL)
    try:
        yield f"{parts.scheme}://{parts.netloc}/{name}"
    finally:
        with connection.cursor() as cursor:
            cursor.execute(f"DROP DATABASE IF EXISTS `{name}`")
        connection.close()


@pytest.fixture(params=["sqlite", "mysql"])
def database_url(request: pytest.FixtureRequest, tmp_path: Path) -> str:
    if request.param == "sqlite":
        return f"sqlite:///{tmp_path / 'storefront.db'}"
    return request.getfixturevalue("mysql_url")


@pytest.fixture
def sqlite_url(tmp_path: Path) -> str:
    return f"sqlite:///{tmp_path / 'storefront.db'}"


def make_app(database_url: str, **overrides: object):  # type: ignore[no-untyped-def]
    config = {
        "ENV": "production",
        "DATABASE_URL": database_url,
        "ADMIN_TOKENS": ADMIN_TOKEN,
        "SECRET_KEY": SECRET,
        "SHOPIFY_API_SECRET": SHOPIFY_SECRET,
        "PUBLIC_BASE_URL": BASE_URL,
    }
    config.update(overrides)
    app = create_app(config)
    with app.app_context():
        app.extensions["storefront"].store.migrate()
    return app


@pytest.fixture
def app(database_url: str):  # type: ignore[no-untyped-def]
    """The app in production mode on SQLite and on MySQL (each test runs on both)."""
    application = make_app(database_url)
    yield application
    application.extensions["storefront"].store.close()


@pytest.fixture
def sqlite_app(sqlite_url: str):  # type: ignore[no-untyped-def]
    application = make_app(sqlite_url)
    yield application
    application.extensions["storefront"].store.close()


@pytest.fixture
def client(app):  # type: ignore[no-untyped-def]
    return app.test_client()


@pytest.fixture
def auth() -> dict[str, str]:
    return {"Authorization": f"Bearer {ADMIN_TOKEN}"}


def seed(app) -> None:  # type: ignore[no-untyped-def]
    from storefront.demo import seed_demo

    with app.app_context():
        seed_demo(app.extensions["storefront"].store)


@pytest.fixture
def seeded_app(sqlite_app):  # type: ignore[no-untyped-def]
    seed(sqlite_app)
    return sqlite_app
