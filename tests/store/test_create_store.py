"""create_store(): the right engine from the URL, nothing connected, a SQLite file's folder made."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from storefront.store import MySQLStore, SQLiteStore, create_store
from tests.services import free_port


def test_four_slashes_is_an_absolute_sqlite_path_whose_folder_is_created(tmp_path: Path) -> None:
    path = tmp_path / "deep" / "er" / "storefront.db"
    store = create_store(f"sqlite:///{path}", timeout_s=7)
    assert isinstance(store, SQLiteStore)
    assert (store.path, store.timeout_s) == (str(path), 7)
    assert path.parent.is_dir()
    assert not path.exists()  # the file itself only appears on first use
    store.migrate()
    assert path.exists()
    store.close()


def test_three_slashes_is_relative_to_the_working_directory(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.chdir(tmp_path)
    store = create_store("sqlite:///instance/storefront.db")
    assert isinstance(store, SQLiteStore)
    assert store.path == "instance/storefront.db"
    assert store.timeout_s == 2
    assert (tmp_path / "instance").is_dir()
    store.migrate()
    store.close()
    assert (tmp_path / "instance" / "storefront.db").exists()


def test_a_bare_file_name_needs_no_folder(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(tmp_path)
    store = create_store("sqlite:///plain.db")
    assert isinstance(store, SQLiteStore) and store.path == "plain.db"
    assert os.listdir(tmp_path) == []


def test_a_mysql_url_gives_a_mysql_store_without_connecting() -> None:
    store = create_store(f"mysql://app:secret@127.0.0.1:{free_port()}/storefront", timeout_s=3)
    assert isinstance(store, MySQLStore)
    assert (store.host, store.user, store.database, store.timeout_s) == ("127.0.0.1", "app", "storefront", 3)


@pytest.mark.parametrize(
    "url", ["", "postgres://h/db", "sqlite://relative.db", "sqlite:///", "sqlite:///:memory:", "mysql://h"]
)
def test_other_urls_are_refused(url: str) -> None:
    with pytest.raises(ValueError):
        create_store(url)
