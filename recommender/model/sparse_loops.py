"""Inner loops over sparse rows, compiled with numba when there is enough work to repay it.

Each kernel is plain Python over CSR arrays (indptr, indices, data), so small jobs run it as is
(no numba import, no compile: a one-user `recommend` stays quick) and big ones run the same
function compiled (once per install, cached on disk) with the GIL released, so threads can
share the cores. Rows must have sorted indices (scipy's ``sort_indices``).
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from functools import cache
from typing import Any

import numpy as np

log = logging.getLogger(__name__)

COMPILED_MIN_WORK = 200_000  # inner-loop steps above which compiling (or loading the cache) pays


def scatter_rows(indptr, indices, data, post_ptr, post_idx, post_val, out):  # noqa: ANN001, ANN201
    """out[r, post_idx[k]] += data[j] * post_val[k] over every term j of row r and every
    posting k of that term: a sparse (rows x terms) times (terms x columns) product, added in."""
    for r in range(indptr.shape[0] - 1):
        row = out[r]
        for j in range(indptr[r], indptr[r + 1]):
            t = indices[j]
            w = np.float32(data[j])
            for k in range(post_ptr[t], post_ptr[t + 1]):
                row[post_idx[k]] += w * post_val[k]


def block_dots(indptr, indices, data, block_ptr, firsts, first_ptr, seconds, second_ptr, head, out):  # noqa: ANN001, ANN201
    """For each block b, the dot products of every row in firsts[first_ptr[b]:first_ptr[b+1]]
    with every row in seconds[second_ptr[b]:second_ptr[b+1]] of one CSR matrix, written row-major
    from out[block_ptr[b]] (which must hold zeros). A block's second rows are indexed by term
    first (``head``: -1 for every column on entry and on return; per term, a linked list of
    (second row, value)), so each term of a first row costs one lookup, plus one step per
    second row sharing it: rows share few terms, and a dense spread would cost a step for every
    pair. The products are added in the first row's term order, as a plain dot adds them."""
    most = 0
    for b in range(first_ptr.shape[0] - 1):
        size = 0
        for n in range(second_ptr[b], second_ptr[b + 1]):
            size += indptr[seconds[n] + 1] - indptr[seconds[n]]
        most = max(most, size)
    following = np.empty(most, dtype=np.int64)
    owner = np.empty(most, dtype=np.int64)
    value = np.empty(most, dtype=data.dtype)
    for b in range(first_ptr.shape[0] - 1):
        m = second_ptr[b + 1] - second_ptr[b]
        entry = 0
        for n in range(m):
            row = seconds[second_ptr[b] + n]
            for k in range(indptr[row], indptr[row + 1]):
                t = indices[k]
                following[entry] = head[t]
                owner[entry] = n
                value[entry] = data[k]
                head[t] = entry
                entry += 1
        for j in range(first_ptr[b + 1] - first_ptr[b]):
            first = firsts[first_ptr[b] + j]
            at = block_ptr[b] + j * m
            for k in range(indptr[first], indptr[first + 1]):
                x = head[indices[k]]
                while x != -1:
                    out[at + owner[x]] += data[k] * value[x]
                    x = following[x]
        for n in range(m):
            row = seconds[second_ptr[b] + n]
            for k in range(indptr[row], indptr[row + 1]):
                head[indices[k]] = -1


def block_top_two(block_ptr, first_ptr, second_ptr, first_rank, sims, top, top_values):  # noqa: ANN001, ANN201
    """For each block b of ``block_dots``' output and each of its second rows n: the two first
    rows with the largest positive products (equal ones: lower first_rank first), as indices
    into the firsts (top[second_ptr[b] + n] = (best, next); -1 where none), with their values."""
    for b in range(first_ptr.shape[0] - 1):
        m = second_ptr[b + 1] - second_ptr[b]
        for n in range(m):
            best, second, best_value, second_value = -1, -1, 0.0, 0.0
            for j in range(first_ptr[b], first_ptr[b + 1]):
                value = sims[block_ptr[b] + (j - first_ptr[b]) * m + n]
                if value <= 0:
                    continue
                if best == -1 or value > best_value or (value == best_value and first_rank[j] < first_rank[best]):
                    second, second_value = best, best_value
                    best, best_value = j, value
                elif second == -1 or value > second_value or (value == second_value and first_rank[j] < first_rank[second]):
                    second, second_value = j, value
            top[second_ptr[b] + n, 0] = best
            top[second_ptr[b] + n, 1] = second
            top_values[second_ptr[b] + n, 0] = best_value
            top_values[second_ptr[b] + n, 1] = second_value


def pair_top_terms(indptr, indices, data, first, second, top_terms, top_values):  # noqa: ANN001, ANN201
    """For each pair of rows, the terms they share with the largest products data*data, best
    first (ties: lower term index first); unused slots keep term -1."""
    keep = top_terms.shape[1]
    for n in range(first.shape[0]):
        for s in range(keep):
            top_terms[n, s] = -1
            top_values[n, s] = 0.0
        p, p_end = indptr[first[n]], indptr[first[n] + 1]
        q, q_end = indptr[second[n]], indptr[second[n] + 1]
        while p < p_end and q < q_end:
            a, b = indices[p], indices[q]
            if a == b:
                value = data[p] * data[q]
                slot = keep
                while slot > 0 and (top_terms[n, slot - 1] == -1 or value > top_values[n, slot - 1]):
                    slot -= 1
                if slot < keep and value > 0:
                    for s in range(keep - 1, slot, -1):
                        top_terms[n, s] = top_terms[n, s - 1]
                        top_values[n, s] = top_values[n, s - 1]
                    top_terms[n, slot] = a
                    top_values[n, slot] = value
                p += 1
                q += 1
            elif a < b:
                p += 1
            else:
                q += 1


def top_columns(keyed, k, out):  # noqa: ANN001, ANN201
    """out[r] = the columns of the ``k`` largest values of keyed[r], largest first, equal values
    in column order: the first k of a stable descending sort, found in one pass per row (a
    value enters only if it beats the k-th best so far, which few do)."""
    best = np.empty(k, dtype=keyed.dtype)
    for r in range(keyed.shape[0]):
        row = keyed[r]
        filled = 0
        for c in range(keyed.shape[1]):
            value = row[c]
            if filled == k:
                if not value > best[k - 1]:
                    continue
                slot = k - 1
            else:
                slot = filled
                filled += 1
            while slot > 0 and best[slot - 1] < value:  # after equal values: they came first
                best[slot] = best[slot - 1]
                out[r, slot] = out[r, slot - 1]
                slot -= 1
            best[slot] = value
            out[r, slot] = c


def places_among(total, scores, counts, blocked_rows, blocked_cols, below, equal, others):  # noqa: ANN001, ANN201
    """For each row r and each of its first counts[r] picks k: below[r, k] and equal[r, k], how
    many of total[r]'s values are below and equal to scores[r, k], and others[r], how many
    values there are besides one pick, leaving out the (blocked_rows, blocked_cols) cells. The
    picks are a row's best scores, best first: most values fall below the last, one comparison."""
    for r in range(total.shape[0]):
        count = counts[r]
        others[r] = total.shape[1] - 1
        for k in range(count):
            below[r, k] = 0
            equal[r, k] = 0
        if count == 0:
            continue
        lowest = scores[r, count - 1]
        under_all = 0
        row = total[r]
        for c in range(total.shape[1]):
            value = row[c]
            if value < lowest:
                under_all += 1
                continue
            for k in range(count):
                if value < scores[r, k]:
                    below[r, k] += 1
                elif value == scores[r, k]:
                    equal[r, k] += 1
        for k in range(count):
            below[r, k] += under_all
    for n in range(blocked_rows.shape[0]):
        r, value = blocked_rows[n], total[blocked_rows[n], blocked_cols[n]]
        others[r] -= 1
        for k in range(counts[r]):
            if value < scores[r, k]:
                below[r, k] -= 1
            elif value == scores[r, k]:
                equal[r, k] -= 1


@cache
def compiled(kernel: Callable[..., Any]) -> Callable[..., Any] | None:
    try:
        import numba
    except ImportError:  # pragma: no cover - numba is a dependency; the plain kernel stays correct
        log.info("numba not available: %s runs as plain Python", kernel.__name__)
        return None
    return numba.njit(nogil=True, cache=True)(kernel)


_compiled_always = False  # see prefer_compiled


def run(kernel: Callable[..., Any], work: int, *arrays: Any, min_work: int = COMPILED_MIN_WORK) -> None:
    """Run ``kernel`` on ``arrays``, compiled when ``work`` (its inner-loop steps) is worth it."""
    fast = compiled(kernel) if _compiled_always or work >= min_work else None
    (fast or kernel)(*arrays)


def prefer_compiled() -> None:
    """Run every kernel compiled from now on, small jobs too: for a long-lived process, where
    loading each compiled kernel once is repaid by every later request."""
    global _compiled_always  # noqa: PLW0603 - one switch for the whole process, set once at start
    _compiled_always = True


def load_compiler() -> None:
    """Import numba and set its compiler up by running one small kernel. That costs the first
    compiled kernel of a process about a quarter of a second; the kernels after it load from
    the disk cache in milliseconds."""
    try:
        fast = compiled(top_columns)
        if fast is not None:
            fast(np.zeros((1, 1), dtype=np.float32), 1, np.empty((1, 1), dtype=np.int64))
    except Exception as exc:  # noqa: BLE001 - the kernel's real call reports it, where it matters
        log.debug("could not load the compiler ahead: %s", exc)


@contextmanager
def compiler_loading() -> Iterator[None]:
    """The compiler loaded by a thread while the block runs (best while that block reads the
    database: the loading is mostly LLVM's, outside the GIL); joined when the block ends."""
    thread = threading.Thread(target=load_compiler, name="load-compiler", daemon=True)
    thread.start()
    try:
        yield
    finally:
        thread.join()
