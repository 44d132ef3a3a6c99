"""gunicorn.conf.py prepares Prometheus' multiprocess directory in the master, at start, not as it loads."""

from __future__ import annotations

import os
import runpy
from pathlib import Path
from unittest import mock

from tests.deploy.deploy_files import GUNICORN_CONF


def test_loading_the_settings_changes_no_environment() -> None:
    with mock.patch.dict(os.environ, clear=False):
        os.environ.pop("PROMETHEUS_MULTIPROC_DIR", None)
        before = dict(os.environ)
        runpy.run_path(str(GUNICORN_CONF))
        assert dict(os.environ) == before


def test_the_master_names_a_directory_when_none_is_and_empties_a_named_one(tmp_path: Path) -> None:
    on_starting = runpy.run_path(str(GUNICORN_CONF))["on_starting"]
    with mock.patch.dict(os.environ, clear=False):
        os.environ.pop("PROMETHEUS_MULTIPROC_DIR", None)
        on_starting(None)
        named = Path(os.environ["PROMETHEUS_MULTIPROC_DIR"])
        assert named.is_dir() and not any(named.iterdir())
        named.rmdir()
    (tmp_path / "counter_123.db").write_bytes(b"old")
    (tmp_path / "keep.txt").write_text("not a metrics file")
    with mock.patch.dict(os.environ, {"PROMETHEUS_MULTIPROC_DIR": str(tmp_path)}):
        on_starting(None)
    assert sorted(path.name for path in tmp_path.iterdir()) == ["keep.txt"]
