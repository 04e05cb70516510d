"""A reader's term weights as a ridge classifier of their papers against the corpus, for
readers ranked with the community's stars (``profiles.profile_rows``).

The plain term profile sums the TF-IDF rows of a reader's stars: a term that half the corpus
uses weighs as much there as one that only their stars share. This classifier (the papers
pulling towards the reader +1, every other paper -1 and their "less like this" papers -1
weighted by the push, classes balanced, an unpenalized intercept, ridge ``term_ridge``) over
the terms of the reader's plain profile weighs each term by how well it tells their papers
from the rest. Measured on CiteULike DEV readers with everyone's stars (bench/RESULTS.md, "A reader's
ridge classifier over their stars' terms"), in place of the sum it raised R@50 and nDCG@20 on
both datasets.

A reader's system is the corpus's term Gram matrix X'X over their terms (a few hundred), which
no install can keep whole (400,000 terms with bigrams). Its off-diagonal part comes from the
LSA fit's strongest ``TERM_FACTORS`` term factors (X ~ U S V', so X'X ~ (VS)(VS)'), its
diagonal exactly; the reader's papers and the intercept (weighted centring) add a low-rank part.
Woodbury's identity then solves it in a system of TERM_FACTORS + papers + 1 unknowns: about
half a millisecond a reader.
The weights are scaled so that the reader's scores spread over the corpus as the plain
profile's do: the mix with the reader factors and reader model keeps its balance.
"""

from __future__ import annotations

import logging
import time
from dataclasses import dataclass

import numpy as np
import scipy.sparse as sp
from threadpoolctl import threadpool_limits

log = logging.getLogger(__name__)
MIN_POSITIVES = 3  # fewer papers pulling towards the reader: the plain profile
# The Gram matrix's off-diagonal part from this many LSA dimensions: a reader's solve grows with
# their square; on CiteULike 32, 48 and 64 ranked alike, 32 keeps the refit within 1 ms a reader
# (bench/RESULTS.md).
TERM_FACTORS = 32


@dataclass
class TermBasis:
    """What every reader's system takes from the corpus (X: papers x terms, the TF-IDF rows)."""

    factors: np.ndarray  # terms x K, float32: V S of a truncated SVD of X
    residual: np.ndarray  # terms, float32: diag(X'X) minus the factors' share of it (>= 0)
    sums: np.ndarray  # terms, float64: X's column sums
    papers: int


def fit_basis(matrix: sp.csr_matrix, components: np.ndarray, singular_values: np.ndarray,
              rank: int = TERM_FACTORS) -> TermBasis:
    """The basis from a truncated SVD of ``matrix`` (``components``: dims x terms, strongest
    first), its ``rank`` strongest dimensions."""
    factors = (components[:rank].T * singular_values[:rank]).astype(np.float32)
    diagonal = np.asarray(matrix.multiply(matrix).sum(axis=0), dtype=np.float64).ravel()
    # (>= 0 for an exact SVD; clipped for the randomized one's rounding)
    residual = np.maximum(diagonal - np.einsum("ij,ij->i", factors, factors, dtype=np.float64), 0.0)
    return TermBasis(factors, residual.astype(np.float32), np.asarray(matrix.sum(axis=0), dtype=np.float64).ravel(),
                     matrix.shape[0])


def reweighed(basis: TermBasis, matrix: sp.csr_matrix, pull: sp.csr_matrix, plain: sp.csr_matrix,
              ridge: float, wanted: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """The ``plain`` profile rows' values (the sums of the readers' papers' rows, cut to their
    strongest terms) with each wanted reader's row weighed by their classifier over its terms,
    scaled to its spread over the corpus; and which readers got one (``wanted`` and at least
    MIN_POSITIVES papers pulling towards them). ``pull``: users x papers. The rows keep their
    terms, so the result is ``plain``'s data array anew (no second matrix: 100,000 readers'
    rows are 500 MB)."""
    data = plain.data.astype(np.float32)  # (a copy)
    fitted = np.zeros(pull.shape[0], dtype=bool)
    position = np.full(matrix.shape[1], -1, dtype=np.int32)  # a term's place among a reader's terms, else -1
    started = time.perf_counter()
    # Single-threaded BLAS: each system is small (as in reader_model).
    with threadpool_limits(limits=1, user_api="blas"):
        for user in np.flatnonzero(wanted):
            start, end = pull.indptr[user], pull.indptr[user + 1]
            papers, pulls = pull.indices[start:end], pull.data[start:end].astype(np.float64)
            first, last = plain.indptr[user], plain.indptr[user + 1]
            found = weights(basis, matrix, papers, pulls, ridge, plain.indices[first:last], position)
            if found is None:
                continue
            terms, weighed = found
            own, scale = _spreads(basis, terms, np.column_stack([weighed, plain.data[first:last].astype(np.float64)]))
            if not own or not scale:
                continue
            data[first:last] = weighed * (scale / own)
            fitted[user] = True
    if fitted.any():
        log.info("fitted %d readers' term classifiers in %.2f s", int(fitted.sum()), time.perf_counter() - started)
    return data, fitted


def weights(basis: TermBasis, matrix: sp.csr_matrix, papers: np.ndarray, pulls: np.ndarray, ridge: float,
            terms: np.ndarray | None = None, position: np.ndarray | None = None) -> tuple[np.ndarray, np.ndarray] | None:
    """One reader's classifier from their papers and pulls over ``terms`` (default: every term
    of the papers pulling towards them, sorted): (the terms, their weights), or None with fewer
    than MIN_POSITIVES papers pulling towards them or no term. ``position``: a scratch array of
    -1 per term of ``matrix``, left as it was (many readers share one)."""
    if (pulls > 0).sum() < MIN_POSITIVES:
        return None
    if terms is None:
        terms = np.unique(matrix[papers[pulls > 0]].indices)
    if not len(terms):
        return None
    if position is None:
        position = np.full(matrix.shape[1], -1, dtype=np.int32)
    position[terms] = np.arange(len(terms), dtype=np.int32)
    dense = _rows_over(matrix, papers, position, len(terms))
    position[terms] = -1
    solved = _solve(basis, terms, dense, pulls, ridge)
    return None if solved is None else (terms, solved)


def _rows_over(matrix: sp.csr_matrix, papers: np.ndarray, position: np.ndarray, count: int) -> np.ndarray:
    """The papers' rows over the terms ``position`` places (papers x count; other terms dropped).
    Gathered by hand: scipy's ``matrix[papers][:, terms].toarray()`` took 0.27 ms against 0.05
    ms (25 papers, 500 of 400,000 terms), a third of the 1 ms refit budget (bench/throughput.py)."""
    starts, ends = matrix.indptr[papers], matrix.indptr[papers + 1]
    lengths = ends - starts
    # every stored entry of the papers' rows, gathered at once
    entries = np.arange(lengths.sum()) + np.repeat(starts - (np.cumsum(lengths) - lengths), lengths)
    owner = np.repeat(np.arange(len(papers)), lengths)
    at = position[matrix.indices[entries]]
    inside = at >= 0
    dense = np.zeros((len(papers), count))
    dense[owner[inside], at[inside]] = matrix.data[entries[inside]]
    return dense


def _solve(basis: TermBasis, terms: np.ndarray, dense: np.ndarray, pulls: np.ndarray, ridge: float) -> np.ndarray | None:
    """The weights over ``terms`` of the reader whose papers' rows over them are
    ``dense``, with these pulls; None when every paper pulls towards them."""
    positive = pulls > 0
    count = int(positive.sum())
    n = basis.papers
    if count >= n:
        return None
    # Balanced: the positives together weigh as much as all other papers (n in all).
    negative_weight, positive_weight = n / (2 * (n - count)), n / (2 * count)
    weight = np.where(positive, positive_weight, negative_weight) * np.maximum(1.0, np.abs(pulls))
    label = np.where(positive, 1.0, -1.0)
    extra = weight - negative_weight  # beyond the weight every paper has as a negative
    sums = basis.sums[terms]
    # Weighted centring removes the intercept: with a the weights, the system is
    # X'AX - m m'/W + ridge I, right side X'Ay - m (a.y)/W, m = X'a, W = sum(a).
    mean = negative_weight * sums + dense.T @ extra
    total = negative_weight * n + extra.sum()
    labelled = weight * label + negative_weight  # each paper's a*y beyond the default -negative_weight
    right = -negative_weight * sums + dense.T @ labelled
    right -= mean * ((-negative_weight * n + labelled.sum()) / total)
    # X'AX - m m'/W + ridge I = diagonal + U S U', U = [VS, the reader's rows, m]
    diagonal = ridge + negative_weight * basis.residual[terms].astype(np.float64)
    update = np.hstack([basis.factors[terms], dense.T.astype(np.float32), mean[:, None].astype(np.float32)])
    signs = np.concatenate([np.full(basis.factors.shape[1], negative_weight), extra, [-1.0 / total]])
    scaled = update / diagonal[:, None].astype(np.float32)
    # In float32: this product is most of a reader's cost (bench/throughput.py's refit figure).
    inner = np.eye(len(signs)) + signs[:, None] * (update.T @ scaled).astype(np.float64)
    plain = right / diagonal
    return plain - scaled @ np.linalg.solve(inner, signs * (update.T @ plain))


def _spreads(basis: TermBasis, terms: np.ndarray, vectors: np.ndarray) -> np.ndarray:
    """The standard deviation over the corpus's papers of each column's scores (X v), the
    columns being term vectors over ``terms``."""
    projected = basis.factors[terms].T @ vectors.astype(np.float32)
    second = (np.einsum("ij,ij->j", projected, projected, dtype=np.float64)
              + basis.residual[terms].astype(np.float64) @ (vectors * vectors)) / basis.papers
    mean = basis.sums[terms] @ vectors / basis.papers
    return np.sqrt(np.maximum(second - mean * mean, 0.0))
