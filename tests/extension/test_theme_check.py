"""Shopify's theme-check lints the extension offline, at the version package-lock.json pins."""

from __future__ import annotations

import json
import shutil
import subprocess
from collections.abc import Callable
from pathlib import Path

import pytest

from tests.extension.shopify_liquid import EXTENSION
from tests.services import unavailable

ROOT = Path(__file__).resolve().parents[2]
RUNNER = Path(__file__).with_name("theme_check.mjs")
PACKAGE = "node_modules/@shopify/theme-check-node"

Lint = Callable[[Path], subprocess.CompletedProcess[str]]


def installed_matches_lock() -> bool:
    lock = json.loads((ROOT / "package-lock.json").read_text(encoding="utf-8"))
    locked = lock["packages"][PACKAGE]["version"]
    try:
        installed = json.loads((ROOT / PACKAGE / "package.json").read_text(encoding="utf-8"))["version"]
    except FileNotFoundError:
        return False
    return installed == locked


@pytest.fixture(scope="module")
def theme_check() -> Lint:
    node, npm = shutil.which("node"), shutil.which("npm")
    if node is None or npm is None:
        unavailable("node and npm are needed to run Shopify's theme-check")
    if not installed_matches_lock():
        # --prefer-offline: the lock file's integrity hashes make npm's cache as good as the registry.
        install = subprocess.run(
            [npm, "ci", "--no-audit", "--no-fund", "--prefer-offline"],
            cwd=ROOT, capture_output=True, text=True, timeout=240,
        )
        assert install.returncode == 0, f"npm ci failed:\n{install.stderr[-2000:]}"

    def lint(extension: Path) -> subprocess.CompletedProcess[str]:
        return subprocess.run([node, str(RUNNER), str(extension)], cwd=ROOT, capture_output=True, text=True,
                              timeout=120)

    return lint


def test_extension_passes_theme_check(theme_check: Lint):
    result = theme_check(EXTENSION)

    assert result.returncode == 0, result.stdout + result.stderr
    assert result.stdout.strip().endswith(" 0 offences"), result.stdout


def test_theme_check_reports_what_shopify_would_reject(theme_check: Lint, tmp_path: Path):
    broken = tmp_path / "storefront-widgets"
    shutil.copytree(EXTENSION, broken)
    snippet = broken / "snippets" / "storefront-widget-script.liquid"
    snippet.write_text(snippet.read_text(encoding="utf-8").replace(" defer>", ">"), encoding="utf-8")
    embed = broken / "blocks" / "widgets-embed.liquid"
    embed.write_text(embed.read_text(encoding="utf-8").replace("t:blocks.embed.name", "t:blocks.embed.title"),
                     encoding="utf-8")

    result = theme_check(broken)

    assert result.returncode == 1, result.stdout + result.stderr
    assert "snippets/storefront-widget-script.liquid" in result.stdout
    assert "ParserBlockingScript" in result.stdout
    assert "ValidSchemaTranslations" in result.stdout and "t:blocks.embed.title" in result.stdout
