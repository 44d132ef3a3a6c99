"""gunicorn.conf.py's post_fork: a worker's glibc malloc keeps two arenas and trims its free pages."""

from __future__ import annotations

import json
import os
import platform
import subprocess
import sys

import pytest

from tests.deploy.deploy_files import GUNICORN_CONF

pytestmark = pytest.mark.skipif(
    sys.platform != "linux" or platform.libc_ver()[0] != "glibc", reason="glibc's malloc arenas only")

# Eight threads each allocate from glibc's malloc (bytes past pymalloc's 512), which gives a thread
# its own arena on its first allocation; malloc_info then lists one <heap> per arena.
SCRIPT = """
import ctypes, json, os, re, runpy, sys, tempfile, threading
config = runpy.run_path(sys.argv[1])
limited = config["limit_malloc_arenas"]() if sys.argv[2] == "limit" else None
barrier = threading.Barrier(8)
kept = []
def work():
    barrier.wait()
    kept.append([bytes(4096 + n) for n in range(50)])
threads = [threading.Thread(target=work) for _ in range(8)]
for thread in threads: thread.start()
for thread in threads: thread.join()
libc = ctypes.CDLL("libc.so.6")
libc.fopen.restype = ctypes.c_void_p
path = os.path.join(tempfile.mkdtemp(), "malloc.xml")
stream = libc.fopen(path.encode(), b"w")
libc.malloc_info(0, ctypes.c_void_p(stream))
libc.fclose(ctypes.c_void_p(stream))
heaps = len(re.findall(r'<heap nr="', open(path).read()))
names = [thread.name for thread in threading.enumerate()]
print(json.dumps({"limited": limited, "heaps": heaps, "threads": names}))
"""


def _run(mode: str) -> dict:
    env = {key: value for key, value in os.environ.items() if not key.startswith("MALLOC_")}
    env["PROMETHEUS_MULTIPROC_DIR"] = "/nonexistent-not-used"
    done = subprocess.run([sys.executable, "-c", SCRIPT, str(GUNICORN_CONF), mode], env=env,
                          capture_output=True, text=True, timeout=60, check=True)
    return json.loads(done.stdout)


def test_a_worker_keeps_at_most_two_malloc_arenas_and_trims_in_the_background() -> None:
    unlimited, limited = _run("default"), _run("limit")
    assert unlimited["heaps"] > 2, "without the cap each thread gets an arena: the test would prove nothing"
    assert limited["limited"] is True
    assert limited["heaps"] <= 2
    assert "malloc-trim" in limited["threads"]
