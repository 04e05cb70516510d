"""The score matrix of a chunk of users against one pool of candidates, computed fast.

    score[u, p] = profile[u] . row[p]  +  w[u] * reader[u] . reader_row[p]

Profiles and paper rows are sparse, but the few terms found in many candidates carry most of
the work of a sparse product (with a Zipf vocabulary, ~5% of the candidates' terms make ~85%
of the multiply-adds). Those "dense" terms go, next to the reader factors, into one float32
matrix product (BLAS); the long tail of rare terms is added by a scatter over the candidates'
posting lists (``sparse_loops.scatter_rows``, compiled, releasing the GIL so chunks run on both
cores). A term is dense when scattering it would cost more than its column of the product:
when the profiles are known, by its expected scatter work per user (the share of profiles
holding it times its number of candidates) against the pool's size; otherwise by its share of
the candidates. For small chunks, where importing numba would cost more than it saves, the tail
is added with a scipy product instead; all give the same sums.
"""

from __future__ import annotations

import numpy as np
import scipy.sparse as sp

from recommender.model import sparse_loops

DENSE_FRACTION = 0.03  # a term in at least this share of the candidates goes into the dense product
DENSE_MIN_PAPERS = 64  # ...and in at least this many (small pools stay sparse)
# With the profiles known: dense from this many expected scatter steps per user per candidate
# (a column of the BLAS product costs each user one multiply-add per candidate, about 50 times
# cheaper than a scattered one, measured: 100 steps for a pool of 5,000).
DENSE_MIN_WORK_PER_CANDIDATE = 0.02
COMPILED_MIN_WORK = 2_000_000  # tail multiply-adds above which the compiled scatter is worth it
SPLIT_MIN_USERS = 64  # fewer users than this: score with a plain sparse product
DENSE_PROFILES_MAX_VALUES = 4_000_000  # ...against dense profiles up to this size (32 MB)


class PoolScorer:
    """Everything about one candidate pool that every chunk of users reuses. With few users
    (``split=False``) the pool is not prepared at all: a plain sparse product is quicker."""

    def __init__(self, rows: sp.csr_matrix, reader_rows: np.ndarray | None, split: bool = True,
                 compiled_min_work: int = COMPILED_MIN_WORK, profiles: sp.csr_matrix | None = None,
                 shared_columns: int | None = None):
        n, vocabulary = rows.shape
        # the reader rows' columns that are the community's (reader factors), for explanations
        self.shared_columns = shared_columns
        self.compiled_min_work = compiled_min_work
        self.size = n
        # Candidates with no term the text model knows ("x", an "Editorial" of one unseen word):
        # every part of their score is 0, which a classifier whose weights are mostly negative
        # would put first. Nothing can be said of them; ranking leaves them out.
        self.blank = np.flatnonzero(np.diff(rows.indptr) == 0)
        self.reader_rows = reader_rows
        self.factors = 0 if reader_rows is None else reader_rows.shape[1]
        dense_terms = np.zeros(0, dtype=np.int64)
        if split:
            frequency = np.bincount(rows.indices, minlength=vocabulary)
            if profiles is not None and profiles.shape[0]:
                share = np.bincount(profiles.indices, minlength=vocabulary) / profiles.shape[0]
                dense = (frequency >= DENSE_MIN_PAPERS) & (frequency * share >= DENSE_MIN_WORK_PER_CANDIDATE * n)
            else:
                dense = frequency >= max(DENSE_MIN_PAPERS, DENSE_FRACTION * n)
            dense_terms = np.flatnonzero(dense)
        # Each term's column among the dense ones, or -1 (None: no dense terms, as for one user).
        self.dense_slot: np.ndarray | None = None
        if len(dense_terms):
            self.dense_slot = np.full(vocabulary, -1, dtype=np.int64)
            self.dense_slot[dense_terms] = np.arange(len(dense_terms))
        right = [] if reader_rows is None else [reader_rows.T.astype(np.float32, copy=False)]
        if len(dense_terms) or not right:
            right.append(rows[:, dense_terms].T.toarray().astype(np.float32))
        # (factors + dense terms) x candidates; the reader rows' transposed view when alone
        self.right = right[0] if len(right) == 1 else np.ascontiguousarray(np.vstack(right))
        rare = rows
        if len(dense_terms):
            rare = rows.copy()
            rare.data = np.where(self.dense_slot[rare.indices] >= 0, 0.0, rare.data)  # type: ignore[index]
            rare.eliminate_zeros()
        self.rare_rows = rare  # candidates x terms, rare terms only
        self.postings: tuple[np.ndarray, np.ndarray, np.ndarray] | None = None
        self.posting_lengths = np.zeros(vocabulary, dtype=np.int64)
        if split:  # terms x candidates: who contains each rare term, for the compiled scatter
            postings = rare.T.tocsr()  # unsigned indices: the compiled loop skips negative-index checks
            self.postings = (postings.indptr.astype(np.uint32), postings.indices.astype(np.uint32),
                             postings.data.astype(np.float32))
            self.posting_lengths = np.diff(postings.indptr)

    def scores(self, profiles: sp.csr_matrix, readers: np.ndarray | None, weights: np.ndarray) -> np.ndarray:
        """float32 users x candidates: content score plus ``weights`` times the reader cosine."""
        users = profiles.shape[0]
        left = np.zeros((users, self.right.shape[0]), dtype=np.float32)
        if readers is not None and self.factors:
            left[:, :self.factors] = readers * weights[:, None]
        if self.dense_slot is not None:
            owners = np.repeat(np.arange(users), np.diff(profiles.indptr))
            slots = self.dense_slot[profiles.indices]
            dense = slots >= 0
            left[owners[dense], self.factors + slots[dense]] = profiles.data[dense]
        out = left @ self.right
        if out.shape[1] == 0 or not self.rare_rows.nnz:
            return out
        scatter = None
        if self.postings is not None:
            post_ptr, post_idx, post_val = self.postings
            lengths = self.posting_lengths[profiles.indices]
            scatter = sparse_loops.compiled(sparse_loops.scatter_rows) if lengths.sum() >= self.compiled_min_work else None
        if scatter is not None:
            # Only the profile terms with rare postings here: the others would cost a lookup each.
            kept = lengths > 0
            indptr = np.concatenate([[0], np.cumsum(kept)])[profiles.indptr].astype(np.uint32)
            scatter(indptr, profiles.indices[kept].astype(np.uint32), profiles.data[kept], post_ptr, post_idx,
                    post_val, out)
        else:
            out += self._rare_products(profiles)
        return out

    def _rare_products(self, profiles: sp.csr_matrix) -> np.ndarray:
        """users x candidates: the profiles times the rare rows, as the candidates' rows times
        the profiles (transposing a few profiles is cheap, transposing the pool's rows is not),
        against dense profile columns when they are small: one pass over the rows, no sparse
        result. Each sum runs over a candidate's terms in term order either way (a term the
        profile lacks adds an exact zero): the same floats as the sparse product."""
        users, vocabulary = profiles.shape
        if users * vocabulary <= DENSE_PROFILES_MAX_VALUES:
            return (self.rare_rows @ profiles.T.toarray()).T
        return (self.rare_rows @ profiles.T.tocsr()).T.toarray()

    def reader_part(self, readers: np.ndarray | None, weights: np.ndarray, picked: np.ndarray) -> np.ndarray:
        """The weighted reader cosine of each user's picked candidates (for explanations): the
        reader factors' columns only, when the rest are the readers' own models."""
        if readers is None or self.reader_rows is None:
            return np.zeros(picked.shape)
        k = self.factors if self.shared_columns is None else self.shared_columns
        # (the k columns taken before the picked rows: a copy of only those, the same sums)
        return weights[:, None] * np.einsum("uk,upk->up", readers[:, :k], self.reader_rows[:, :k][picked])
