"""Worker processes for Python-bound work: a job split into parts, all but the first done by
forked children, one per core (or ``--jobs``).

Threads do not help where the work holds the GIL (tokenizing, building explanations, rendering,
writing JSON). A child forked from this process starts with everything already loaded (models,
candidates, profiles) without copying or re-reading it, and sends back only its result.
Forking is used only on Linux and only from a process running no other Python thread: a child
forked beside a running thread can inherit a lock that thread held and hang on it. A process
that runs threads (the daemon) hands its work to ``in_fresh_process``, a newly started
interpreter with no threads, which may then split it with ``in_parts``. Every child dies with
the process that forked it, and a part whose child failed or died is done again by the parent,
so an error surfaces once, in the parent, and nothing is left half done.
"""

from __future__ import annotations

import ctypes
import gc
import logging
import multiprocessing
import multiprocessing.connection
import multiprocessing.synchronize
import os
import signal
import sys
import threading
from collections.abc import Callable, Sequence
from typing import TypeVar

log = logging.getLogger(__name__)

Item = TypeVar("Item")
Result = TypeVar("Result")

_jobs: int | None = None  # set by the command line's --jobs; None: one per core this process may use
_turn: multiprocessing.synchronize.Event | None = None  # in a child: set when it may write its output


def machine_jobs() -> int:
    """The cores this process may run on."""
    return len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count() or 1


def set_jobs(jobs: int | None) -> None:
    """How many processes a command may work in (None: one per core)."""
    global _jobs
    if jobs is not None and jobs < 1:
        raise ValueError("jobs must be at least 1")
    _jobs = jobs


def jobs() -> int:
    return _jobs if _jobs is not None else machine_jobs()


def can_fork() -> bool:
    return sys.platform.startswith("linux") and threading.active_count() == 1 and jobs() > 1


def parts_for(count: int, min_part: int) -> int:
    """How many parts ``count`` items are worth, each at least ``min_part`` (1 where forking is not possible)."""
    if not can_fork():
        return 1
    return max(1, min(jobs(), count // max(1, min_part)))


def wait_turn() -> None:
    """In a child of ``in_parts``: block until every earlier part is done (so output is
    written in order). Elsewhere: return at once."""
    if _turn is not None:
        _turn.wait()


def in_parts(work: Callable[[Sequence[Item]], Result], items: Sequence[Item], parts: int,
             child_work: Callable[[Sequence[Item]], Result] | None = None) -> list[Result]:
    """``work`` of each of ``parts`` consecutive slices of ``items``, in order: the first here,
    the others at the same time by forked children (with ``child_work`` if given: the same work
    on resources of its own, such as database connections), when ``can_fork()``. A child may
    call ``wait_turn()`` to wait until the parts before its own are done. A child that fails
    or dies leaves its part to be done here with ``work``."""
    bounds = [len(items) * k // parts for k in range(parts + 1)] if parts > 0 else [0, len(items)]
    slices = [items[bounds[k]:bounds[k + 1]] for k in range(len(bounds) - 1)]
    if len(slices) < 2 or not can_fork():
        return [work(part) for part in slices]
    for stream in (sys.stdout, sys.stderr):  # a child must not write our buffered output again
        stream.flush()
    context = multiprocessing.get_context("fork")
    children: list[tuple[multiprocessing.process.BaseProcess, multiprocessing.connection.Connection,
                         multiprocessing.synchronize.Event]] = []
    # The objects every process starts with stay out of each one's cyclic collector while they
    # work: a collection writes to every object it visits, and each page written is copied.
    gc.freeze()
    finished = False
    try:
        for number, part in enumerate(slices[1:], start=1):
            reader, writer = context.Pipe(duplex=False)
            turn = context.Event()
            process = context.Process(target=_child, args=(child_work or work, part, writer, turn, os.getpid()),
                                      daemon=True, name=f"part-{number}")
            process.start()
            writer.close()
            children.append((process, reader, turn))
        results = [work(slices[0])]
        for number, (child, reader, turn) in enumerate(children, start=1):
            turn.set()
            try:
                results.append(reader.recv())
            except EOFError:
                log.info("worker process %d stopped early (exit code %s): doing its part here", number, child.exitcode)
                results.append(work(slices[number]))
        finished = True
        return results
    finally:
        for child, reader, _ in children:
            reader.close()
            if not finished:
                child.kill()  # the parent raises: no child works or writes on after it
            child.join()
        gc.unfreeze()


class ProcessDied(Exception):
    """The process doing the work ended without a result (killed, or out of memory)."""


class WorkFailed(Exception):
    """The work raised in the process doing it; the message is that error's."""


def in_fresh_process(function: Callable[..., Result], *args: object) -> Result:
    """``function(*args)`` in a newly started Python process (spawned, not forked, so it is
    safe from a process running threads), which starts with no thread of its own and so may
    split its work with ``in_parts``. It dies with this process. Raises ``ProcessDied`` if it
    ends without a result and ``WorkFailed`` if the work raised."""
    context = multiprocessing.get_context("spawn")
    reader, writer = context.Pipe(duplex=False)
    # Not a daemonic process: those may not start children of their own.
    process = context.Process(target=_fresh_child, args=(function, args, writer, os.getpid()),
                              name=getattr(function, "__name__", "work"))
    process.start()
    writer.close()
    try:
        outcome, value = reader.recv()
    except EOFError:
        process.join()
        raise ProcessDied(f"exit code {process.exitcode}") from None
    finally:
        reader.close()
    process.join()
    if outcome == "failed":
        raise WorkFailed(value)
    return value  # type: ignore[no-any-return]


def _fresh_child(function: Callable[..., Result], args: tuple[object, ...],
                 writer: multiprocessing.connection.Connection, parent: int) -> None:
    die_with_parent(parent)
    try:
        outcome: tuple[str, object] = ("done", function(*args))
    except Exception as exc:  # noqa: BLE001 - reported to the parent, which raises it there
        outcome = ("failed", str(exc) or type(exc).__name__)
    writer.send(outcome)
    writer.close()


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
           writer: multiprocessing.connection.Connection, turn: multiprocessing.synchronize.Event, parent: int) -> None:
    global _turn
    die_with_parent(parent)
    _turn = turn
    try:
        writer.send(work(items))
        writer.close()
    except BaseException:  # noqa: BLE001 - the parent redoes this part and reports the error itself
        os._exit(1)
