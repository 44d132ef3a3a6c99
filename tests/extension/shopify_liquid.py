"""Renders the theme app extension's Liquid the way Shopify would, and reads back what it produced."""

from __future__ import annotations

import json
import re
from html.parser import HTMLParser
from pathlib import Path
from typing import Any

from liquid import CachingFileSystemLoader, Environment, FalsyStrictUndefined
from liquid.ast import Node
from liquid.exceptions import LiquidSyntaxError
from liquid.tag import Tag
from liquid.token import TOKEN_EOF, TOKEN_TAG

EXTENSION = Path(__file__).resolve().parents[2] / "extensions" / "storefront-widgets"
# Where Shopify serves a theme app extension's assets from (the uuid and version change per deploy).
ASSET_BASE = "//cdn.shopify.com/extensions/0e6c4b87-6a3b-4b34-9d5b-2f1c8ad0e0f1/1.0.0/assets/"

_SCHEMA = re.compile(r"{%-?\s*schema\s*-?%}(.*?){%-?\s*endschema\s*-?%}", re.DOTALL)


class _SchemaNode(Node):
    def render_to_output(self, context: Any, buffer: Any) -> int:
        return 0


class SchemaTag(Tag):
    """Shopify's `{% schema %}`: configuration for the theme editor, never part of the page."""

    block = True
    name = "schema"
    end = "endschema"

    def parse(self, stream: Any) -> Node:
        token = stream.eat(TOKEN_TAG)
        while not (stream.current.kind == TOKEN_TAG and stream.current.value == self.end):
            if stream.current.kind == TOKEN_EOF:
                raise LiquidSyntaxError("schema tag was never closed", token=token)
            next(stream)
        return _SchemaNode(token)


def asset_url(name: str) -> str:
    return ASSET_BASE + name


def stylesheet_tag(url: str) -> str:
    # Shopify's exact markup for the filter.
    return f'<link href="{url}" rel="stylesheet" type="text/css" media="all" />'


def environment() -> Environment:
    """Shopify's Liquid as far as the extension uses it.

    Undefined names are falsy but raise when printed or filtered, so a block that reads an object or a
    setting the test context does not provide (a typo, or a name Shopify does not have) fails loudly.
    Unknown filters raise too. `render` finds snippets in the extension's snippets/, as on Shopify.
    """
    env = Environment(
        loader=CachingFileSystemLoader(EXTENSION / "snippets", ext=".liquid"),
        undefined=FalsyStrictUndefined,
        strict_filters=True,
    )
    env.add_tag(SchemaTag)
    env.add_filter("asset_url", asset_url)
    env.add_filter("stylesheet_tag", stylesheet_tag)
    return env


def block_source(name: str) -> str:
    return (EXTENSION / "blocks" / f"{name}.liquid").read_text(encoding="utf-8")


def render_block(name: str, **context: Any) -> str:
    return environment().from_string(block_source(name)).render(**context)


def block_schema(name: str) -> dict[str, Any]:
    """The JSON of the block's one `{% schema %}` tag."""
    found = _SCHEMA.findall(block_source(name))
    assert len(found) == 1, f"{name}: expected exactly one schema tag, found {len(found)}"
    return json.loads(found[0])


class _Elements(HTMLParser):
    def __init__(self) -> None:
        super().__init__(convert_charrefs=True)
        self.found: list[tuple[str, dict[str, str | None]]] = []

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        names = [name for name, _ in attrs]
        assert len(names) == len(set(names)), f"<{tag}> repeats an attribute: {names}"
        self.found.append((tag, dict(attrs)))


def elements(html: str) -> list[tuple[str, dict[str, str | None]]]:
    """Start tags in document order as (tag, attributes), with character references decoded."""
    parser = _Elements()
    parser.feed(html)
    parser.close()
    return parser.found
