"""/healthz and /readyz as the contract says, with the database up and down."""

from __future__ import annotations

from storefront import create_app
from tests.conftest import ADMIN_TOKEN, SECRET, SHOPIFY_SECRET
from tests.services import free_port


def test_healthz(client) -> None:  # type: ignore[no-untyped-def]
    response = client.get("/healthz")
    assert response.status_code == 200
    assert response.headers["Cache-Control"] == "no-store"


def test_readyz_reports_database_and_cache(client) -> None:  # type: ignore[no-untyped-def]
    response = client.get("/readyz")
    assert response.status_code == 200
    assert response.get_json() == {"database": "ok", "cache": "disabled"}


def test_readyz_with_database_down_is_503() -> None:
    down = create_app({
        "DATABASE_URL": f"mysql://root@127.0.0.1:{free_port()}/test", "ADMIN_TOKENS": ADMIN_TOKEN,
        "SECRET_KEY": SECRET, "SHOPIFY_API_SECRET": SHOPIFY_SECRET, "PUBLIC_BASE_URL": "https://w.example",
    })
    response = down.test_client().get("/readyz")
    assert response.status_code == 503
    assert response.get_json() == {"database": "down", "cache": "disabled"}
    # The process itself is alive.
    assert down.test_client().get("/healthz").status_code == 200
