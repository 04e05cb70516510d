"""Work split with a forked child: same results as doing it all here, and a child that fails
leaves its half to the parent (which then raises the error itself, once)."""

from __future__ import annotations

import os
import threading

import pytest

from recommender import halves


def _sum_with_pid(items):
    return os.getpid(), sum(items)


def test_the_second_half_is_done_by_a_child_and_comes_back():
    assert halves.can_fork(), f"threads left running by earlier tests: {threading.enumerate()}"
    (here, first), (there, second) = halves.in_two(_sum_with_pid, list(range(1001)))
    assert (first, second) == (sum(range(500)), sum(range(500, 1001)))
    assert here == os.getpid() and there != os.getpid()


def test_a_child_that_fails_leaves_its_half_to_the_parent(capfd: pytest.CaptureFixture[str]):
    def broken(items):
        raise RuntimeError("boom in the child")

    (_, first), (where, second) = halves.in_two(_sum_with_pid, [1, 2, 3, 4], child_work=broken)
    assert (first, second, where) == (3, 7, os.getpid())
    assert "Traceback" not in capfd.readouterr().err


def test_an_error_in_the_work_surfaces_once_in_the_parent():
    calls = []

    def failing(items):
        calls.append(os.getpid())
        raise ValueError(f"bad items {list(items)}")

    with pytest.raises(ValueError, match=r"bad items \[1\]"):
        halves.in_two(failing, [1, 2])
    assert calls == [os.getpid()]  # the parent's own half failed first; the child's attempt is not ours


def test_no_child_is_forked_beside_other_threads():
    stop = threading.Event()
    other = threading.Thread(target=stop.wait)
    other.start()
    try:
        assert not halves.can_fork()
        (here, _), (there, _) = halves.in_two(_sum_with_pid, [1, 2, 3])
        assert here == there == os.getpid()
    finally:
        stop.set()
        other.join()
