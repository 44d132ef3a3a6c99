"""Reading renders the way a browser would, looking for markup or script that a merchant's text created."""

from __future__ import annotations

import json
import re
from html.parser import HTMLParser
from typing import Any

# Elements that can run script, load a document, or change how the page resolves URLs.
DANGEROUS_TAGS = {"script", "style", "iframe", "frame", "frameset", "object", "embed", "applet", "base",
                  "meta", "svg", "math", "template", "noscript", "xmp", "plaintext", "textarea", "title"}
URL_ATTRIBUTES = {"href", "src", "action", "formaction", "poster", "background", "xlink:href", "srcset",
                  "data"}
_SCRIPT_SCHEME = re.compile(r"^(javascript|vbscript|data):", re.IGNORECASE)
_IGNORED_IN_SCHEMES = re.compile(r"[\x00-\x20\u00a0\u200b-\u200f\u2028\u2029\u202a-\u202e\ufeff]")


class MarkupScan(HTMLParser):
    """Every tag, attribute and text of an HTML document or fragment, and what looks injected."""

    def __init__(self, allowed_scripts: tuple[str, ...] = (), *, page: bool = False) -> None:
        super().__init__(convert_charrefs=True)
        self.allowed_scripts = allowed_scripts
        # A whole page (the preview) has its own <title> and <meta> tags; a fragment has none.
        self.page = page
        self.titles = 0
        self.strings: list[str] = []
        self.problems: list[str] = []

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        named = dict(attrs)
        if tag == "script":
            if named.get("src") not in self.allowed_scripts:
                self.problems.append(f"<script src={named.get('src')!r}>")
        elif self.page and tag == "title":
            self.titles += 1
            if self.titles > 1:
                self.problems.append("a second <title>")
        elif self.page and tag == "meta" and "http-equiv" not in named:
            pass
        elif tag in DANGEROUS_TAGS:
            self.problems.append(f"<{tag}>")
        for name, value in attrs:
            value = value or ""
            self.strings.append(value)
            if name.startswith("on"):
                self.problems.append(f"<{tag} {name}=...>")
            if name == "style":
                self.problems.append(f"<{tag} style=...>")
            if name in URL_ATTRIBUTES and _SCRIPT_SCHEME.match(_IGNORED_IN_SCHEMES.sub("", value)):
                if not (tag == "link" and named.get("rel") == "icon" and value == "data:,"):
                    self.problems.append(f"<{tag} {name}={value!r}>")

    def handle_startendtag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        self.handle_starttag(tag, attrs)

    def handle_data(self, data: str) -> None:
        self.strings.append(data)

    def handle_comment(self, data: str) -> None:
        self.problems.append(f"<!--{data[:40]}-->")

    def handle_pi(self, data: str) -> None:
        self.problems.append(f"<?{data[:40]}>")

    def unknown_decl(self, data: str) -> None:
        self.problems.append(f"<![{data[:40]}>")


def scan_html(text: str, allowed_scripts: tuple[str, ...] = (), *, page: bool = False) -> MarkupScan:
    scan = MarkupScan(allowed_scripts, page=page)
    scan.feed(text)
    scan.close()
    return scan


def json_strings(value: Any) -> list[str]:
    """Every string in a JSON document, keys included."""
    if isinstance(value, str):
        return [value]
    if isinstance(value, dict):
        return [s for key, item in value.items() for s in [key, *json_strings(item)]]
    if isinstance(value, list):
        return [s for item in value for s in json_strings(item)]
    return []


# The constants compose_script declares, in order: S is document.currentScript, the rest are JSON.
SCRIPT_CONSTANTS = ("K", "P", "X", "C", "H", "M")


def script_parts(script: str) -> tuple[dict[str, Any], str]:
    """The widget script's JSON data literals (kind, product, id prefix, stylesheet, HTML, data),
    and the code around them. Merchant text may only ever be inside the literals."""
    decoder = json.JSONDecoder()
    values: dict[str, Any] = {}
    code = []
    position = 0
    for name in SCRIPT_CONSTANTS:
        start = script.index(f",{name}=", position) + len(name) + 2
        code.append(script[position:start])
        values[name], position = decoder.raw_decode(script, start)
    code.append(script[position:])
    return values, "".join(code)
