"""Running independent tasks on a few threads, for work that lets go of the GIL (numpy copies,
torch operators)."""

from __future__ import annotations

from concurrent.futures import ThreadPoolExecutor
from typing import Callable, List


def run_parallel(tasks: List[Callable[[], None]], workers: int) -> None:
    """Runs ``tasks`` on up to ``workers`` threads, in order of submission, and raises the first
    error (the tasks not yet started are dropped). With one worker or one task, runs them here."""
    workers = min(len(tasks), workers)
    if workers <= 1:
        for task in tasks:
            task()
        return
    pool = ThreadPoolExecutor(workers)
    try:
        for future in [pool.submit(task) for task in tasks]:
            future.result()
    finally:
        pool.shutdown(cancel_futures=True)
