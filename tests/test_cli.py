"""The CLI as operators run it: init-db twice leaves the same schema; seed-demo is idempotent."""

from __future__ import annotations

import os
import subprocess
from pathlib import Path

import pytest

from storefront.store import create_store

ROOT = Path(__file__).resolve().parents[1]
FLASK = str(ROOT / ".venv" / "bin" / "flask")


def flask(database_url: str, *args: str) -> str:
    env = {k: v for k, v in os.environ.items() if not k.startswith("STOREFRONT_")}
    env.update(STOREFRONT_ENV="development", STOREFRONT_DATABASE_URL=database_url)
    result = subprocess.run([FLASK, "--app", "storefront", *args], cwd=ROOT, env=env, capture_output=True,
                            text=True, timeout=120)
    assert result.returncode == 0, result.stderr
    return result.stdout


@pytest.mark.parametrize("engine", ["sqlite", "mysql"])
def test_init_db_twice_leaves_the_same_schema(engine, request, tmp_path) -> None:  # type: ignore[no-untyped-def]
    url = f"sqlite:///{tmp_path / 'cli.db'}" if engine == "sqlite" else request.getfixturevalue("mysql_url")
    first = flask(url, "init-db")
    assert first.startswith("applied: 0001")
    store = create_store(url)
    schema = store.schema_description()
    store.close()
    assert flask(url, "init-db").strip() == "schema is up to date"
    store = create_store(url)
    assert store.schema_description() == schema
    store.close()


def test_seed_demo_is_idempotent(tmp_path) -> None:  # type: ignore[no-untyped-def]
    url = f"sqlite:///{tmp_path / 'seed.db'}"
    flask(url, "init-db")
    assert "seeded demo-coffee.myshopify.com" in flask(url, "seed-demo")
    store = create_store(url)
    before = [(s, store.get_shop(s).version, store.get_widget(s, "subscription").published.version)
              for s in ("demo-coffee.myshopify.com", "sakagura.myshopify.com", "kaffee-haus.myshopify.com")]
    store.close()
    flask(url, "seed-demo")
    store = create_store(url)
    after = [(s, store.get_shop(s).version, store.get_widget(s, "subscription").published.version)
             for s, _, _ in before]
    store.close()
    assert after == before  # nothing re-written, nothing re-published


def test_create_admin_token_and_settings_table(tmp_path) -> None:  # type: ignore[no-untyped-def]
    url = f"sqlite:///{tmp_path / 'x.db'}"
    token = flask(url, "create-admin-token").strip()
    assert len(token) >= 32
    assert "`STOREFRONT_ADMIN_TOKENS`" in flask(url, "settings-table")
