"""The README stays true: the two Quick start commands and the configuration table match the code."""

from __future__ import annotations

from pathlib import Path

from storefront.settings import settings_table

README = (Path(__file__).resolve().parents[1] / "README.md").read_text(encoding="utf-8")


def test_configuration_table_matches_settings() -> None:
    start = README.index("<!-- settings-table -->") + len("<!-- settings-table -->")
    end = README.index("<!-- /settings-table -->")
    assert README[start:end].strip() == settings_table().strip(), (
        "regenerate the table with `flask --app storefront settings-table`")


def test_quick_start_has_exactly_the_two_commands() -> None:
    quick_start = README.split("## Quick start", 1)[1].split("##", 1)[0]
    block = quick_start.split("```sh", 1)[1].split("```", 1)[0]
    commands = [line.split("#", 1)[0].strip() for line in block.strip().splitlines()]
    assert commands == ["make run", "make test"]
