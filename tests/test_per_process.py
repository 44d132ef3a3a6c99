"""Per-process loops: one thread per process, started on first need, surviving a failing tick."""

from __future__ import annotations

import os
import threading
import time

from storefront import per_process
from storefront.per_process import ProcessLoop


def test_one_loop_per_process_that_survives_a_failing_tick() -> None:
    ticks: list[int] = []

    def tick() -> None:
        ticks.append(1)
        if len(ticks) == 1:
            raise RuntimeError("the first tick fails")

    loop = ProcessLoop(tick, 0.02, "test-loop")
    before = threading.active_count()
    for _ in range(50):
        loop.ensure_running()
    assert threading.active_count() == before + 1
    deadline = time.monotonic() + 5
    while len(ticks) < 3 and time.monotonic() < deadline:
        time.sleep(0.01)
    assert len(ticks) >= 3  # the failure was logged and the loop went on


def test_a_forked_child_knows_its_pid_and_starts_its_own_loop() -> None:
    ticked = threading.Event()
    loop = ProcessLoop(ticked.set, 0.01, "test-fork-loop")
    loop.ensure_running()
    assert ticked.wait(5)
    read, write = os.pipe()
    child = os.fork()
    if child == 0:
        ticked.clear()
        loop.ensure_running()  # the parent's thread did not survive the fork
        ok = per_process.pid == os.getpid() and ticked.wait(5)
        os.write(write, b"1" if ok else b"0")
        os._exit(0)
    os.waitpid(child, 0)
    answer = os.read(read, 1)
    os.close(read)
    os.close(write)
    assert answer == b"1"
