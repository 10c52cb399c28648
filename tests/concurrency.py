"""Running test code in threads that start at the same moment, each on its own connection."""

from __future__ import annotations

import threading
from collections.abc import Callable
from typing import Any

from django.db import connections


def run_together(*fns: Callable[[], Any]) -> list[Any]:
    """Call each function in its own thread, all released at once by one barrier, and return
    what each returned, or the exception it raised, in the order given. Each thread closes its
    database connections when done (Django opens one per thread)."""
    barrier = threading.Barrier(len(fns))
    outcomes: list[Any] = [None] * len(fns)

    def run(index: int, fn: Callable[[], Any]) -> None:
        try:
            barrier.wait()
            outcomes[index] = fn()
        except Exception as exc:  # handed back to the test, which asserts on it
            outcomes[index] = exc
        finally:
            connections.close_all()

    threads = [threading.Thread(target=run, args=(i, fn)) for i, fn in enumerate(fns)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    return outcomes


def raised(outcomes: list[Any]) -> list[Exception]:
    """The exceptions among ``run_together``'s outcomes."""
    return [outcome for outcome in outcomes if isinstance(outcome, Exception)]
