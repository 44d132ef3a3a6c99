"""`make run` as a user meets it: gunicorn on SQLite, seeded, answering health, admin and widget requests."""

from __future__ import annotations

import os
import signal
import subprocess
from pathlib import Path

import pytest
import requests

from tests.services import free_port, wait_for_port

ROOT = Path(__file__).resolve().parents[1]


@pytest.mark.slow
def test_make_run_serves_the_seeded_demo_shop(tmp_path) -> None:  # type: ignore[no-untyped-def]
    port = free_port()
    env = {k: v for k, v in os.environ.items() if not k.startswith("STOREFRONT_")}
    # Only the database file moves to a temporary place; everything else is as `make run` sets it.
    env["STOREFRONT_DATABASE_URL"] = f"sqlite:///{tmp_path / 'demo.db'}"
    log = open(tmp_path / "make-run.log", "w+")  # noqa: SIM115 - read after the process ends
    process = subprocess.Popen(["make", "run", f"PORT={port}"], cwd=ROOT, env=env, stdout=log,
                               stderr=subprocess.STDOUT, start_new_session=True)
    try:
        wait_for_port(port, timeout=90)
        base = f"http://127.0.0.1:{port}"
        assert requests.get(f"{base}/healthz", timeout=5).status_code == 200
        token = "dev-admin-token-0000000000000000"
        shop = requests.get(f"{base}/admin/v1/shops/demo-coffee.myshopify.com",
                            headers={"Authorization": f"Bearer {token}"}, timeout=5)
        assert shop.status_code == 200, shop.text
        assert shop.json()["name"] == "Demo Coffee Co."
        widget = requests.get(f"{base}/v1/shops/demo-coffee.myshopify.com/widgets/subscription.js",
                              params={"product": "7001000000001"}, timeout=5)
        assert widget.status_code == 200
        assert widget.headers["Content-Type"].startswith("application/javascript")
        preview = requests.get(f"{base}/preview/demo-coffee.myshopify.com/subscription",
                               params={"product": "7001000000001"}, timeout=5)
        assert preview.status_code == 200 and "<form" in preview.text
        assert requests.get(f"{base}/readyz", timeout=5).json()["database"] == "ok"
    finally:
        os.killpg(process.pid, signal.SIGTERM)
        try:
            process.wait(20)
        except subprocess.TimeoutExpired:
            os.killpg(process.pid, signal.SIGKILL)
            process.wait(5)
    log.seek(0)
    output = log.read()
    log.close()
    # The URLs a user is told to try are printed before the server starts.
    assert f"http://127.0.0.1:{port}/preview/demo-coffee.myshopify.com/subscription" in output
    assert "seeded demo-coffee.myshopify.com" in output
