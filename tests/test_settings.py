"""create_app's settings: defaults, environment, validation with a one-line error naming the setting."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

from storefront import SettingsError, create_app
from storefront.settings import load_settings, settings_table
from storefront.widget_lookup import DEFAULT_MAX_BYTES

GOOD = {"ADMIN_TOKENS": "a" * 32, "SECRET_KEY": "s" * 32, "SHOPIFY_API_SECRET": "h" * 32,
        "PUBLIC_BASE_URL": "https://widgets.example.com"}


def test_development_needs_no_secrets(tmp_path) -> None:  # type: ignore[no-untyped-def]
    settings = load_settings({"STOREFRONT_ENV": "development"}, None, str(tmp_path))
    assert settings.development
    assert settings.database_url == f"sqlite:///{tmp_path}/storefront.db"
    assert settings.public_base_url == "http://127.0.0.1:8000"


@pytest.mark.parametrize("missing", ["ADMIN_TOKENS", "SECRET_KEY", "SHOPIFY_API_SECRET", "PUBLIC_BASE_URL"])
def test_production_requires_secrets(tmp_path, missing) -> None:  # type: ignore[no-untyped-def]
    environ = {f"STOREFRONT_{k}": v for k, v in GOOD.items() if k != missing}
    with pytest.raises(SettingsError, match=f"STOREFRONT_{missing} is required"):
        load_settings(environ, None, str(tmp_path))


@pytest.mark.parametrize(("name", "value"), [
    ("ENV", "staging"),
    ("DATABASE_URL", "postgres://x/y"),
    ("DATABASE_URL", "mysql://host-only"),
    ("REDIS_URL", "http://localhost"),
    ("ADMIN_TOKENS", "short"),
    ("PUBLIC_BASE_URL", "widgets.example.com"),
    ("BROWSER_TTL_S", "-1"),
    ("EDGE_TTL_S", "a day"),
    ("CDN_PURGE", "ftp://x"),
])
def test_invalid_setting_named_in_one_line(tmp_path, name, value) -> None:  # type: ignore[no-untyped-def]
    environ = {f"STOREFRONT_{k}": v for k, v in GOOD.items()}
    environ[f"STOREFRONT_{name}"] = value
    with pytest.raises(SettingsError) as error:
        load_settings(environ, None, str(tmp_path))
    message = str(error.value)
    assert message.startswith(f"STOREFRONT_{name}") and "\n" not in message
    # A bad token is never echoed back.
    assert value not in message or name != "ADMIN_TOKENS"


def test_test_config_ignores_environment(monkeypatch, tmp_path) -> None:  # type: ignore[no-untyped-def]
    monkeypatch.setenv("STOREFRONT_ENV", "staging")  # would be invalid if read
    app = create_app({"ENV": "development", "DATABASE_URL": f"sqlite:///{tmp_path}/x.db"})
    assert app.extensions["storefront"].settings.development


def test_unknown_test_setting_rejected(tmp_path) -> None:  # type: ignore[no-untyped-def]
    with pytest.raises(SettingsError, match="STOREFRONT_NOPE"):
        create_app({"ENV": "development", "NOPE": 1})


def test_start_up_fails_with_one_line(tmp_path) -> None:  # type: ignore[no-untyped-def]
    env = {k: v for k, v in os.environ.items() if not k.startswith("STOREFRONT_")}
    env["STOREFRONT_ENV"] = "production"
    root = os.path.dirname(os.path.dirname(__file__))
    result = subprocess.run([sys.executable, "-c", "import wsgi"], cwd=root, env=env, capture_output=True,
                            text=True, timeout=60)
    assert result.returncode != 0
    assert "STOREFRONT_ADMIN_TOKENS is required" in result.stderr


def test_app_creation_does_not_connect(tmp_path) -> None:  # type: ignore[no-untyped-def]
    # A database that does not exist: constructing the app must not touch it.
    create_app({**GOOD, "DATABASE_URL": "mysql://root@127.0.0.1:1/none"})


def test_settings_table_lists_every_setting() -> None:
    table = settings_table()
    for name in ("STOREFRONT_ENV", "STOREFRONT_DATABASE_URL", "STOREFRONT_REDIS_URL", "STOREFRONT_CDN_PURGE"):
        assert f"`{name}`" in table


@pytest.mark.parametrize(("budget", "renders", "lookups"), [
    (16 << 20, 6 << 20, 2 << 20), (64 << 20, 24 << 20, 8 << 20), (0, 0, 8 << 20)])
def test_the_in_process_budget_is_shared_out(tmp_path: Path, budget: int, renders: int, lookups: int) -> None:
    """Lookups and hot URLs an eighth each, three eighths of headroom, rendered widgets the rest."""
    settings = load_settings({}, {"ENV": "development", "LOCAL_CACHE_BYTES": budget}, str(tmp_path))
    assert (settings.render_tier_bytes, settings.lookup_cache_bytes, settings.hot_targets_bytes) == (
        renders, lookups, lookups)
    if budget:
        assert renders + 5 * lookups == budget
    assert load_settings({}, {"ENV": "development"}, str(tmp_path)).lookup_cache_bytes == DEFAULT_MAX_BYTES
