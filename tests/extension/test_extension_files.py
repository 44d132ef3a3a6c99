"""The extension's configuration: shopify.extension.toml, block schemas, translations, stylesheet."""

from __future__ import annotations

import json
import re
import tomllib
from typing import Any

import pytest

from tests.extension.shopify_liquid import EXTENSION, block_schema, environment

KINDS = {"subscription", "bundle", "loyalty"}
# What `shopify app deploy` accepts (Shopify CLI's theme extension validation).
ALLOWED_FILES = {"assets": (".css", ".js", ".json", ".jpg", ".jpeg", ".png", ".svg", ".wasm"),
                 "blocks": (".liquid",), "snippets": (".liquid",), "locales": (".json",)}
BLOCKS = ("widgets-embed", "product-widget")


def settings_by_id(schema: dict[str, Any]) -> dict[str, dict[str, Any]]:
    ids = [setting["id"] for setting in schema["settings"]]
    assert len(ids) == len(set(ids)), f"duplicate setting ids: {ids}"
    return {setting["id"]: setting for setting in schema["settings"]}


def height_classes() -> dict[int, str]:
    """`.storefront-widget--hN` class -> its min-height, from the stylesheet."""
    css = (EXTENSION / "assets" / "storefront-widgets.css").read_text(encoding="utf-8")
    rules = re.findall(r"\.storefront-widget--h(\d+)\s*\{\s*min-height:\s*(\d+)(?:px)?;\s*\}", css)
    return {int(name): value for name, value in rules}


def test_extension_toml_declares_a_theme_extension():
    config = tomllib.loads((EXTENSION / "shopify.extension.toml").read_text(encoding="utf-8"))

    assert config["type"] == "theme"
    assert config["name"].strip()
    # Shopify CLI's rule for handles.
    assert re.fullmatch(r"[a-zA-Z0-9](?:[a-zA-Z0-9-]{0,28}[a-zA-Z0-9])?", config["handle"])


def test_extension_holds_only_files_shopify_deploys():
    for path in EXTENSION.rglob("*"):
        if path.is_dir() or path == EXTENSION / "shopify.extension.toml":
            continue
        relative = path.relative_to(EXTENSION)
        # Shopify deploys files exactly one folder deep; anything else is rejected or silently left out.
        assert len(relative.parts) == 2, f"{relative}: not deployed by Shopify"
        assert relative.parts[0] in ALLOWED_FILES, f"{relative}: not a theme extension folder"
        assert path.name.endswith(ALLOWED_FILES[relative.parts[0]]), f"{relative}: file type not deployable"


@pytest.mark.parametrize("name", BLOCKS)
def test_block_parses_as_liquid(name):
    environment().from_string((EXTENSION / "blocks" / f"{name}.liquid").read_text(encoding="utf-8"))


def test_embed_schema():
    schema = block_schema("widgets-embed")

    assert schema["target"] == "body"
    assert schema["enabled_on"] == {"templates": ["product"]}
    settings = settings_by_id(schema)
    assert set(settings) == KINDS | {"widget_host"}
    for kind in KINDS:
        assert settings[kind]["type"] == "checkbox"
        assert isinstance(settings[kind]["default"], bool)
    assert settings["subscription"]["default"] is True


def test_block_schema():
    schema = block_schema("product-widget")

    assert schema["target"] == "section"
    assert schema["enabled_on"] == {"templates": ["product"]}
    settings = settings_by_id(schema)
    assert set(settings) == {"kind", "min_height", "widget_host"}
    kind = settings["kind"]
    assert kind["type"] == "select"
    assert {option["value"] for option in kind["options"]} == KINDS
    assert kind["default"] in KINDS


def test_every_reserved_height_the_block_offers_has_a_class():
    height = settings_by_id(block_schema("product-widget"))["min_height"]
    assert height["type"] == "range"
    low, high, step = height["min"], height["max"], height["step"]
    # Shopify's limits for range settings: at most 101 steps, the default on a step.
    assert (high - low) % step == 0 and (high - low) / step <= 101
    assert low <= height["default"] <= high and (height["default"] - low) % step == 0

    classes = height_classes()
    assert set(classes) == set(range(low, high + 1, step))
    for value, min_height in classes.items():
        assert int(min_height) == value


@pytest.mark.parametrize("name", BLOCKS)
def test_widget_host_setting(name):
    setting = settings_by_id(block_schema(name))["widget_host"]

    assert setting["type"] == "text"
    assert re.fullmatch(r"https://[a-z0-9.-]+", setting["default"])


def test_schema_translations_resolve():
    translations = json.loads((EXTENSION / "locales" / "en.default.schema.json").read_text(encoding="utf-8"))

    def lookup(key: str) -> Any:
        node: Any = translations
        for part in key.split("."):
            node = node[part]
        return node

    used = []
    for name in BLOCKS:
        text = json.dumps(block_schema(name))
        used += re.findall(r'"t:([a-z0-9_.]+)"', text)
        assert "t:" not in re.sub(r'"t:[a-z0-9_.]+"', "", text), f"{name}: malformed t: key"
    assert used
    for key in used:
        assert isinstance(lookup(key), str) and lookup(key).strip(), key
