"""The migration runner's file rules: naming, order, dialect variants, statement splitting."""

from __future__ import annotations

from pathlib import Path

import pytest

from storefront.store.sql import load_migrations, split_statements

PACKAGE_MIGRATIONS = Path(__file__).parents[2] / "storefront" / "store" / "migrations"


def write(folder: Path, files: dict[str, str]) -> Path:
    folder.mkdir()
    for name, text in files.items():
        (folder / name).write_text(text, encoding="utf-8")
    return folder


def test_statements_split_at_semicolons_ending_a_line_and_comment_lines_go() -> None:
    script = (
        "-- a comment; with a semicolon\n"
        "CREATE TABLE a (\n    x INT NOT NULL -- trailing words\n) /*! ENGINE=InnoDB */;\n"
        "\n  -- indented comment\n"
        "CREATE INDEX a_x ON a (x);   \n"
        "INSERT INTO a (x) VALUES (1)"
    )
    assert split_statements(script) == [
        "CREATE TABLE a (\n    x INT NOT NULL -- trailing words\n) /*! ENGINE=InnoDB */",
        "CREATE INDEX a_x ON a (x)",
        "INSERT INTO a (x) VALUES (1)",
    ]


def test_migrations_are_ordered_by_number_and_a_dialect_file_replaces_the_shared_one(tmp_path: Path) -> None:
    folder = write(tmp_path / "m", {
        "0002_second.sql": "SELECT 2;",
        "0001_first.sql": "SELECT 1;",
        "0001_first.mysql.sql": "SELECT 'mysql 1';",
        "0003_third.sqlite.sql": "SELECT 'sqlite 3';",
        "0003_third.mysql.sql": "SELECT 'mysql 3';",
        "README.md": "not a migration",
    })
    assert load_migrations("sqlite", folder) == [
        ("0001_first", ["SELECT 1"]),
        ("0002_second", ["SELECT 2"]),
        ("0003_third", ["SELECT 'sqlite 3'"]),
    ]
    assert load_migrations("mysql", folder) == [
        ("0001_first", ["SELECT 'mysql 1'"]),
        ("0002_second", ["SELECT 2"]),
        ("0003_third", ["SELECT 'mysql 3'"]),
    ]


@pytest.mark.parametrize(
    "files",
    [
        {"0001_a.sql": "SELECT 1;", "0001_b.sql": "SELECT 2;"},  # one number, two migrations
        {"0001_a.mysql.sql": "SELECT 1;"},  # nothing for sqlite
        {"1_a.sql": "SELECT 1;"},  # misnamed: would be skipped silently otherwise
    ],
)
def test_ambiguous_or_misnamed_files_are_refused(tmp_path: Path, files: dict[str, str]) -> None:
    with pytest.raises(ValueError):
        load_migrations("sqlite", write(tmp_path / "m", files))


def test_the_shipped_migrations_load_for_both_dialects() -> None:
    names = sorted(path.name for path in PACKAGE_MIGRATIONS.glob("*.sql"))
    assert names, "no migration files found"
    for dialect in ("sqlite", "mysql"):
        migrations = load_migrations(dialect)
        assert [name for name, _ in migrations] == sorted({name.split(".")[0] for name in names})
        assert all(statements for _, statements in migrations)
