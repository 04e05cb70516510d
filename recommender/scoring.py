"""The score matrix of a chunk of users against one pool of candidates, computed fast.

    score[u, p] = profile[u] . row[p]  +  w[u] * reader[u] . reader_row[p]

Profiles and paper rows are sparse, but the few terms found in many candidates carry most of
the work of a sparse product (with a Zipf vocabulary, ~5% of the candidates' terms make ~85%
of the multiply-adds). Those "dense" terms go, next to the reader factors, into one float32
matrix product (BLAS, both cores); the long tail of rare terms is added by a compiled
scatter over the candidates' posting lists (numba, releasing the GIL so chunks run in
parallel). For small chunks, where compiling or importing numba would cost more than it saves,
the tail is added with a scipy product instead; both give the same sums.
"""

from __future__ import annotations

import logging
from functools import cache

import numpy as np
import scipy.sparse as sp

log = logging.getLogger(__name__)

DENSE_FRACTION = 0.03  # a term in at least this share of the candidates goes into the dense product
DENSE_MIN_PAPERS = 64  # ...and in at least this many (small pools stay sparse)
COMPILED_MIN_WORK = 2_000_000  # tail multiply-adds above which the compiled scatter is worth it


@cache
def _compiled_scatter():
    """The numba kernel, compiled (or loaded from numba's cache) on first use; None without numba."""
    try:
        import numba
    except ImportError:  # pragma: no cover - numba is a dependency; scipy remains correct without it
        log.info("numba not available: the rare-term part of scoring uses scipy")
        return None

    @numba.njit(nogil=True, cache=True)
    def scatter(indptr, indices, data, post_ptr, post_idx, post_val, out):  # pragma: no cover - compiled
        for r in range(indptr.shape[0] - 1):
            row = out[r]
            for j in range(indptr[r], indptr[r + 1]):
                t = indices[j]
                w = np.float32(data[j])
                for k in range(post_ptr[t], post_ptr[t + 1]):
                    row[post_idx[k]] += w * post_val[k]

    return scatter


class PoolScorer:
    """Everything about one candidate pool that every chunk of users reuses."""

    def __init__(self, rows: sp.csr_matrix, reader_rows: np.ndarray | None,
                 compiled_min_work: int = COMPILED_MIN_WORK):
        n, vocabulary = rows.shape
        self.compiled_min_work = compiled_min_work
        self.size = n
        frequency = np.bincount(rows.indices, minlength=vocabulary)
        threshold = max(DENSE_MIN_PAPERS, DENSE_FRACTION * n)
        dense_terms = np.flatnonzero(frequency >= threshold)
        self.dense_slot = np.full(vocabulary, -1, dtype=np.int64)
        self.dense_slot[dense_terms] = np.arange(len(dense_terms))
        self.factors = 0 if reader_rows is None else reader_rows.shape[1]
        self.reader_rows = reader_rows
        right = [rows[:, dense_terms].T.toarray().astype(np.float32)]
        if reader_rows is not None:
            right.insert(0, reader_rows.T.astype(np.float32))
        self.right = np.ascontiguousarray(np.vstack(right))  # (factors + dense terms) x candidates
        rare = rows.copy()
        rare.data = np.where(self.dense_slot[rare.indices] >= 0, 0.0, rare.data)
        rare.eliminate_zeros()
        self.rare_rows = rare  # candidates x terms, rare terms only
        postings = rare.T.tocsr()  # terms x candidates: who contains each rare term
        self.post_ptr = postings.indptr.astype(np.int32)
        self.post_idx = postings.indices.astype(np.int32)
        self.post_val = postings.data.astype(np.float32)
        self.rare_frequency = np.diff(self.post_ptr)

    def scores(self, profiles: sp.csr_matrix, readers: np.ndarray | None, weights: np.ndarray) -> np.ndarray:
        """float32 users x candidates: content score plus ``weights`` times the reader cosine."""
        users = profiles.shape[0]
        left = np.zeros((users, self.right.shape[0]), dtype=np.float32)
        if readers is not None and self.factors:
            left[:, :self.factors] = readers * weights[:, None]
        owners = np.repeat(np.arange(users), np.diff(profiles.indptr))
        slots = self.dense_slot[profiles.indices]
        dense = slots >= 0
        left[owners[dense], self.factors + slots[dense]] = profiles.data[dense]
        out = left @ self.right
        if out.shape[1] == 0:
            return out
        work = int(self.rare_frequency[profiles.indices].sum())
        scatter = _compiled_scatter() if work >= self.compiled_min_work else None
        if scatter is not None:
            scatter(profiles.indptr, profiles.indices, profiles.data,
                    self.post_ptr, self.post_idx, self.post_val, out)
        elif self.rare_rows.nnz:
            out += (profiles @ self.rare_rows.T).toarray()
        return out

    def reader_part(self, readers: np.ndarray | None, weights: np.ndarray, picked: np.ndarray) -> np.ndarray:
        """The weighted reader cosine of each user's picked candidates (for explanations)."""
        if readers is None or self.reader_rows is None:
            return np.zeros(picked.shape)
        return weights[:, None] * np.einsum("uk,upk->up", readers, self.reader_rows[picked])
