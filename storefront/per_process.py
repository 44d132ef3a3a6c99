"""What each process keeps for itself across fork: its pid without a system call, and background loops."""

from __future__ import annotations

import logging
import os
import threading
import time
from collections.abc import Callable

log = logging.getLogger(__name__)


def _note_pid() -> None:
    global pid
    pid = os.getpid()


# This process's id, kept current in a forked child (gunicorn workers) by the hook below.
pid = os.getpid()
os.register_at_fork(after_in_child=_note_pid)


class ProcessLoop:
    """Calls ``tick`` every ``interval_s`` seconds from one daemon thread per process.

    ``ensure_running()`` is cheap enough to call on every request: threads do not survive fork,
    so a forked worker starts its own loop on its first call, never in the master.
    """

    def __init__(self, tick: Callable[[], None], interval_s: float, name: str) -> None:
        self.tick = tick
        self.interval_s = interval_s
        self.name = name
        self._pid = 0
        self._lock = threading.Lock()

    def ensure_running(self) -> None:
        if self._pid == pid:
            return
        with self._lock:
            if self._pid == pid:
                return
            self._pid = pid
        threading.Thread(target=self._run, name=self.name, daemon=True).start()

    def _run(self) -> None:
        while True:
            time.sleep(self.interval_s)
            try:
                self.tick()
            except Exception:  # the next tick tries again; a dead loop would lose every later one
                log.exception("%s failed", self.name)
