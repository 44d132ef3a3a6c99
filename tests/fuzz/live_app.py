"""The app the fuzzers talk to: production mode on a seeded SQLite file, /openapi.json registered."""

from __future__ import annotations

from collections.abc import Callable, Iterable
from typing import Any

from flask import Flask

from storefront.demo import demo_products, demo_shops
from tests.conftest import make_app, seed


def build_app(database_url: str, *, seeded: bool = True) -> Flask:
    """``tests.conftest.make_app``, seeded.

    Requests reach it with the environ gunicorn builds: werkzeug's test client, which schemathesis
    drives, leaves the query string out of RAW_URI when it is passed separately, and without it the
    hot path (storefront/web/hot_path.py) would stand aside instead of being fuzzed too.
    """
    app = make_app(database_url)
    app.wsgi_app = with_full_request_target(app.wsgi_app)  # type: ignore[method-assign]
    if seeded:
        seed(app)
    return app


def with_full_request_target(wsgi_app: Callable[..., Iterable[bytes]]) -> Callable[..., Iterable[bytes]]:
    """Put the query string into RAW_URI and REQUEST_URI, as gunicorn has them, when it is missing."""

    def app(environ: dict[str, Any], start_response: Callable[..., Any]) -> Iterable[bytes]:
        query = environ.get("QUERY_STRING", "")
        for key in ("RAW_URI", "REQUEST_URI"):
            target = environ.get(key)
            if query and target is not None and "?" not in target:
                environ[key] = f"{target}?{query}"
        return wsgi_app(environ, start_response)

    return app


def seeded_products() -> dict[str, tuple[int, ...]]:
    """Shop domain -> the product ids the demo data gives it (what ``seed`` loads)."""
    return {entry["shop"]: tuple(doc["id"] for doc in demo_products(entry["shop"])) for entry in demo_shops()}
