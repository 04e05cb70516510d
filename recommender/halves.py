"""The second core for Python-bound work: the second half of a job done by a forked child.

Threads do not help where the work holds the GIL (tokenizing, building explanations, writing
JSON). A child forked from this process starts with everything already loaded (models,
candidates, profiles) without copying or re-reading it, and sends back only its result.
Forking is used only on Linux and only from a process running no other Python thread: a child
forked beside a running thread can inherit a lock that thread held and hang on it.
"""

from __future__ import annotations

import ctypes
import gc
import logging
import multiprocessing
import multiprocessing.connection
import os
import signal
import sys
import threading
from collections.abc import Callable, Sequence
from typing import TypeVar

log = logging.getLogger(__name__)

Item = TypeVar("Item")
Result = TypeVar("Result")


def can_fork() -> bool:
    return sys.platform.startswith("linux") and threading.active_count() == 1


def in_two(work: Callable[[Sequence[Item]], Result], items: Sequence[Item],
           child_work: Callable[[Sequence[Item]], Result] | None = None) -> tuple[Result, Result]:
    """(``work`` of the first half of ``items``, ``work`` of the second half), the second half
    computed at the same time by a forked child when ``can_fork()``, with ``child_work`` if
    given (the same work on resources of its own, such as database connections). If the child
    fails or dies, its half is done here with ``work``, so an error surfaces here, once."""
    half = len(items) // 2
    if not can_fork() or half == 0:
        return work(items[:half]), work(items[half:])
    for stream in (sys.stdout, sys.stderr):  # the child must not write our buffered output again
        stream.flush()
    context = multiprocessing.get_context("fork")
    reader, writer = context.Pipe(duplex=False)
    child = context.Process(target=_child, args=(child_work or work, items[half:], writer, os.getpid()), daemon=True,
                            name="second-half")
    # The objects both processes start with stay out of either's cyclic collector while they
    # work: a collection writes to every object it visits, and each page written is copied.
    gc.freeze()
    child.start()
    writer.close()
    try:
        first = work(items[:half])
        try:
            second = reader.recv()
        except EOFError:
            log.info("the helper process stopped early (exit code %s): doing its half here", child.exitcode)
            second = work(items[half:])
    finally:
        reader.close()
        child.join()
        gc.unfreeze()
    return first, second


PR_SET_PDEATHSIG = 1  # linux/prctl.h


def die_with_parent(parent: int) -> None:
    """Have the kernel kill this (forked) process as soon as ``parent`` dies, however it dies
    (SIGKILL, the OOM killer): no helper may go on working, unrecorded, after its command."""
    if sys.platform.startswith("linux"):
        libc = ctypes.CDLL(None, use_errno=True)
        libc.prctl(PR_SET_PDEATHSIG, signal.SIGKILL, 0, 0, 0)
    if os.getppid() != parent:  # it died before the request took effect
        os._exit(1)


def _child(work: Callable[[Sequence[Item]], Result], items: Sequence[Item],
           writer: multiprocessing.connection.Connection, parent: int) -> None:
    die_with_parent(parent)
    try:
        writer.send(work(items))
        writer.close()
    except BaseException:  # noqa: BLE001 - the parent redoes this half and reports the error itself
        os._exit(1)
