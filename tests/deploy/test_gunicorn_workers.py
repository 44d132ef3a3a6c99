"""gunicorn.conf.py sizes its workers from the CPUs the server may use, not the machine's count."""

from __future__ import annotations

import os
import runpy
import shutil
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

from tests.deploy.deploy_files import GUNICORN_CONF, ROOT

pytestmark = pytest.mark.skipif(not hasattr(os, "sched_getaffinity"), reason="CPU affinity is Linux's")


@pytest.fixture(scope="module")
def config() -> dict[str, Any]:
    return runpy.run_path(str(GUNICORN_CONF))


def cgroup(tmp_path: Path, files: dict[str, str]) -> str:
    for name, text in files.items():
        path = tmp_path / name
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(text)
    return str(tmp_path)


def test_without_a_quota_every_cpu_of_the_affinity_counts(config: dict[str, Any], tmp_path: Path) -> None:
    allowed = len(os.sched_getaffinity(0))
    assert config["usable_cpus"](str(tmp_path / "none")) == allowed
    assert config["usable_cpus"](cgroup(tmp_path / "v2", {"cpu.max": "max 100000\n"})) == allowed
    assert config["usable_cpus"](cgroup(tmp_path / "v1", {"cpu/cpu.cfs_quota_us": "-1\n",
                                                          "cpu/cpu.cfs_period_us": "100000\n"})) == allowed


@pytest.mark.parametrize("files", [
    {"cpu.max": "50000 100000\n"},  # half a CPU (cgroup v2): one worker's worth, rounded up
    {"cpu/cpu.cfs_quota_us": "100000\n", "cpu/cpu.cfs_period_us": "100000\n"},  # one CPU (v1)
])
def test_a_cgroup_quota_caps_the_count(config: dict[str, Any], tmp_path: Path, files: dict[str, str]) -> None:
    assert config["usable_cpus"](cgroup(tmp_path, files)) == 1


def test_a_quota_above_the_affinity_does_not_raise_it(config: dict[str, Any], tmp_path: Path) -> None:
    allowed = len(os.sched_getaffinity(0))
    generous = cgroup(tmp_path, {"cpu.max": f"{(allowed + 3) * 100000} 100000\n"})
    assert config["usable_cpus"](generous) == allowed
    assert config["usable_cpus"](cgroup(tmp_path / "odd", {"cpu.max": "150000 100000\n"})) == min(allowed, 2)


def test_an_unreadable_quota_is_ignored(config: dict[str, Any], tmp_path: Path) -> None:
    allowed = len(os.sched_getaffinity(0))
    assert config["usable_cpus"](cgroup(tmp_path, {"cpu.max": "garbage\n"})) == allowed
    assert config["usable_cpus"](cgroup(tmp_path / "zero", {"cpu.max": "100000 0\n"})) == allowed


@pytest.mark.skipif(shutil.which("taskset") is None, reason="needs taskset")
def test_a_server_pinned_to_one_cpu_runs_three_workers(config: dict[str, Any], tmp_path: Path) -> None:
    """2 x CPUs + 1, of the CPUs it may run on: pinned to one CPU of a larger machine, three."""
    code = "import runpy, sys; print(runpy.run_path(sys.argv[1])['workers'])"
    env = {key: value for key, value in os.environ.items() if not key.startswith("GUNICORN_")}
    env["PROMETHEUS_MULTIPROC_DIR"] = str(tmp_path)
    cpu = min(os.sched_getaffinity(0))
    pinned = subprocess.run(["taskset", "-c", str(cpu), sys.executable, "-c", code, str(GUNICORN_CONF)],
                            cwd=ROOT, env=env, capture_output=True, text=True, check=True, timeout=30)
    assert pinned.stdout.split() == ["3"]
    unpinned = subprocess.run([sys.executable, "-c", code, str(GUNICORN_CONF)], cwd=ROOT, env=env,
                              capture_output=True, text=True, check=True, timeout=30)
    assert unpinned.stdout.split() == [str(min(config["usable_cpus"]() * 2 + 1, 8))]
    # An operator's number wins.
    env["GUNICORN_WORKERS"] = "7"
    chosen = subprocess.run(["taskset", "-c", str(cpu), sys.executable, "-c", code, str(GUNICORN_CONF)],
                            cwd=ROOT, env=env, capture_output=True, text=True, check=True, timeout=30)
    assert chosen.stdout.split() == ["7"]
