"""Work split between forked worker processes: the same results as doing it all here, in order;
a child that fails leaves its part to the parent (which then raises the error itself, once);
``--jobs`` sizes the split, and no child is forked beside other threads."""

from __future__ import annotations

import os
import sys
import threading
from collections.abc import Iterator

import pytest

from recommender.base import parallel


@pytest.fixture(autouse=True)
def four_jobs() -> Iterator[None]:
    parallel.set_jobs(4)
    yield
    parallel.set_jobs(None)


def _sum_with_pid(items):
    return os.getpid(), sum(items)


def test_each_part_after_the_first_is_done_by_its_own_child_and_comes_back_in_order():
    assert parallel.can_fork(), f"threads left running by earlier tests: {threading.enumerate()}"
    results = parallel.in_parts(_sum_with_pid, list(range(1001)), 4)
    bounds = [0, 250, 500, 750, 1001]
    assert [total for _, total in results] == [sum(range(bounds[k], bounds[k + 1])) for k in range(4)]
    pids = [pid for pid, _ in results]
    assert pids[0] == os.getpid() and len(set(pids)) == 4


def test_a_child_that_fails_leaves_its_part_to_the_parent(capfd: pytest.CaptureFixture[str]):
    def broken(items):
        raise RuntimeError("boom in the child")

    results = parallel.in_parts(_sum_with_pid, [1, 2, 3, 4, 5, 6], 3, child_work=broken)
    assert results == [(os.getpid(), 3), (os.getpid(), 7), (os.getpid(), 11)]
    assert "Traceback" not in capfd.readouterr().err


def test_a_child_killed_outright_leaves_its_part_to_the_parent():
    def killed(items):
        os.kill(os.getpid(), 9)

    assert parallel.in_parts(_sum_with_pid, [1, 2, 3, 4], 2, child_work=killed) == [(os.getpid(), 3), (os.getpid(), 7)]


def test_an_error_in_the_work_surfaces_once_in_the_parent_and_no_child_lives_on():
    calls = []
    children_before = set(_children())

    def failing(items):
        calls.append(os.getpid())
        raise ValueError(f"bad items {list(items)}")

    with pytest.raises(ValueError, match=r"bad items \[1\]"):
        parallel.in_parts(failing, [1, 2, 3], 3)
    assert calls == [os.getpid()]  # the parent's own part failed first; the children's attempts are not ours
    assert set(_children()) == children_before


def test_children_write_in_the_order_of_their_parts(tmp_path):
    out = tmp_path / "out.txt"

    def write_here(items):
        with out.open("a") as f:
            f.write("".join(map(str, items)))
        return len(items)

    def write_in_turn(items):
        if items[0] == 4:  # the last part is ready first, and waits for its turn
            pass
        parallel.wait_turn()
        return write_here(items)

    assert parallel.in_parts(write_here, list(range(1, 7)), 3, child_work=write_in_turn) == [2, 2, 2]
    assert out.read_text() == "123456"


def test_jobs_size_the_split():
    assert parallel.parts_for(10_000, 100) == 4
    assert parallel.parts_for(250, 100) == 2
    parallel.set_jobs(1)
    assert not parallel.can_fork() and parallel.parts_for(10_000, 100) == 1
    results = parallel.in_parts(_sum_with_pid, [1, 2, 3], 3)
    assert {pid for pid, _ in results} == {os.getpid()}
    parallel.set_jobs(None)
    assert parallel.jobs() == parallel.machine_jobs() >= 1


def test_no_child_is_forked_beside_other_threads():
    stop = threading.Event()
    other = threading.Thread(target=stop.wait)
    other.start()
    try:
        assert not parallel.can_fork()
        results = parallel.in_parts(_sum_with_pid, [1, 2, 3], 2)
        assert {pid for pid, _ in results} == {os.getpid()}
    finally:
        stop.set()
        other.join()


def _children() -> list[int]:
    if not sys.platform.startswith("linux"):
        return []
    path = f"/proc/{os.getpid()}/task/{os.getpid()}/children"
    with open(path) as f:
        return [int(p) for p in f.read().split()]


def test_a_fresh_process_beside_other_threads_does_the_work_and_may_split_it():
    """From a process running threads (as the daemon does): the work runs in a new process,
    which has no other thread and so may fork workers of its own."""
    stop = threading.Event()
    other = threading.Thread(target=stop.wait)
    other.start()
    try:
        pids = parallel.in_fresh_process(_split_in_two, [1, 2, 3, 4])
    finally:
        stop.set()
        other.join()
    assert os.getpid() not in pids and len(set(pids)) == 2


def _split_in_two(items):
    parallel.set_jobs(2)
    return [pid for pid, _ in parallel.in_parts(_sum_with_pid, items, 2)]


def test_a_fresh_process_reports_an_error_and_a_death_as_such():
    assert parallel.in_fresh_process(divmod, 7, 2) == (3, 1)
    with pytest.raises(parallel.WorkFailed, match="invalid literal"):
        parallel.in_fresh_process(int, "seven")
    with pytest.raises(parallel.ProcessDied, match="exit code 3"):
        parallel.in_fresh_process(os._exit, 3)
