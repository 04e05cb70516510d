"""Process-level tuning of a command, in one place: where its log goes, how many worker
processes it may start, the cyclic garbage collector's pace, and ending the process once the
command is over."""

from __future__ import annotations

import contextlib
import gc
import logging
import os
import sys

from recommender.base import parallel


def log_to_stderr(level: int) -> None:
    """Log records at ``level`` and above go to standard error, one line each."""
    logging.basicConfig(level=level, stream=sys.stderr, format="%(levelname)s %(name)s: %(message)s", force=True)


def log_daemon_to_stderr() -> int:
    """`recommender run` logs at INFO even without ``-v`` (its start, each user's next digest,
    each run's per-user lines, its stop: what a journal should hold); APScheduler's own lines
    about adding and running jobs only with ``-v``. Returns the level for the runs' processes:
    their per-message lines only with ``-v`` too."""
    level = logging.getLogger().getEffectiveLevel()
    if level <= logging.INFO:
        return level
    log_to_stderr(logging.INFO)
    logging.getLogger("apscheduler").setLevel(logging.WARNING)
    return logging.WARNING


def set_jobs(jobs: int | None) -> None:
    """``--jobs``: the processes a command may work in (None: one per core it may use)."""
    parallel.set_jobs(jobs)


def tune_collector() -> None:
    # Ranking and digest runs build many long-lived objects (papers, picks, explanations); at the
    # default threshold (700) the cyclic collector rescans them all over and over (10-15% of a
    # 2,000-user `recommend --all-users`). Collecting less often costs a little memory only.
    gc.set_threshold(10_000, 20, 20)


def exit_now(code: object) -> None:
    """End the process at once instead of tearing the interpreter down: after a large run the
    teardown frees millions of objects one by one (a quarter of a second for 2,000 users'
    recommendations). The command is over: its database connections are closed and its files
    written; what is still buffered is flushed here."""
    logging.shutdown()
    for stream in (sys.stdout, sys.stderr):
        with contextlib.suppress(OSError, ValueError):  # a closed pipe: nothing more can be written
            stream.flush()
    if code is None or isinstance(code, int):
        os._exit(code or 0)
