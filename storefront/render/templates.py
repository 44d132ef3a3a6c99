"""The one Jinja environment of the widget templates: autoescaped, strict, created once at import."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from jinja2 import Environment, FileSystemLoader, StrictUndefined, select_autoescape

TEMPLATES = Path(__file__).resolve().parents[2] / "templates"

ENVIRONMENT = Environment(
    loader=FileSystemLoader(TEMPLATES),
    autoescape=select_autoescape(["html"], default_for_string=True, default=True),
    undefined=StrictUndefined,
    trim_blocks=True,
    lstrip_blocks=True,
    auto_reload=False,
)


def render_html(name: str, **context: Any) -> str:
    """Render ``templates/<name>``; the result holds one element per line, no blank lines."""
    text = ENVIRONMENT.get_template(name).render(**context)
    # Whitespace-only lines mean nothing in normal HTML flow (the templates use no <pre>), so
    # dropping them only removes the layout of the template source, never visible text.
    return "\n".join(line for line in text.split("\n") if line.strip())
