"""Run one piece of work in several threads at once, as gunicorn's threads would hit one store."""

from __future__ import annotations

import threading
from collections.abc import Callable
from typing import Any

from storefront.store import Store


def run_threads(count: int, work: Callable[[int], Any], store: Store | None = None) -> list[Any]:
    """``work(i)`` for i in range(count), all released together; the results in order of i.

    Each thread closes its own connection of ``store`` when done, as a request would. The first
    error raised in any thread is raised here.
    """
    barrier = threading.Barrier(count)
    results: list[Any] = [None] * count
    errors: list[BaseException] = []

    def target(index: int) -> None:
        try:
            barrier.wait(timeout=10)
            results[index] = work(index)
        except BaseException as error:  # handed to the calling thread below
            errors.append(error)
        finally:
            if store is not None:
                store.close()

    threads = [threading.Thread(target=target, args=(index,)) for index in range(count)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=60)
    if any(thread.is_alive() for thread in threads):
        raise AssertionError("a thread did not finish within 60 s")
    if errors:
        raise errors[0]
    return results
